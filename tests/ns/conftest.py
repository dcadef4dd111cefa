"""Fixtures of the namespace tests: a private scratch mount and an unprivileged user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from ns_helpers import mounts_with

USER = "clonekit-test-user"
SUBID_START = 610000
SUBID_COUNT = 65536
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("clonekit").__file__)))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def scratch() -> Iterator[str]:
    """A temp directory that is its own private tmpfs mount (persisting a mount namespace needs a
    mount that does not propagate).  Everything mounted below it is detached afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts a tmpfs)")
    path = tempfile.mkdtemp(prefix="clonekit-ns-")
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "clonekit-ns-scratch", path)
    try:
        _mount("--make-private", path)
        yield path
    finally:
        for line in reversed(mounts_with(path)):  # innermost first: persisted namespaces, then tmpfs
            point = line.split()[4]
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        os.rmdir(path)
    assert not mounts_with(path), "a mount under the scratch directory was left behind"


class RootlessUser:
    """An unprivileged account with /etc/subuid and /etc/subgid ranges."""

    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.subuid = (SUBID_START, SUBID_COUNT)
        self.subgid = (SUBID_START, SUBID_COUNT)
        self.python = sys.executable

    def prefix(self) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--reset-env", "--", "env", "PYTHONUNBUFFERED=1", f"PYTHONPATH={SRC}"]

    def wrap(self, cmd: list[str]) -> list[str]:
        if cmd and cmd[0] == sys.executable:
            cmd = [self.python, *cmd[1:]]
        return [*self.prefix(), *cmd]

    def pick_python(self, find) -> None:
        """An interpreter this user can run: see the python_for_user fixture."""
        self.python = find(self.uid, self.gid)


def _edit_subid(path: str, line: str | None, original: str | None) -> str | None:
    """Append ``line`` (returns the previous content) or restore ``original``."""
    if line is not None:
        before = None
        if os.path.exists(path):
            with open(path) as f:
                before = f.read()
        with open(path, "a") as f:
            f.write(line)
        return before
    if original is None:
        os.unlink(path)
    else:
        with open(path, "w") as f:
            f.write(original)
    return None


@pytest.fixture(scope="session")
def rootless(python_for_user) -> Iterator[RootlessUser]:
    """``clonekit-test-user`` created for the session (useradd + subuid/subgid), removed after."""
    if os.geteuid() != 0:
        pytest.skip("creating the unprivileged test user needs root")
    for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    saved = {}
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
            if not subid_ranges(USER, path):  # useradd adds ranges itself when login.defs says so
                _edit_subid(path, f"{USER}:{SUBID_START}:{SUBID_COUNT}\n", None)
            ranges[path] = subid_ranges(USER, path)[0]
        user = RootlessUser(USER)
        user.subuid, user.subgid = ranges["/etc/subuid"], ranges["/etc/subgid"]
        user.pick_python(python_for_user)
        yield user
    finally:
        if not existed:
            subprocess.run(["userdel", USER], check=False, capture_output=True)
        for path, content in saved.items():
            _edit_subid(path, None, content)
