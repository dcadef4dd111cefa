"""``clonekit lsns`` and util-linux ``lsns`` on a zombie in a new pid namespace.

The whole-machine difference seen while the suite ran (util-linux listing short-lived pid
namespaces that clonekit did not) was this case: a zombie's /proc/PID/ns/pid and ns/user still
resolve (the kernel finds them through the task's pid and credentials), its mnt, uts, ipc, net,
cgroup and time links are gone (its nsproxy was released at exit).  util-linux reads every kind
it can; clonekit's scan (ns/listing.py) used to stop at the first kind that failed — mnt, which
comes before pid in kernel order — and so never saw the zombie's pid namespace unless ``-t pid``
was asked (now it goes on to the next kind).  Threads in other namespaces and namespaces held
only by an fd are not listed by util-linux 2.38 either, so there is nothing to compare for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from ns_helpers import children, ns_inode, run_cli, start, stop, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a new pid namespace)"),
    pytest.mark.skipif(shutil.which("lsns") is None, reason="util-linux lsns is not installed"),
]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


@pytest.fixture
def zombie_init():
    """(zombie pid, its pid namespace inode): ``true``, pid 1 of a new pid namespace, exited and
    never reaped (its parent became ``sleep``, which does not wait)."""
    proc = start(["clonekit", "unshare", "-p", "--", "sh", "-c", "/bin/true & exec sleep 60"])
    try:
        zombie = wait_for(lambda: next((k for k in children(proc.pid) if _state(k) == "Z"), None),
                          what="the zombie pid 1")
        inode = ns_inode(zombie, "pid")
        assert inode != ns_inode("self", "pid")
        with pytest.raises(OSError):
            os.stat(f"/proc/{zombie}/ns/mnt")  # what made the scan give up on it
        yield zombie, inode
    finally:
        stop(proc)


def rows(cmd: list[str]) -> dict[tuple[str, int], dict]:
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return {(r["type"], r["ns"]): r for r in out["namespaces"]}


def ours(*args: str) -> dict[tuple[str, int], dict]:
    proc = run_cli("lsns", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return {(r["type"], r["ns"]): r for r in json.loads(proc.stdout)["namespaces"]}


@pytest.mark.parametrize("args", [(), ("-t", "mnt", "-t", "pid"), ("-p", "ZOMBIE")], ids=" ".join)
def test_zombie_pid_namespace_listed_like_util_linux(zombie_init, args):
    zombie, inode = zombie_init
    args = tuple(str(zombie) if a == "ZOMBIE" else a for a in args)
    key = ("pid", inode)
    theirs = rows(["lsns", "--json", *args])
    assert theirs[key]["nprocs"] == 1 and theirs[key]["pid"] == zombie
    mine = ours(*args)
    assert key in mine, "util-linux lists the zombie's pid namespace, clonekit does not"
    fields = ("ns", "type", "nprocs", "pid", "user", "command")
    assert {f: mine[key][f] for f in fields} == {f: theirs[key][f] for f in fields}
    if args[:1] == ("-p",):  # the zombie's namespaces: its pid and user ones, nothing else
        assert sorted(mine) == sorted(theirs) == sorted([key, ("user", ns_inode(zombie, "user"))])


def test_pid_type_alone_always_saw_it(zombie_init):
    """With only pid asked, the scan never reached a failing kind: the same row as util-linux."""
    zombie, inode = zombie_init
    mine = ours("-t", "pid")[("pid", inode)]
    theirs = rows(["lsns", "--json", "-t", "pid"])[("pid", inode)]
    fields = ("nprocs", "pid", "user", "command")
    assert {f: mine[f] for f in fields} == {f: theirs[f] for f in fields}
    assert (mine["nprocs"], mine["pid"], mine["command"]) == (1, zombie, "true")
