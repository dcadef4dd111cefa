"""NSpid chains of processes in nested PID namespaces made with util-linux unshare."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from proc_helpers import children_of, need, run_cli, stop, wait_exec

from clonekit import proc
from clonekit.proc import Process


@pytest.fixture
def nested() -> Iterator[dict[str, int]]:
    """Two nested PID namespaces, each with its own /proc:

    unshare(U1) -> unshare(U2: pid 1 in ns1) -> sleep(S: pid 2 in ns1, pid 1 in ns2)
    """
    unshare = need("unshare")
    u1 = subprocess.Popen(
        [unshare, "-fp", "--mount-proc", "--kill-child", "--",
         unshare, "-fp", "--mount-proc", "--kill-child", "--",
         "sh", "-c", "echo $$; exec sleep 600"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert u1.stdout is not None
        inner_pid = int(u1.stdout.readline())  # what the innermost shell sees as its own pid
        u2 = children_of(u1.pid)[0]
        wait_exec(u2, "unshare")
        s = children_of(u2)[0]
        wait_exec(s, "sleep")
        yield {"u1": u1.pid, "u2": u2, "s": s, "inner_pid": inner_pid}
    finally:
        stop(u1)  # SIGKILL; --kill-child takes the namespaces' inits (and so everything) with it
        assert u1.stdout is not None
        u1.stdout.close()


def test_nspid_chain_outermost_first(nested: dict[str, int]) -> None:
    assert nested["inner_pid"] == 1
    assert Process(nested["u1"]).nspid == [nested["u1"]]
    assert Process(nested["u2"]).nspid == [nested["u2"], 1]
    assert Process(nested["s"]).nspid == [nested["s"], 2, 1]
    (task,) = Process(nested["s"]).threads()
    assert task.nspid == task.nstgid == [nested["s"], 2, 1]


def test_the_middle_link_seen_from_the_middle_namespace(nested: dict[str, int]) -> None:
    """PROCFS pointed at ns1's own /proc: sleep is pid 2 there.

    U1 unshared a mount namespace and its child (U2, pid 1 of ns1) mounted ns1's proc there
    before U2 unshared again; so U1's root shows ns1's /proc.
    """
    proc.PROCFS = f"/proc/{nested['u1']}/root/proc"
    try:
        assert sorted(proc.iter_pids()) == [1, 2]
        middle = Process(2)
        assert middle.comm == "sleep" and middle.ppid == 1
        assert middle.nspid == [2, 1]
        assert Process(1).comm == "unshare" and Process(1).nspid == [1]
    finally:
        proc.PROCFS = "/proc"


def test_tasks_json_carries_the_chain(nested: dict[str, int]) -> None:
    res = run_cli("tasks", "--json", "-p", str(nested["s"]))
    assert res.returncode == 0, res.stderr
    (task,) = json.loads(res.stdout)["tasks"]
    assert task["nspid"] == [nested["s"], 2, 1]
    assert task["cmd"] == "sleep 600"


def test_tree_marks_the_namespace_borders(nested: dict[str, int]) -> None:
    res = run_cli("tree", "--ns", str(nested["u1"]))
    assert (
        res.stdout
        == subprocess.run(["pstree", "-pS", str(nested["u1"])], capture_output=True, text=True).stdout
    )
    assert f"sleep({nested['s']},pid)" in res.stdout
    assert f"unshare({nested['u2']},mnt,pid)" in res.stdout
    assert res.stdout.startswith(f"unshare({nested['u1']},mnt)---")  # the root vs its parent
