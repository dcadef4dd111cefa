"""Helpers of the side-by-side, hostile-rootfs and rootless container tests.

- :func:`run_cmd` runs a command with its output in files (a created container keeps the
  runtime's stdio, so a pipe would not see EOF while it lives), optionally with fds opened by a
  shell first (``pre="exec 5</etc/hostname; "``) so they are inherited by the runtime.
- :class:`Runtime` is one runtime's CLI (clonekit or runc) with a private ``--root``.
- :class:`SideBySide` writes the same bundle for each runtime (only the id and so the
  ``cgroupsPath`` differ), runs it, and cleans up what either runtime left, in every cgroup
  hierarchy.
- :func:`host_mounts`, :func:`clonekit_test_groups`: snapshots of the host for "nothing changed".
- :class:`Unprivileged`: an account made for the session with /etc/subuid and /etc/subgid ranges
  that runs clonekit through ``setpriv`` (the approach of tests/ns/conftest.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any


def _load_conftest() -> Any:
    """tests/runtime/conftest.py by path: with several conftest modules in the suite, the name
    ``conftest`` may be another directory's by the time a test runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "clonekit_runtime_conftest", os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


base_config = _load_conftest().base_config
RUNC = shutil.which("runc")
CGROUP_TOP = "/sys/fs/cgroup"
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("clonekit").__file__)))
Edit = Callable[[dict[str, Any]], None]


def run_cmd(cmd: list[str], *, pre: str = "", timeout: float = 60,
            env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with stdout/stderr in files; ``pre`` is shell code run before exec'ing it."""
    if pre:
        cmd = ["/bin/sh", "-c", pre + 'exec "$@"', "sh", *cmd]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout,
                              env=env, cwd=cwd)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


class Runtime:
    """One runtime's command line with a private state directory."""

    def __init__(self, name: str, argv: list[str], root: str) -> None:
        self.name = name
        self.argv = argv
        self.root = root

    def command(self, *args: str) -> list[str]:
        return [*self.argv, "--root", self.root, *args]

    def cli(self, *args: str, check: bool = False, pre: str = "",
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = run_cmd(self.command(*args), pre=pre, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stderr}")
        return result

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self.cli("state", cid, check=True).stdout)

    def wait_status(self, cid: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll `state` until the container is ``status`` (it may not exist yet: a `run` in the
        background is still creating it)."""
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {"status": "absent"}
        while time.monotonic() < deadline:
            result = self.cli("state", cid)
            if result.returncode == 0:
                doc = json.loads(result.stdout)
                if doc["status"] == status:
                    return doc
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: {cid} is {doc['status']}, not {status}")


def clonekit_runtime(root: str) -> Runtime:
    return Runtime("clonekit", [sys.executable, "-m", "clonekit"], root)


def cgroup_dirs(cid: str) -> list[str]:
    """The directories of the container's group /clonekit-test/<cid> in every hierarchy."""
    found = []
    for hierarchy in sorted(os.listdir(CGROUP_TOP)):
        path = os.path.join(CGROUP_TOP, hierarchy, "clonekit-test", cid)
        if os.path.isdir(path) and not os.path.islink(os.path.join(CGROUP_TOP, hierarchy)):
            found.append(path)
    return found


def remove_cgroup(cid: str) -> None:
    """rmdir the container's group (and any empty sub-groups) in every hierarchy."""
    for path in cgroup_dirs(cid):
        for dirpath, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def clonekit_test_groups() -> set[str]:
    """Every group below /sys/fs/cgroup/*/clonekit-test (not the top groups themselves)."""
    found = set()
    for hierarchy in os.listdir(CGROUP_TOP):
        top = os.path.join(CGROUP_TOP, hierarchy, "clonekit-test")
        if os.path.islink(os.path.join(CGROUP_TOP, hierarchy)) or not os.path.isdir(top):
            continue
        for dirpath, _, _ in os.walk(top):
            if dirpath != top:
                found.add(dirpath)
    return found


def host_mounts() -> list[str]:
    """This mount namespace's table as (mount point, source, fs type, options) lines, no ids."""
    rows = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            fields = left.split()
            rows.append(" ".join([fields[4], fields[3], fields[5], *right.split()[:2]]))
    return sorted(rows)


def mountinfo_table(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """mount point -> (fs type, per-mount options) from /proc/self/mountinfo text (the last
    mount on a point wins, as in the path walk)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ")
        fields = left.split()
        out[fields[4]] = (right.split()[0], frozenset(fields[5].split(",")))
    return out


def sections(text: str) -> dict[str, str]:
    """Split output made of ``@@name`` header lines into {name: body}."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("@@"):
            name = line[2:].strip()
            out[name] = ""
        else:
            out[name] = out.get(name, "") + line
    return out


def script(**parts: str) -> list[str]:
    """A busybox sh command that prints each part under an ``@@name`` header."""
    body = "; ".join(f"echo @@{name}; {cmd}" for name, cmd in parts.items())
    return ["/bin/sh", "-c", body]


class SideBySide:
    """The same bundle for clonekit and runc: ids differ (so do the cgroupsPath), nothing else."""

    def __init__(self, tmp_path: Any, rootfs: str) -> None:
        self.tmp = tmp_path
        self.rootfs = rootfs
        self.runtimes = {"clonekit": clonekit_runtime(str(tmp_path / "state-clonekit"))}
        if RUNC is not None:
            self.runtimes["runc"] = Runtime("runc", [RUNC], str(tmp_path / "state-runc"))
        self.made: list[tuple[Runtime, str]] = []

    def bundle(self, rt: Runtime, args: list[str], edits: tuple[Edit, ...] = ()) -> tuple[str, str]:
        cid = f"{'ck' if rt.name == 'clonekit' else 'rc'}-{uuid.uuid4().hex[:10]}"
        self.made.append((rt, cid))
        bundle = self.tmp / cid
        bundle.mkdir()
        config = base_config(self.rootfs, args, cid)
        for edit in edits:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return cid, str(bundle)

    def run(self, args: list[str], *edits: Edit,
            opts: tuple[str, ...] = ()) -> dict[str, subprocess.CompletedProcess[str]]:
        """`run` the bundle with each runtime, in the foreground."""
        results = {}
        for name, rt in self.runtimes.items():
            cid, bundle = self.bundle(rt, args, edits)
            results[name] = rt.cli("run", *opts, "--bundle", bundle, cid)
        return results

    def each(self) -> Iterator[Runtime]:
        yield from self.runtimes.values()

    def cleanup(self) -> list[str]:
        """Delete every container; remove runc's groups; return the groups clonekit left."""
        left = []
        for rt, cid in self.made:
            if os.path.isdir(os.path.join(rt.root, cid)):
                rt.cli("delete", "--force", cid)
        for rt, cid in self.made:
            if rt.name == "clonekit":
                left += cgroup_dirs(cid)
            remove_cgroup(cid)
        return left


# -- the unprivileged user -------------------------------------------------------------------

# a name and ranges of our own: the namespaces suite creates and removes clonekit-test-user in
# the same way, possibly at the same time in another pytest run
USER = "clonekit-rt-user"
SUBID_START = 710000
SUBID_COUNT = 65536


class Unprivileged:
    """An account with /etc/subuid and /etc/subgid ranges, running commands through setpriv."""

    def __init__(self, name: str, subuid: tuple[int, int], subgid: tuple[int, int]) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.subuid = subuid
        self.subgid = subgid
        self.python = sys.executable
        self.runtime_dir = ""

    def env(self) -> list[str]:
        env = ["PYTHONUNBUFFERED=1", f"PYTHONPATH={SRC}", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        if self.runtime_dir:
            env.append(f"XDG_RUNTIME_DIR={self.runtime_dir}")
        return env

    def wrap(self, cmd: list[str]) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--reset-env",
                "--", "env", *self.env(), *cmd]

    def clonekit(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_cmd(self.wrap([self.python, "-m", "clonekit", *args]), timeout=timeout, cwd="/")

    def pick_python(self) -> bool:
        """The test interpreter may be out of the user's reach (a venv under /root): then the
        system python of the same version with clonekit's source on PYTHONPATH."""
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
            ok = run_cmd(self.wrap([candidate, "-c", "import clonekit._native, clonekit.runtime.container"]),
                         cwd="/")
            if ok.returncode == 0:
                self.python = candidate
                return True
        return False


def make_unprivileged() -> Iterator[Unprivileged | str]:
    """Yield the user (or a reason to skip); remove the account and the ranges afterwards."""
    if os.geteuid() != 0:
        yield "creating the unprivileged test user needs root"
        return
    for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            yield f"{tool} is not installed (apt install passwd util-linux uidmap)"
            return
    saved: dict[str, str | None] = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        saved[path] = None
        if os.path.exists(path):
            with open(path) as f:
                saved[path] = f.read()
    existed = True
    try:
        pwd.getpwnam(USER)
    except KeyError:
        existed = False
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "--user-group", USER],
                       check=True, capture_output=True)
    try:
        from clonekit.ns.idmap import subid_ranges

        ranges = {}
        for path in ("/etc/subuid", "/etc/subgid"):
            if not subid_ranges(USER, path):
                with open(path, "a") as f:
                    f.write(f"{USER}:{SUBID_START}:{SUBID_COUNT}\n")
            ranges[path] = subid_ranges(USER, path)[0]
        user = Unprivileged(USER, ranges["/etc/subuid"], ranges["/etc/subgid"])
        if not user.pick_python():
            yield f"no python{sys.version_info[0]}.{sys.version_info[1]} that {USER} can import clonekit with"
            return
        yield user
    finally:
        if not existed:
            subprocess.run(["userdel", USER], check=False, capture_output=True)
        for path, content in saved.items():
            if content is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(content)
