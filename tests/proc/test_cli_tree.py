"""`clonekit tree` against psmisc `pstree -p` / `pstree -pS` on controlled process trees."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from proc_helpers import Family, children_of, free_pid, need, run_cli, wait_exec

_NODE = re.compile(r"(\{?)([^\s(){}|`+-][^(){}]*?)\}?\((\d+)((?:,[a-z]+)*)\)")


def _pstree(*args: str) -> str:
    return subprocess.run([need("pstree"), *args], capture_output=True, text=True, check=True).stdout


def _nodes(text: str) -> set[tuple[bool, int, str]]:
    """(is_thread, pid, ns marks) of every node of a pstree drawing."""
    return {(bool(m[1]), int(m[3]), m[4]) for m in _NODE.finditer(text)}


def test_tree_matches_pstree_p(family: Family) -> None:
    res = run_cli("tree", str(family.pid))
    assert res.returncode == 0, res.stderr
    theirs = _pstree("-p", str(family.pid))
    assert res.stdout == theirs
    nodes = _nodes(res.stdout)
    assert {pid for thread, pid, _ in nodes if thread} == {
        t for t in map(int, os.listdir(f"/proc/{family.pid}/task")) if t != family.pid
    }
    assert {pid for thread, pid, _ in nodes if not thread} == {family.pid, *family.kids}


def test_hidden_threads_match_pstree_pT(family: Family) -> None:
    res = run_cli("tree", "-T", str(family.pid))
    assert res.stdout == _pstree("-pT", str(family.pid))
    assert "{" not in res.stdout


def test_json_tree(family: Family) -> None:
    res = run_cli("tree", "--json", str(family.pid))
    tree = json.loads(res.stdout)["tree"]
    assert tree["pid"] == family.pid and tree["comm"] == "python"
    assert len(tree["threads"]) == 4
    assert all(t["ppid"] == family.pid and t["tid"] != family.pid for t in tree["threads"])
    assert sorted(c["pid"] for c in tree["children"]) == sorted(family.kids)
    assert {c["comm"] for c in tree["children"]} == {"sleep"}


def test_dot_output(family: Family) -> None:
    res = run_cli("tree", "--dot", str(family.pid))
    lines = res.stdout.splitlines()
    assert lines[0] == "digraph clonekit_tree {" and lines[-1] == "}"
    for kid in family.kids:
        assert f"  p{family.pid} -> p{kid};" in lines
        assert f'  p{kid} [label="sleep\\n{kid}"];' in lines
    assert sum(1 for line in lines if line.endswith("[style=dashed];") and "->" in line) == 4


@pytest.fixture
def ns_family() -> Iterator[dict[str, int]]:
    """sh with three children: `unshare -u sleep` (new uts), `unshare -fp sleep` (new pid ns for
    its child) and `unshare -C -T -i -m -n -u sleep 601` (six new kinds; time via exec)."""
    need("unshare")
    script = (
        "unshare -u sleep 600 & unshare -fp --kill-child sleep 600 & "
        "unshare -C -T -i -m -n -u sleep 601 & wait"
    )
    sh = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    pids: dict[str, int] = {"sh": sh.pid}
    try:
        while len(kids := children_of(sh.pid)) < 3:
            pass
        for kid in kids:
            _wait_until_not(kid, "sh")  # forked but not exec'd yet: its cmdline is still sh's
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"-fp" in argv:
                pids["unshare_p"] = kid
                wait_exec(kid, "unshare")
                pids["sleep_p"] = children_of(kid)[0]
                wait_exec(pids["sleep_p"], "sleep")
            else:
                wait_exec(kid, "sleep")
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    pids["sleep_all" if b"601" in f.read() else "sleep_u"] = kid
        yield pids
    finally:
        # the whole process group this fixture started (new session): sh, the unshares, the
        # sleeps, also ones that were not classified if setup failed; --kill-child: sleep_p
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sh.pid, signal.SIGKILL)
        sh.wait(timeout=10)


def _wait_until_not(pid: int, comm: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != comm:
                return
        time.sleep(0.005)
    raise AssertionError(f"pid {pid} still runs {comm}")


def test_ns_marks_match_pstree_pS(ns_family: dict[str, int]) -> None:
    sh = str(ns_family["sh"])
    res = run_cli("tree", "--ns", sh)
    assert res.returncode == 0, res.stderr
    assert res.stdout == _pstree("-pS", sh)
    nodes = {pid: marks for _, pid, marks in _nodes(res.stdout)}
    assert nodes[ns_family["sleep_u"]] == ",uts"
    assert nodes[ns_family["unshare_p"]] == ""  # unshare -p changes only pid_for_children
    assert nodes[ns_family["sleep_p"]] == ",pid"
    assert nodes[ns_family["sleep_all"]] == ",cgroup,ipc,mnt,net,uts,time"  # pstree's order
    # without --ns: no marks, and the same drawing as pstree -p
    assert run_cli("tree", sh).stdout == _pstree("-p", sh)


def test_ns_marks_in_json_and_dot(ns_family: dict[str, int]) -> None:
    sh = str(ns_family["sh"])
    tree = json.loads(run_cli("tree", "--ns", "--json", sh).stdout)["tree"]
    kids = {c["pid"]: c for c in tree["children"]}
    assert kids[ns_family["sleep_u"]]["ns_changed"] == ["uts"]
    assert kids[ns_family["sleep_u"]]["ns"]["uts"] != tree["ns"]["uts"]
    assert kids[ns_family["unshare_p"]]["children"][0]["ns_changed"] == ["pid"]
    dot = run_cli("tree", "--ns", "--dot", sh).stdout.splitlines()
    assert f'  p{sh} -> p{ns_family["sleep_u"]} [label="new uts", color=red, fontcolor=red];' in dot


def test_missing_and_malformed_pids_are_clear_errors() -> None:
    pid = free_pid()
    res = run_cli("tree", str(pid))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith(f"clonekit tree: no process with id {pid}: it does not exist")
    for bad in ("abc", "0", "1x"):
        res = run_cli("tree", bad)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert f"clonekit tree: '{bad}' is not a process id" in res.stderr


_NAMED_THREADS = r"""
import ctypes, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
done = threading.Event()
ready = threading.Barrier(3)
def worker(name, uts):
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the thread's own comm
    if uts:
        assert libc.unshare(0x04000000) == 0, ctypes.get_errno()  # CLONE_NEWUTS, this thread only
    ready.wait()
    done.wait()
threads = [threading.Thread(target=worker, args=a) for a in (("zeta", False), ("beta", True))]
for t in threads:
    t.start()
ready.wait()
print("ready", flush=True)
sys.stdin.read()
done.set()
for t in threads:
    t.join()
"""


@pytest.fixture
def named_threads() -> Iterator[int]:
    """A python process with threads named zeta and beta; beta has its own UTS namespace."""
    child = subprocess.Popen(
        [sys.executable, "-c", _NAMED_THREADS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def test_thread_names_and_thread_namespaces_match_pstree(named_threads: int) -> None:
    pid = str(named_threads)
    for ours, theirs in (([], "-p"), (["-t"], "-pt"), (["--ns"], "-pS"), (["--ns", "-t"], "-pSt")):
        assert run_cli("tree", *ours, pid).stdout == _pstree(theirs, pid), theirs
    drawing = run_cli("tree", "--ns", "-t", pid).stdout
    assert "-+-{beta}(" in drawing and ",uts)" in drawing and "`-{zeta}(" in drawing
    nodes = _nodes(drawing)
    assert sum(1 for thread, _, marks in nodes if thread and marks == ",uts") == 1
