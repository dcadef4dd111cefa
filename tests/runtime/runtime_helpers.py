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
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from unprivileged import Account, session_account


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
        # stdin an empty pipe, not /dev/null: crun chowns its stdio to the container's root in a
        # user namespace, and the host's /dev/null would then belong to that uid
        proc = subprocess.run(cmd, stdout=out, stderr=err, input=b"", timeout=timeout,
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


class Unprivileged(Account):
    """The runtime suite's account: runs the clonekit CLI as itself."""

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
    made = session_account(USER, SUBID_START)
    try:
        got = next(made)
        if isinstance(got, str):
            yield got
            return
        user = Unprivileged(got.name, got.subuid, got.subgid)
        if not user.pick_python():
            yield f"no python{sys.version_info[0]}.{sys.version_info[1]} that {USER} can import clonekit with"
            return
        yield user
    finally:
        for _ in made:  # the generator's cleanup: userdel and our subid lines
            pass
