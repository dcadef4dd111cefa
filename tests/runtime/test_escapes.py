"""Container escapes, each as a regression test: the attack runs inside a container made from the
default bundle (the test base_config plus what `clonekit spec` / `runc spec` put in: the default
capabilities, the RLIMIT_NOFILE rlimit, the deny-all device rule) and the test asserts it FAILS,
with the errno the kernel gave and the effect observed (mount table, file contents, terminal).

Each test runs under runc first (proof that the attack is real and that a confining runtime
blocks it) and then under clonekit.  The attacks run from ``escape_helper.c``, built static once
per session and bind-mounted read-only at /mnt; busybox observes.  The helper never does harm when
an attack works: it stops at "could write release_agent", unmounts what it mounted, reads (never
writes) a device node it made.

Before clonekit confined its containers (capabilities, device rules, its own session), every
clonekit half of these tests failed: each attack worked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import termios
import time
import uuid
from typing import Any

import pytest
from runtime_helpers import (
    RUNC,
    SideBySide,
    host_mounts,
    mountinfo_table,
    run_cmd,
    script,
    sections,
)

from clonekit.runtime.defaults import default_config

RUNTIMES = [
    pytest.param("runc", marks=pytest.mark.skipif(RUNC is None, reason="runc is not installed")),
    "clonekit",
]

HELPER_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "escape_helper.c")
HELPER = "/mnt/escape_helper"     # where the container sees it
HOSTNAME = "clonekit-test"        # base_config's


# -- the helper and the default bundle --------------------------------------------------------

@pytest.fixture(scope="session")
def helper_dir():
    """A 0755 directory holding the static escape helper (gcc -static, built once)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt install gcc)")
    top = tempfile.mkdtemp(prefix="clonekit-escape-helper-")
    try:
        os.chmod(top, 0o755)
        out = subprocess.run([gcc, "-static", "-O2", "-o", os.path.join(top, "escape_helper"), HELPER_SRC],
                             capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"cannot build a static helper (libc6-dev's libc.a?): {out.stderr.strip()[-300:]}")
        yield top
    finally:
        shutil.rmtree(top)


def host_helper(helper_dir: str, *args: str) -> str:
    out = run_cmd([os.path.join(helper_dir, "escape_helper"), *args])
    assert out.returncode == 0, out.stderr
    return out.stdout


def confine_like_spec(rootless: bool = False):  # type: ignore[no-untyped-def]
    """The edit that makes base_config the default bundle: `clonekit spec`'s capabilities and
    rlimits, and (not rootless) its device rule."""
    spec = default_config(rootless=rootless)
    process: Any = spec["process"]
    linux: Any = spec["linux"]

    def edit(config: dict[str, Any]) -> None:
        config["process"]["capabilities"] = json.loads(json.dumps(process["capabilities"]))
        config["process"]["rlimits"] = json.loads(json.dumps(process["rlimits"]))
        if "resources" in linux:
            config["linux"]["resources"] = json.loads(json.dumps(linux["resources"]))
    return edit


def with_helper(helper_dir: str):  # type: ignore[no-untyped-def]
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/mnt", "type": "bind", "source": helper_dir,
                                 "options": ["rbind", "ro", "nosuid", "nodev"]})
    return edit


_STEP = re.compile(r"^\s*([a-z_/][a-z0-9_ /-]*): (\S+)", re.MULTILINE)


def steps(text: str) -> dict[str, str]:
    """The helper's "STEP: RESULT" lines as {step: first word of the result}."""
    return {m.group(1): m.group(2) for m in _STEP.finditer(text)}


class Escapes:
    """One runtime, the default bundle with the helper, and the host before, to compare after."""

    def __init__(self, tmp_path, rootfs: str, helper_dir: str, runtime: str) -> None:
        self.sbs = SideBySide(tmp_path, rootfs)
        self.rt = self.sbs.runtimes[runtime]
        self.helper_dir = helper_dir
        self.mounts_before = host_mounts()

    def bundle(self, args: list[str]) -> tuple[str, str]:
        return self.sbs.bundle(self.rt, args, (confine_like_spec(), with_helper(self.helper_dir)))

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        cid, bundle = self.bundle(args)
        out = self.rt.cli("run", "--bundle", bundle, cid)
        assert "Traceback" not in out.stderr, out.stderr
        assert out.stdout.strip(), f"the container did not run ({out.returncode}): {out.stderr}"
        return out

    def cleanup(self) -> None:
        left = self.sbs.cleanup()
        assert not left, f"cgroups left behind: {left}"
        assert host_mounts() == self.mounts_before, "the host's mount table changed"


@pytest.fixture(params=RUNTIMES)
def escapes(request, tmp_path, rootfs, helper_dir):
    e = Escapes(tmp_path, rootfs, helper_dir, request.param)
    try:
        yield e
    finally:
        e.cleanup()


# -- the escapes ------------------------------------------------------------------------------

def test_default_bundle_runs(escapes):
    """The default bundle itself works: the helper runs and reports (a failure of every other
    test here would otherwise say nothing)."""
    out = escapes.run([HELPER, "umount", "/no-such-mount"])
    assert out.returncode == 0, out.stderr
    assert steps(out.stdout)["umount"] in ("EINVAL", "ENOENT", "EPERM"), out.stdout


def test_new_cgroup_v1_hierarchy_and_release_agent(escapes):
    """The release_agent escape: mount a new (named) cgroup v1 hierarchy, write release_agent,
    have the kernel run it as host root.  The mount must be refused, so release_agent is never
    reached (the helper stops at "could write")."""
    out = escapes.run([HELPER, "cgroup-v1", "/tmp/cg", "none,name=ck_escape"])
    seen = steps(out.stdout)
    assert seen.get("mount") == "EPERM", out.stdout + out.stderr
    assert "release_agent" not in out.stdout and "entry:" not in out.stdout, out.stdout


def test_open_by_handle_at_shocker(escapes, tmp_path):
    """"shocker": open_by_handle_at with the handle of a host file (CAP_DAC_READ_SEARCH)
    reads it through any fd on its filesystem: here the container's own root."""
    secret_dir = tempfile.mkdtemp(prefix="clonekit-secret-", dir=os.path.dirname(escapes.sbs.rootfs))
    try:
        secret = os.path.join(secret_dir, "secret")
        word = f"host-secret-{uuid.uuid4().hex}"
        with open(secret, "w") as f:
            f.write(word + "\n")
        if os.stat(secret).st_dev != os.stat(escapes.sbs.rootfs).st_dev:
            pytest.skip("the secret and the rootfs are on different filesystems")
        kind, handle = host_helper(escapes.helper_dir, "handle", secret).split()
        out = escapes.run([HELPER, "shocker", "/", kind, handle])
        seen = steps(out.stdout)
        assert seen.get("open mount fd") == "OK", out.stdout + out.stderr
        assert seen.get("open_by_handle_at") == "EPERM", out.stdout + out.stderr
        assert word not in out.stdout
    finally:
        shutil.rmtree(secret_dir)


def test_umount_unmasks_masked_path(escapes):
    """`umount /proc/keys` takes away the /dev/null mask and shows the kernel's key list."""
    out = escapes.run(script(umount=f"{HELPER} umount /proc/keys", keys="wc -c < /proc/keys",
                             mounts="cat /proc/self/mountinfo"))
    seen = sections(out.stdout)
    assert steps(seen["umount"]).get("umount") == "EPERM", out.stdout + out.stderr
    assert seen["keys"].split() == ["0"], seen["keys"]
    assert "/proc/keys" in mountinfo_table(seen["mounts"]), "the mask is gone"


def test_remount_makes_readonly_path_writable(escapes):
    """`mount -o remount,rw,bind /proc/sys` would make the sysctls writable.  The proof it did
    not: kernel.hostname (of the container's own UTS namespace, harmless) cannot be written."""
    out = escapes.run(script(remount=f"{HELPER} remount-rw /proc/sys",
                             write="echo ck-escaped > /proc/sys/kernel/hostname; hostname",
                             mounts="cat /proc/self/mountinfo"))
    seen = sections(out.stdout)
    assert steps(seen["remount"]).get("remount") == "EPERM", out.stdout + out.stderr
    assert seen["write"].split() == [HOSTNAME], seen["write"]
    assert "ro" in mountinfo_table(seen["mounts"])["/proc/sys"][1]


def test_mknod_host_device(escapes):
    """mknod c 1 11 (/dev/kmsg) in the container's /dev and read the host's kernel log."""
    out = escapes.run([HELPER, "mknod-read", "/dev/ck-kmsg", "1", "11"])
    seen = steps(out.stdout)
    assert seen.get("mknod") == "EPERM", out.stdout + out.stderr
    assert "record:" not in out.stdout, out.stdout


def test_new_proc_or_cgroup_mount(escapes):
    """A new proc mount has no masks and no read-only paths; a new mount of a cgroup v1
    hierarchy (memory) shows the host's whole tree.  Both are refused."""
    out = escapes.run(script(proc=f"{HELPER} proc /tmp/p", cgroup=f"{HELPER} cgroup-v1 /tmp/c memory"))
    seen = sections(out.stdout)
    assert steps(seen["proc"]).get("mount") == "EPERM", out.stdout + out.stderr
    assert steps(seen["cgroup"]).get("mount") == "EPERM", out.stdout + out.stderr
    assert "entry:" not in out.stdout and "keys size" not in out.stdout, out.stdout


# -- TIOCSTI: the container must not share the caller's terminal session -------------------

def _legacy_tiocsti() -> bool:
    try:
        with open("/proc/sys/dev/tty/legacy_tiocsti") as f:
            return f.read().strip() == "1"
    except FileNotFoundError:
        return True  # before 6.2: TIOCSTI always allowed on one's controlling terminal


def _read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    """What the pty master gives until ``marker`` has come (the data is there or on its way
    when the writer has exited: it goes through the tty's flip buffer)."""
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: no slave open any more
            break
        got += chunk
    return got


def run_on_terminal(command: list[str], env: dict[str, str] | None = None,
                    timeout: float = 60) -> tuple[int, dict[str, str], int, str]:
    """Run ``command`` as the leader of a new session whose controlling terminal is a fresh pty
    (stdin/stdout on the slave, stderr to a file).  Returns the exit code, the helper's lines
    from the master, how many injected bytes arrived (waiting in the slave's input queue, or
    echoed to the master), and stderr plus the master's text."""
    master, slave = os.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ICANON   # no line discipline buffering: TIOCINQ counts every byte
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        with tempfile.TemporaryFile("w+") as err:
            # setsid(1) --ctty: a new session, the pty on stdin its controlling terminal; the
            # pty on fd 3 as well, for `--preserve-fds 1` (runc's foreground `run` puts pipes,
            # not the terminal, on the container's stdio)
            proc = subprocess.Popen(["setsid", "--ctty", "--wait", "/bin/sh", "-c", 'exec 3<&0; exec "$@"',
                                     "sh", *command], stdin=slave, stdout=slave, stderr=err, env=env,
                                    cwd="/")
            try:
                code = proc.wait(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read()
        text = _read_until(master, b"done: tiocsti").decode(errors="replace")
        queued = int.from_bytes(fcntl.ioctl(slave, termios.TIOCINQ, b"\0\0\0\0"), "little")
        # an injected byte is echoed to the master (ECHO is on): an "x" before a helper's line
        lines = text.replace("\r", "").splitlines()
        echoed = sum(len(line) - len(line.lstrip("x")) for line in lines)
        text = "\n".join(line.lstrip("x") for line in lines)
        return code, steps(text), queued + echoed, stderr + text
    finally:
        os.close(master)
        os.close(slave)


def check_no_caller_terminal(code: int, seen: dict[str, str], queued: int, text: str) -> None:
    assert code == 0 and seen.get("done") == "tiocsti", text
    tries = {step: got for step, got in seen.items() if step.startswith("tiocsti fd")}
    assert "tiocsti fd3" in tries, f"the terminal did not reach the container: {text}"
    # EIO: dev.tty.legacy_tiocsti = 0 refuses TIOCSTI to everyone without CAP_SYS_ADMIN
    wanted = {"EPERM"} if _legacy_tiocsti() else {"EPERM", "EIO"}
    assert set(tries.values()) <= wanted, text
    assert queued == 0, f"{queued} byte(s) pushed into the caller's terminal"
    assert seen.get("open /dev/tty") == "ENXIO", text   # no controlling terminal at all
    # the container is not in the caller's session: its init leads a session of its own (no
    # controlling terminal), it is not a member of one whose leader it cannot even see (sid 0)
    assert seen.get("tty_nr") == "0", text
    assert seen.get("sid") == seen.get("pid") and seen.get("sid") not in (None, "0"), text


def test_tiocsti_into_the_callers_terminal(escapes):
    """`run` from a terminal, the terminal handed to the container (its stdio, and fd 3 through
    --preserve-fds).  If the container is in the caller's session, TIOCSTI pushes keystrokes
    into the caller's shell (CVE-2016-9016 and kin).  Checked: EPERM on every fd that is the
    terminal, nothing in its input queue, no controlling terminal, a session of its own."""
    cid, bundle = escapes.bundle([HELPER, "tiocsti"])
    code, seen, queued, text = run_on_terminal(
        escapes.rt.command("run", "--preserve-fds", "1", "--bundle", bundle, cid))
    assert "Traceback" not in text, text
    check_no_caller_terminal(code, seen, queued, text)


# -- rootless ---------------------------------------------------------------------------------

class Rootless:
    """An unprivileged user's runtime (runc or clonekit through setpriv) with a state root it
    owns and the default rootless bundle (`spec --rootless`, root mapped to the user)."""

    def __init__(self, user, rootfs: str, helper_dir: str, runtime: str) -> None:
        self.user = user
        self.runtime = runtime
        self.rootfs = rootfs
        self.helper_dir = helper_dir
        self.top = tempfile.mkdtemp(prefix="clonekit-rootless-escape-")
        os.chmod(self.top, 0o755)
        self.root = os.path.join(self.top, "state")
        os.mkdir(self.root, 0o700)
        os.chown(self.root, user.uid, user.gid)
        self.ids: list[str] = []
        self.mounts_before = host_mounts()
        if runtime == "runc":
            self.argv = user.wrap([str(RUNC), "--root", self.root])
        else:
            self.argv = user.wrap([user.python, "-m", "clonekit", "--root", self.root])

    def bundle(self, args: list[str]) -> tuple[str, str]:
        cid = f"{'ck' if self.runtime == 'clonekit' else 'rc'}-rl-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        bundle = os.path.join(self.top, cid)
        os.mkdir(bundle)
        config: Any = default_config(rootless=True)
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": self.user.uid, "size": 1}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": self.user.gid, "size": 1}]
        config["root"]["path"] = self.rootfs
        config["process"]["terminal"] = False
        config["process"]["args"] = args
        config["hostname"] = HOSTNAME
        # no cgroup mount: without a delegated group on this host neither runtime has one to show
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["nosuid", "nodev"]})
        with_helper(self.helper_dir)(config)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        os.chown(bundle, self.user.uid, self.user.gid)
        return cid, bundle

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        cid, bundle = self.bundle(args)
        out = run_cmd(self.command("run", "--bundle", bundle, cid), cwd="/")
        assert "Traceback" not in out.stderr, out.stderr
        assert out.stdout.strip(), f"the container did not run ({out.returncode}): {out.stderr}"
        return out

    def cleanup(self) -> None:
        for cid in self.ids:
            if os.path.isdir(os.path.join(self.root, cid)):
                run_cmd(self.command("delete", "--force", cid), cwd="/")
        leftover = os.listdir(self.root)
        shutil.rmtree(self.top, ignore_errors=True)
        assert not leftover, f"state left behind: {leftover}"
        assert host_mounts() == self.mounts_before, "the host's mount table changed"


@pytest.fixture(params=RUNTIMES)
def rootless(request, user, rootfs, helper_dir):
    r = Rootless(user, rootfs, helper_dir, request.param)
    try:
        yield r
    finally:
        r.cleanup()


def test_rootless_default_bundle_runs(rootless):
    out = rootless.run([HELPER, "umount", "/no-such-mount"])
    assert out.returncode == 0, out.stderr
    assert steps(out.stdout)["umount"] in ("EINVAL", "ENOENT", "EPERM"), out.stdout


def test_rootless_umount_unmasks_masked_path(rootless):
    """In a user namespace the masks are the container's own mounts (not locked): with
    CAP_SYS_ADMIN over it, umount would take them away."""
    out = rootless.run(script(umount=f"{HELPER} umount /proc/keys", keys="wc -c < /proc/keys",
                              mounts="cat /proc/self/mountinfo"))
    seen = sections(out.stdout)
    assert steps(seen["umount"]).get("umount") == "EPERM", out.stdout + out.stderr
    assert seen["keys"].split() == ["0"], seen["keys"]
    assert "/proc/keys" in mountinfo_table(seen["mounts"])


def test_rootless_remount_makes_readonly_path_writable(rootless):
    out = rootless.run(script(remount=f"{HELPER} remount-rw /proc/sys",
                              write="echo ck-escaped > /proc/sys/kernel/hostname; hostname",
                              mounts="cat /proc/self/mountinfo"))
    seen = sections(out.stdout)
    assert steps(seen["remount"]).get("remount") == "EPERM", out.stdout + out.stderr
    assert seen["write"].split() == [HOSTNAME], seen["write"]
    assert "ro" in mountinfo_table(seen["mounts"])["/proc/sys"][1]


def test_rootless_new_proc_or_cgroup_mount(rootless):
    """A user-namespaced root may mount proc for its pid namespace when a fully visible one is
    there (the masks are not locked): that new proc has no masks."""
    out = rootless.run(script(proc=f"{HELPER} proc /tmp/p",
                              cgroup=f"{HELPER} cgroup-v1 /tmp/c none,name=ck_escape"))
    seen = sections(out.stdout)
    assert steps(seen["proc"]).get("mount") == "EPERM", out.stdout + out.stderr
    assert steps(seen["cgroup"]).get("mount") == "EPERM", out.stdout + out.stderr
    assert "entry:" not in out.stdout and "keys size" not in out.stdout, out.stdout


def test_rootless_tiocsti_into_the_callers_terminal(rootless):
    """No privilege is needed for TIOCSTI into one's own controlling terminal: only a session
    of its own protects the unprivileged caller's shell."""
    cid, bundle = rootless.bundle([HELPER, "tiocsti"])
    code, seen, queued, text = run_on_terminal(
        rootless.command("run", "--preserve-fds", "1", "--bundle", bundle, cid))
    assert "Traceback" not in text, text
    check_no_caller_terminal(code, seen, queued, text)
