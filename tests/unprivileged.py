"""The unprivileged account that the rootless tests run as.

It is made for the session with useradd and its own /etc/subuid and /etc/subgid ranges, and
removed afterwards with them.  The namespace and runtime suites each make their own (their own
name and ranges), maybe in pytest runs going on at the same time: cleaning up removes this
account's lines only and never writes back a whole saved file, which would clobber the other's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("clonekit").__file__)))
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
TOOLS = ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap")


class Account:
    """An account with subordinate id ranges; ``wrap`` runs a command as it through setpriv."""

    def __init__(self, name: str, subuid: tuple[int, int], subgid: tuple[int, int]) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.subuid = subuid
        self.subgid = subgid
        self.python = sys.executable  # replaced by one the account can run, when ours is not
        self.runtime_dir = ""         # its XDG_RUNTIME_DIR, when a test gives it one

    def env(self) -> list[str]:
        env = ["PYTHONUNBUFFERED=1", f"PYTHONPATH={SRC}", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        if self.runtime_dir:
            env.append(f"XDG_RUNTIME_DIR={self.runtime_dir}")
        return env

    def prefix(self) -> list[str]:
        """setpriv as the account, then `env` with our variables: append NAME=VALUE or a command."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--reset-env",
                "--", "env", *self.env()]

    def wrap(self, cmd: list[str]) -> list[str]:
        if cmd and cmd[0] == sys.executable:
            cmd = [self.python, *cmd[1:]]
        return [*self.prefix(), *cmd]


def _drop_lines(path: str, name: str, *, made: bool = False) -> None:
    """Remove ``name``'s lines from ``path``; the file too if we ``made`` it and it is empty."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = [line for line in lines if not line.startswith(f"{name}:")]
    if made and not kept:
        os.unlink(path)
    elif kept != lines:
        with open(path, "w") as f:
            f.writelines(kept)


def session_account(name: str, subid_start: int, count: int = 65536) -> Iterator[Account | str]:
    """Yield the account (or the reason it cannot be made); exhaust the generator to remove it."""
    if os.geteuid() != 0:
        yield "creating the unprivileged test user needs root"
        return
    for tool in TOOLS:
        if shutil.which(tool) is None:
            yield f"{tool} is not installed (apt install passwd util-linux uidmap)"
            return
    from clonekit.ns.idmap import subid_ranges

    made = {path: not os.path.exists(path) for path in SUBID_FILES}
    try:
        pwd.getpwnam(name)
        existed = True
    except KeyError:
        existed = False
        for path in SUBID_FILES:
            _drop_lines(path, name)  # left by a run that was killed
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", "--user-group", name],
                       check=True, capture_output=True)
    try:
        ranges = {}
        for path in SUBID_FILES:
            if not subid_ranges(name, path):  # useradd adds ranges itself when login.defs says so
                with open(path, "a") as f:
                    f.write(f"{name}:{subid_start}:{count}\n")
            ranges[path] = subid_ranges(name, path)[0]
        yield Account(name, ranges["/etc/subuid"], ranges["/etc/subgid"])
    finally:
        if not existed:
            subprocess.run(["userdel", name], check=False, capture_output=True)
            for path in SUBID_FILES:
                _drop_lines(path, name, made=made[path])
