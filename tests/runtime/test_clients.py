"""podman and containerd driving clonekit end to end, set up as the README tells a new user.

podman (Debian's 4.3): a busybox rootfs imported as an image into private storage (--root,
--runroot, vfs), cgroupfs with the containers' groups under /clonekit-test/clients-<id>, no
event log, and the README's containers.conf (its ``runtime_supports_json`` is what makes podman
hand the runtime a --log).  Rootless podman runs as an account made for this module.

containerd (Debian's 1.6): started here with its own root, state, sockets and config (the CRI
plugin off), stopped by pid at the end; the image goes over with ``podman save --format
oci-archive`` and ``ctr images import``; ``ctr run --runc-binary`` points the runc v2 shim at the
same clonekit the README's containerd snippet names (the snippet itself goes through
``containerd config dump``).

The cases that need verbs other parts of "OCI runtime III" are still building (exec, pause,
terminals) are skipped until the CLI has them; those that need the runtime's client contracts
(--log-only messages, RFC 3339 log times, runc's answer for a stopped container) check clonekit
for that contract first and say what is missing when it is not there yet.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import base_config, remove_cgroup, run_cmd

from unprivileged import Account, session_account

PODMAN = shutil.which("podman")
CTR = shutil.which("ctr")
CONTAINERD = shutil.which("containerd")
SCRIPT = shutil.which("script")
README = Path(__file__).resolve().parents[2] / "README.md"
SRC = str(Path(__file__).resolve().parents[2] / "src")
IMAGE = "localhost/clonekit-busybox:latest"
# this machine: no network for containers, and no CAP_SYS_RESOURCE to raise podman's limits
HOST_LIMITS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
NAMESPACE = "clonekit-test"  # containerd's namespace for our containers and image
POD_USER = "clonekit-pod-user"
POD_SUBIDS = 810000


def _command() -> str | None:
    path = os.path.join(os.path.dirname(sys.executable), "clonekit")
    return path if os.path.exists(path) else None


CLONEKIT = _command()
pytestmark = pytest.mark.skipif(CLONEKIT is None, reason="clonekit is not installed as a command "
                                                           "next to this interpreter (pip install -e .)")


def _cli_knows(verb: str) -> bool:
    if CLONEKIT is None:
        return False
    return subprocess.run([CLONEKIT, verb, "--help"], capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=30).returncode == 0


HAS_EXEC = _cli_knows("exec")
HAS_PAUSE = _cli_knows("pause") and _cli_knows("resume")
HAS_TERMINAL = importlib.util.find_spec("clonekit.runtime.console") is not None
needs_exec = pytest.mark.skipif(not HAS_EXEC, reason="`clonekit exec` is not there yet (OCI runtime III)")
needs_pause = pytest.mark.skipif(not HAS_PAUSE, reason="`clonekit pause`/`resume` are not there yet "
                                                       "(OCI runtime III)")
needs_terminal = pytest.mark.skipif(not HAS_TERMINAL or SCRIPT is None,
                                    reason="terminals (clonekit.runtime.console) are not there yet "
                                           "(OCI runtime III), or `script` is missing (bsdutils)")
needs_podman = pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt install podman)")
needs_containerd = pytest.mark.skipif(CTR is None or CONTAINERD is None,
                                      reason="containerd is not installed (apt install containerd)")


# -- the README's snippets -------------------------------------------------------------------

def readme_snippet(marker: str) -> str:
    """The fenced block of README.md that contains ``marker``."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), re.S):
        if marker in block:
            return block
    raise AssertionError(f"README.md has no snippet with {marker!r}")


def containers_conf(path: str, runtime: str) -> str:
    """The README's containers.conf, naming ``runtime``, written to ``path``."""
    text = readme_snippet("[engine.runtimes]").replace("/usr/local/bin/clonekit", runtime)
    Path(path).write_text(text)
    return path


# -- what clonekit itself answers (the contracts another part of the issue brings) ------------

def _probe_log(tmp: str, rootfs: str) -> tuple[str, str]:
    """`clonekit --debug --log F --log-format json run` of a tiny bundle: (stderr, log)."""
    cid = f"ck-probe-{uuid.uuid4().hex[:8]}"
    bundle = os.path.join(tmp, cid)
    os.makedirs(bundle)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(base_config(rootfs, ["/bin/true"], cid), f)
    log = os.path.join(tmp, "probe.log")
    try:
        result = run_cmd([CLONEKIT or "clonekit", "--root", os.path.join(tmp, "state"), "--debug", "--log",
                          log, "--log-format", "json", "run", "--bundle", bundle, cid])
    finally:
        remove_cgroup(cid)
    return result.stderr, Path(log).read_text() if os.path.exists(log) else ""


_CONTRACTS: dict[str, str | None] = {}


def require_contract(name: str, rootfs: str) -> None:
    """Skip unless clonekit keeps the client contract ``name`` ("log-only", "rfc3339")."""
    if not _CONTRACTS:
        with tempfile.TemporaryDirectory(prefix="clonekit-probe-") as tmp:
            stderr, log = _probe_log(tmp, rootfs)
        times = [json.loads(line).get("time", "") for line in log.splitlines() if line.strip()]
        _CONTRACTS["log-only"] = None if log and "debug" not in stderr else (
            "the runtime's messages still go to stderr with --log given (OCI runtime III, item 4)")
        rfc3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
        _CONTRACTS["rfc3339"] = None if times and all(rfc3339.fullmatch(t) for t in times) else (
            f"the json log's time is not RFC 3339 as Go parses it: {times[:1]} (OCI runtime III, item 4)")
    why = _CONTRACTS[name]
    if why is not None:
        pytest.skip(why)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something true: the fact, not a time."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def no_runtime_text(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text
        assert "clonekit:" not in text and "clonekit " not in text, text


# -- podman ------------------------------------------------------------------------------------

class Podman:
    """podman with private storage, our containers.conf, and clonekit as --runtime."""

    def __init__(self, top: str, runtime: str, *, parent: str | None, prefix: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.top, self.runtime, self.parent = top, runtime, parent
        self.prefix, self.env = prefix, env or {}
        self.conf = containers_conf(os.path.join(top, "containers.conf"), runtime)

    def base(self, *global_options: str) -> list[str]:
        return [PODMAN or "podman", "--root", f"{self.top}/storage", "--runroot", f"{self.top}/run",
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                "--runtime", self.runtime, *global_options]

    def __call__(self, *args: str, global_options: tuple[str, ...] = (), timeout: float = 60,
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"CONTAINERS_CONF": self.conf, **self.env}
        if self.prefix:  # as another user: setpriv ... env NAME=VALUE ...
            cmd = [*self.prefix, *(f"{k}={v}" for k, v in env.items()), *self.base(*global_options), *args]
            environ = None
        else:
            cmd = [*self.base(*global_options), *args]
            environ = {**os.environ, **env}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ, cwd=self.top,
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)

    def run_options(self) -> list[str]:
        return [*HOST_LIMITS, *(("--cgroup-parent", f"/{self.parent}") if self.parent else ())]

    def run(self, *options: str, args: tuple[str, ...], global_options: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess[str]:
        return self(*(("run", "--rm", *self.run_options(), *options, IMAGE, *args)),
                    global_options=global_options)

    def detached(self, *options: str, args: tuple[str, ...], global_options: tuple[str, ...] = ()) -> str:
        done = self("run", "-d", *self.run_options(), *options, IMAGE, *args, global_options=global_options)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def logs(self, cid: str) -> str:
        done = self("logs", cid)
        return done.stdout + done.stderr

    def status(self, cid: str) -> str:
        return self("inspect", "--format", "{{.State.Status}}", cid).stdout.strip()

    def cleanup(self) -> None:
        self("rm", "--all", "--force", "--time", "0")
        self("system", "reset", "--force")


@pytest.fixture(scope="module")
def image_tar(rootfs, tmp_path_factory) -> str:
    """The busybox rootfs as a tar for `podman import` (readable by the rootless account)."""
    top = tempfile.mkdtemp(prefix="clonekit-clients-image-")
    os.chmod(top, 0o755)
    tar = os.path.join(top, "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    os.chmod(tar, 0o644)
    yield tar
    shutil.rmtree(top)


@pytest.fixture(scope="module")
def podman(image_tar) -> Iterator[Podman]:
    if PODMAN is None:
        pytest.skip("podman is not installed (apt install podman)")
    top = tempfile.mkdtemp(prefix="clonekit-clients-podman-")
    parent = f"clonekit-test/clients-{uuid.uuid4().hex[:8]}"
    pod = Podman(top, CLONEKIT or "clonekit", parent=parent)
    try:
        done = pod("import", image_tar, IMAGE)
        assert done.returncode == 0, done.stderr
        yield pod
    finally:
        pod.cleanup()
        shutil.rmtree(top, ignore_errors=True)
        remove_cgroup(parent.split("/", 1)[1])


def cgroup_of(output: str, controller: str = "pids") -> str:
    for line in output.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2]
    return ""


@needs_podman
def test_podman_run_exit_status_and_cgroup(podman):
    done = podman.run(args=("/bin/sh", "-c", "echo hello; cat /proc/self/cgroup; exit 7"))
    assert done.returncode == 7, done.stderr
    assert done.stdout.startswith("hello\n")
    assert cgroup_of(done.stdout).startswith(f"/{podman.parent}/libpod-")  # clonekit placed it there
    no_runtime_text(done.stderr)


@needs_podman
def test_podman_cap_drop_all_and_its_default_seccomp(podman):
    show = ("/bin/sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status")
    default = podman.run(args=show)
    dropped = podman.run("--cap-drop", "all", args=show)
    assert default.returncode == 0 and dropped.returncode == 0, (default.stderr, dropped.stderr)
    assert "Seccomp:\t2" in default.stdout and "Seccomp:\t2" in dropped.stdout  # podman's profile
    assert "CapEff:\t00000000a80425fb" in default.stdout  # podman's default set
    assert "CapEff:\t0000000000000000" in dropped.stdout


@needs_podman
def test_podman_detached_logs_are_the_containers_alone_and_stop_ends_it(podman, rootfs):
    require_contract("log-only", rootfs)
    cid = podman.detached(args=("/bin/sh", "-c", "echo started; trap 'echo stopping; exit 3' TERM; "
                                                 "while :; do sleep 0.05; done"),
                          global_options=("--runtime-flag", "debug"))
    try:
        wait_for("the container's first line", lambda: "started" in podman.logs(cid))
        assert podman.status(cid) == "running"
        stop = podman("stop", "--time", "10", cid)
        assert stop.returncode == 0, stop.stderr
        assert podman.status(cid) == "exited"
        assert podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "3"
        assert podman.logs(cid) == "started\nstopping\n"  # --debug went to the runtime's --log
    finally:
        podman("rm", "--force", "--time", "0", cid)


@needs_podman
@needs_exec
def test_podman_exec_joins_the_container_and_passes_its_status(podman):
    cid = podman.detached(args=("/bin/sleep", "600"))
    try:
        ns = "for n in 1/ns/pid self/ns/pid 1/ns/mnt self/ns/mnt; do readlink /proc/$n; done"
        done = podman("exec", cid, "/bin/sh", "-c", f"{ns}; grep Seccomp: /proc/self/status; exit 5")
        assert done.returncode == 5, done.stderr
        init_pid, own_pid, init_mnt, own_mnt, seccomp = done.stdout.splitlines()
        assert init_pid == own_pid and init_mnt == own_mnt
        assert seccomp == "Seccomp:\t2"
        no_runtime_text(done.stderr)
    finally:
        podman("rm", "--force", "--time", "0", cid)


@needs_podman
@needs_exec
def test_podman_health_checks_run_through_exec(podman):
    """A health check is an exec of its command (no systemd here: run by hand, as its timer would)."""
    cid = podman.detached("--health-cmd", "test -e /bin/sh", "--health-interval", "0",
                          args=("/bin/sh", "-c", "sleep 60"))
    try:
        check = podman("healthcheck", "run", cid)
        assert check.returncode == 0, check.stdout + check.stderr
        health = podman("inspect", "--format", "{{.State.Health.Status}}", cid).stdout.strip()
        assert health == "healthy"
        failing = podman("run", "-d", *podman.run_options(), "--health-cmd", "test -e /nowhere",
                         "--health-interval", "0", IMAGE, "/bin/sh", "-c", "sleep 60")
        assert failing.returncode == 0, failing.stderr
        bad = failing.stdout.strip()
        assert podman("healthcheck", "run", bad).returncode == 1  # unhealthy: the check's own exit
        podman("rm", "--force", "--time", "0", bad)
    finally:
        podman("rm", "--force", "--time", "0", cid)


@needs_podman
@needs_pause
def test_podman_pause_and_unpause(podman):
    cid = podman.detached(args=("/bin/sh", "-c", "while :; do date +%s%N > /tmp/tick; sleep 0.05; done"))
    try:
        assert podman("pause", cid).returncode == 0
        assert podman.status(cid) == "paused"
        assert podman("unpause", cid).returncode == 0
        assert podman.status(cid) == "running"
    finally:
        podman("rm", "--force", "--time", "0", cid)


def under_script(inner: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`inner` on a terminal that `script` makes, its stdin held open (never at EOF) until the
    command ends: at EOF script types ^D into the terminal, and a client's attach that reads
    end-of-input may stop copying the container's output before it arrives."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([SCRIPT or "script", "-qec", inner, "/dev/null"], stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            proc.wait(timeout=60)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), "")


@needs_podman
@needs_terminal
def test_podman_run_it_under_script(podman):
    inner = " ".join(podman.base()) + " run -it --rm " + " ".join(podman.run_options()) + \
        f" {IMAGE} /bin/sh -c 'tty; stty size'"
    done = under_script(inner, env={**os.environ, "CONTAINERS_CONF": podman.conf, "COLUMNS": "100",
                                    "LINES": "30"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/dev/pts/0" in done.stdout


# -- rootless podman -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rootless_podman(image_tar, python_for_user) -> Iterator[Podman]:
    if PODMAN is None:
        pytest.skip("podman is not installed (apt install podman)")
    existed = _account_exists(POD_USER)
    made = session_account(POD_USER, POD_SUBIDS)
    try:
        account = next(made)
        if isinstance(account, str):
            pytest.skip(account)
        assert isinstance(account, Account)
        top = tempfile.mkdtemp(prefix="clonekit-clients-rootless-")
        os.chmod(top, 0o755)
        for d in ("xdg", "home"):
            os.mkdir(os.path.join(top, d), 0o700)
        # the runtime podman runs is uid 0 of podman's user namespace, i.e. this account: it
        # needs an interpreter and a command it can read, named clonekit as the README says
        python = python_for_user(account.uid, account.gid)
        runtime = os.path.join(top, "bin", "clonekit")
        os.mkdir(os.path.dirname(runtime))
        Path(runtime).write_text(f"#!/bin/sh\nPYTHONPATH={SRC} exec {python} -m clonekit \"$@\"\n")
        os.chmod(runtime, 0o755)
        for dirpath, _, files in os.walk(top):
            for name in (dirpath, *(os.path.join(dirpath, f) for f in files)):
                os.chown(name, account.uid, account.gid)
        account.runtime_dir = os.path.join(top, "xdg")
        pod = Podman(top, runtime, parent=None, prefix=tuple(account.prefix()),
                     env={"HOME": os.path.join(top, "home")})
        try:
            done = pod("import", image_tar, IMAGE)
            assert done.returncode == 0, done.stderr
            yield pod
        finally:
            pod.cleanup()
            _end_pause_process(account, os.path.join(top, "xdg"))
            shutil.rmtree(top, ignore_errors=True)
    finally:
        for _ in made:  # userdel and our subid lines
            pass
        if not existed and _account_exists(POD_USER):
            # userdel refused: the killed pause process is a zombie (of uid POD_USER) until
            # PID 1 reaps it, which may take a while; the account goes anyway, with its lines
            from unprivileged import SUBID_FILES, _drop_lines

            subprocess.run(["userdel", "--force", POD_USER], check=False, capture_output=True)
            for path in SUBID_FILES:
                _drop_lines(path, POD_USER)


def _account_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _end_pause_process(account: Account, xdg: str) -> None:
    """Rootless podman leaves a pause process holding its user namespace: ours, end it."""
    pid_file = os.path.join(xdg, "libpod", "tmp", "pause.pid")
    try:
        pid = int(Path(pid_file).read_text())
        if os.stat(f"/proc/{pid}").st_uid == account.uid:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


@needs_podman
def test_rootless_podman_runs_with_bound_devices_and_no_traceback(rootless_podman):
    show = ("/bin/sh", "-c", "id -u; cat /proc/self/uid_map; stat -c '%F %t:%T' /dev/null /dev/zero; "
                             "echo x > /dev/null && echo written")
    done = rootless_podman.run(args=show)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() != ["0", "0", "4294967295"]  # in podman's user namespace
    assert lines[-3:] == ["character special file 1:3", "character special file 1:5", "written"]
    assert "Traceback" not in done.stderr


@needs_podman
def test_rootless_podman_detached_one_notice_in_the_log_and_stop(rootless_podman, rootfs):
    cid = rootless_podman.detached(args=("/bin/sh", "-c", "echo started; trap 'exit 3' TERM; "
                                                          "while :; do sleep 0.05; done"))
    try:
        wait_for("the container's first line", lambda: "started" in rootless_podman.logs(cid))
        # no delegated cgroup here: said once, in the --log podman gave the runtime
        oci_log = Path(rootless_podman.top, "run", "vfs-containers", cid, "userdata", "oci-log")
        notices = [json.loads(line) for line in oci_log.read_text().splitlines()
                   if "cgroup placement skipped" in line]
        assert len(notices) == 1 and notices[0]["level"] == "info", oci_log.read_text()
        stop = rootless_podman("stop", "--time", "10", cid)
        assert stop.returncode == 0, stop.stderr
        assert rootless_podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "3"
        require_contract("log-only", rootfs)
        assert rootless_podman.logs(cid) == "started\n"
    finally:
        rootless_podman("rm", "--force", "--time", "0", cid)


@needs_podman
@needs_exec
def test_rootless_podman_exec(rootless_podman):
    cid = rootless_podman.detached(args=("/bin/sleep", "600"))
    try:
        done = rootless_podman("exec", cid, "/bin/sh", "-c",
                               "readlink /proc/1/ns/pid; readlink /proc/self/ns/pid; exit 9")
        assert done.returncode == 9, done.stderr
        first, second = done.stdout.split()
        assert first == second
        assert "Traceback" not in done.stderr
    finally:
        rootless_podman("rm", "--force", "--time", "0", cid)


# -- containerd ----------------------------------------------------------------------------------

class Containerd:
    """A containerd of our own and ctr talking to it, every container in our namespace."""

    def __init__(self, top: str) -> None:
        self.top = top
        self.address = os.path.join(top, "containerd.sock")
        self.runc_root = os.path.join(top, "runc")
        self.fifo_dir = os.path.join(top, "fifo")
        self.parent = f"clonekit-test/ctr-{uuid.uuid4().hex[:8]}"
        self.config = os.path.join(top, "config.toml")
        Path(self.config).write_text(
            "version = 2\n"
            f'root = "{top}/root"\nstate = "{top}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{self.address}.ttrpc"\n'
            # the "opt" plugin makes /opt/containerd unless told otherwise
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{top}/opt"\n')
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(os.path.join(self.top, "containerd.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([CONTAINERD or "containerd", "--config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for("containerd to answer", lambda: self.proc is not None and (
            self.proc.poll() is not None or self.ctr("version").returncode == 0))
        assert self.proc.poll() is None, Path(self.top, "containerd.log").read_text()

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cmd([CTR or "ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
                       timeout=timeout)

    def run_flags(self, cid: str) -> list[str]:
        # ctr's default cpu.shares 1024 goes through: clonekit applies linux.resources
        return ["--snapshotter", "native", "--fifo-dir", self.fifo_dir, "--runc-root", self.runc_root,
                "--runc-binary", CLONEKIT or "clonekit", "--cgroup", f"/{self.parent}/{cid}"]

    def run(self, cid: str, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return self.ctr("run", *self.run_flags(cid), *options, IMAGE, cid, *args)

    def status(self, cid: str) -> str:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return ""

    def remove(self, cid: str) -> None:
        self.ctr("task", "kill", "--signal", "SIGKILL", cid)
        wait_for(f"{cid} to stop", lambda: self.status(cid) in ("STOPPED", ""))
        self.ctr("task", "rm", "--force", cid)
        self.ctr("container", "rm", cid)

    def stop(self) -> None:
        for line in self.ctr("container", "ls", "--quiet").stdout.split():
            self.remove(line)
        self.ctr("image", "rm", IMAGE)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()
        # shims the runs started, if any outlived their tasks: found by our unique address
        for pid in _pids_with_argument(self.address):
            os.kill(pid, signal.SIGKILL)


def _pids_with_argument(word: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if word.encode() in args:
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def containerd(podman) -> Iterator[Containerd]:
    if CTR is None or CONTAINERD is None:
        pytest.skip("containerd is not installed (apt install containerd)")
    # the shim keeps its socket in /run/containerd/s whatever the config says (and removes it
    # when it ends): the directories go at the end if they were not there before and are empty
    # (another containerd may be using them meanwhile)
    had = {d: os.path.exists(d) for d in ("/run/containerd/s", "/run/containerd")}
    top = tempfile.mkdtemp(prefix="clonekit-clients-containerd-")
    daemon = Containerd(top)
    try:
        daemon.start()
        archive = os.path.join(top, "image.tar")
        saved = podman("save", "--format", "oci-archive", "--output", archive, IMAGE)
        assert saved.returncode == 0, saved.stderr
        imported = daemon.ctr("images", "import", "--snapshotter", "native", archive)
        assert imported.returncode == 0, imported.stderr
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(top, ignore_errors=True)
        remove_cgroup(daemon.parent.split("/", 1)[1])
        for d, existed in had.items():
            if not existed:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


@needs_containerd
def test_ctr_run_through_the_runc_shim(containerd):
    done = containerd.run("ck-run", "/bin/sh", "-c", "echo hello; cat /proc/self/cgroup; exit 4",
                          options=("--rm",))
    assert done.returncode == 4, done.stderr
    assert done.stdout.startswith("hello\n")
    assert cgroup_of(done.stdout) == f"/{containerd.parent}/ck-run"
    assert containerd.ctr("container", "ls", "--quiet").stdout.split() == []


@needs_containerd
def test_ctr_kill_of_a_stopped_task_is_already_finished(containerd):
    done = containerd.run("ck-kill", "/bin/sleep", "600", options=("--detach",))
    assert done.returncode == 0, done.stderr
    try:
        assert containerd.status("ck-kill") == "RUNNING"
        assert containerd.ctr("task", "kill", "--signal", "SIGKILL", "ck-kill").returncode == 0
        wait_for("the task to stop", lambda: containerd.status("ck-kill") == "STOPPED")
        ours = run_cmd([CLONEKIT or "clonekit", "--root", os.path.join(containerd.runc_root, NAMESPACE),
                        "kill", "ck-kill", "KILL"])
        if "container not running" not in ours.stderr:
            pytest.skip("`clonekit kill` of a stopped container does not answer runc's \"container not "
                        f"running\" yet (OCI runtime III, item 4): {ours.stderr.strip()}")
        again = containerd.ctr("task", "kill", "--signal", "SIGKILL", "ck-kill")
        assert again.returncode != 0 and "already finished" in again.stderr, again.stderr
    finally:
        containerd.remove("ck-kill")


@needs_containerd
def test_ctr_shows_a_readable_error_for_a_missing_program(containerd, rootfs):
    require_contract("rfc3339", rootfs)
    done = containerd.run("ck-missing", "/no/such/program", options=("--rm",))
    assert done.returncode != 0
    assert "/no/such/program" in done.stderr and "parsing time" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    containerd.ctr("container", "rm", "ck-missing")


@needs_containerd
@needs_exec
def test_ctr_task_exec_passes_its_status(containerd):
    assert containerd.run("ck-exec", "/bin/sleep", "600", options=("--detach",)).returncode == 0
    try:
        done = containerd.ctr("task", "exec", "--exec-id", "e1", "--fifo-dir", containerd.fifo_dir,
                              "ck-exec", "/bin/sh", "-c",
                              "readlink /proc/1/ns/pid; readlink /proc/self/ns/pid; exit 6")
        assert done.returncode == 6, done.stderr
        first, second = done.stdout.split()
        assert first == second
    finally:
        containerd.remove("ck-exec")


@needs_containerd
@needs_pause
def test_ctr_pause_and_resume(containerd):
    assert containerd.run("ck-pause", "/bin/sleep", "600", options=("--detach",)).returncode == 0
    try:
        assert containerd.ctr("task", "pause", "ck-pause").returncode == 0
        assert containerd.status("ck-pause") == "PAUSED"
        assert containerd.ctr("task", "resume", "ck-pause").returncode == 0
        assert containerd.status("ck-pause") == "RUNNING"
    finally:
        containerd.remove("ck-pause")


@needs_containerd
@needs_terminal
def test_ctr_run_t_under_script(containerd):
    inner = " ".join([CTR or "ctr", "--address", containerd.address, "--namespace", NAMESPACE, "run", "--rm",
                      "-t", *containerd.run_flags("ck-tty"), IMAGE, "ck-tty", "/bin/sh", "-c", "tty"])
    done = under_script(inner)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/dev/pts/0" in done.stdout or "/dev/console" in done.stdout


@needs_containerd
def test_the_readme_containerd_snippet_is_accepted_with_the_binary_ctr_runs(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(readme_snippet("io.containerd.runc.v2").replace("/usr/local/bin/clonekit",
                                                                      CLONEKIT or "clonekit"))
    dump = run_cmd([CONTAINERD or "containerd", "--config", str(config), "config", "dump"])
    assert dump.returncode == 0, dump.stderr
    # the handler's own table (up to the next table header) has the runc v2 shim as its type
    section = re.search(r'\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.clonekit\]\n'
                        r'((?:[ \t]*[^ \t\[\n].*\n|[ \t]*\n)*)', dump.stdout)
    assert section is not None, dump.stdout
    assert 'runtime_type = "io.containerd.runc.v2"' in section.group(1), section.group(1)
    # the BinaryName containerd read is the command the ctr tests give the shim (--runc-binary)
    assert f'BinaryName = "{CLONEKIT}"' in dump.stdout
