"""clonekit.proc's library API against real processes and independent observations."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
import time

import pytest
from proc_helpers import Family, free_pid, run_cli, stop, wait_exec

import clonekit
from clonekit import proc
from clonekit.proc import AccessDenied, NoSuchProcess, Process


def test_process_fields_of_a_controlled_child(family: Family) -> None:
    p = Process(family.pid)
    assert p.pid == family.pid
    assert p.ppid == os.getpid()
    assert p.comm == os.path.basename(sys.executable)[:15]
    assert p.cmdline[0] == sys.executable and p.cmdline[1] == "-c"
    assert p.state in "SR"
    assert p.nlwp == 5 == len(os.listdir(f"/proc/{family.pid}/task"))
    assert p.uid == os.geteuid()
    assert p.user == pwd.getpwuid(os.geteuid()).pw_name
    assert p.nspid == [family.pid] and p.nstgid == [family.pid]
    assert abs(p.start_time - time.time()) < 30
    assert p.starttime > Process(os.getpid()).starttime
    assert p.cpu_time >= 0
    assert p.is_running()


def test_threads_agree_with_the_task_directory(family: Family) -> None:
    tasks = Process(family.pid).threads()
    tids = sorted(int(t) for t in os.listdir(f"/proc/{family.pid}/task"))
    assert [t.tid for t in tasks] == tids
    assert {t.tgid for t in tasks} == {family.pid}
    assert {t.pid for t in tasks} == {family.pid}
    assert {t.nlwp for t in tasks} == {5}
    assert {t.ppid for t in tasks} == {os.getpid()}
    assert all(t.cmdline == tasks[0].cmdline for t in tasks)
    assert [t.nspid for t in tasks] == [[tid] for tid in tids]
    assert [t.nstgid for t in tasks] == [[family.pid]] * 5
    assert {t.uid for t in tasks} == {os.geteuid()}


def test_iter_pids_and_snapshot_see_the_family(family: Family) -> None:
    pids = set(proc.iter_pids())
    assert {family.pid, *family.kids, os.getpid()} <= pids
    assert not any(tid in pids for tid in proc.iter_tids(family.pid) if tid != family.pid)
    snap = proc.process_snapshot()
    assert snap[family.pid].nlwp == 5
    assert [snap[k].cmdline for k in family.kids] == [["sleep", "600"]] * 2
    assert {snap[k].ppid for k in family.kids} == {family.pid}
    procs = {p.pid: p for p in proc.iter_processes()}
    assert procs[family.pid] == snap[family.pid]


def test_iter_tasks_gives_every_thread(family: Family) -> None:
    mine = [t for t in proc.iter_tasks() if t.tgid == family.pid]
    assert sorted(t.tid for t in mine) == sorted(int(t) for t in os.listdir(f"/proc/{family.pid}/task"))
    kid = [t for t in proc.iter_tasks([family.kids[0]])]
    assert len(kid) == 1 and kid[0].tid == kid[0].tgid == family.kids[0] and kid[0].comm == "sleep"
    assert kid[0].command == "sleep 600"


def test_comm_with_spaces_and_parentheses(tmp_path: os.PathLike[str]) -> None:
    odd = os.path.join(tmp_path, "a) (b c")  # stat's comm field is cut at the LAST ')'
    os.symlink("/bin/sleep", odd)
    child = subprocess.Popen([odd, "600"])
    try:
        wait_exec(child.pid, "a) (b c")
        p = Process(child.pid)
        assert p.comm == "a) (b c"
        assert p.ppid == os.getpid() and p.state in "RS" and p.nlwp == 1
    finally:
        stop(child)


def test_ns_inode_matches_the_ns_link() -> None:
    for kind in (*proc.NS_KINDS, "pid_for_children", "time_for_children"):
        link = os.readlink(f"/proc/self/ns/{kind}")
        assert link.endswith(f":[{proc.ns_inode(os.getpid(), kind)}]"), kind
    assert proc.namespaces(os.getpid()) == {k: os.stat(f"/proc/self/ns/{k}").st_ino for k in proc.NS_KINDS}


def test_per_thread_namespaces() -> None:
    """A thread that unshares its UTS namespace is seen apart from its process."""
    code = r"""
import ctypes, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
done = threading.Event()
def worker():
    assert libc.unshare(0x04000000) == 0, ctypes.get_errno()  # CLONE_NEWUTS, this thread only
    print(threading.get_native_id(), flush=True)
    done.wait()
threading.Thread(target=worker).start()
sys.stdin.read()
done.set()
"""
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        tid = int(child.stdout.readline())
        tasks = {t.tid: t for t in Process(child.pid).threads()}
        assert set(tasks) == {child.pid, tid}
        leader, worker = tasks[child.pid], tasks[tid]
        assert worker.ns_inode("uts") != leader.ns_inode("uts")
        assert worker.ns_inode("uts") == os.stat(f"/proc/{child.pid}/task/{tid}/ns/uts").st_ino
        assert worker.namespaces()["net"] == leader.namespaces()["net"]
        assert Process(child.pid).ns_inode("uts") == leader.ns_inode("uts")
    finally:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def test_missing_pid_raises_no_such_process() -> None:
    pid = free_pid()
    with pytest.raises(NoSuchProcess) as info:
        Process(pid)
    assert info.value.pid == pid
    assert isinstance(info.value, ProcessLookupError) and isinstance(info.value, clonekit.Error)
    assert f"no process with id {pid}" in str(info.value)
    with pytest.raises(NoSuchProcess):
        proc.ns_inode(pid, "net")
    with pytest.raises(NoSuchProcess):
        list(proc.iter_tids(pid))


def test_bad_arguments_raise_usage_errors() -> None:
    for bad in (0, -5, "12", True):
        with pytest.raises(clonekit.UsageError, match="positive integer"):
            Process(bad)  # type: ignore[arg-type]
    with pytest.raises(clonekit.UsageError, match="unknown namespace kind 'nett'"):
        proc.ns_inode(os.getpid(), "nett")


def test_access_denied_is_a_permission_error() -> None:
    assert issubclass(AccessDenied, PermissionError) and issubclass(AccessDenied, clonekit.Error)
    # pid 1 on this machine may hide its ns links; when it does, the error names pid and path
    try:
        proc.ns_inode(1, "net")
    except AccessDenied as exc:
        assert exc.pid == 1 and exc.filename == "/proc/1/ns/net" and "ptrace" in str(exc)


def test_a_process_that_exits_and_a_zombie() -> None:
    child = subprocess.Popen(["sleep", "600"])
    p = Process(child.pid)
    child.kill()
    while Process(child.pid).state != "Z":  # killed, not yet reaped: a zombie
        time.sleep(0.01)
    zombie = Process(child.pid)
    assert zombie.cmdline == [] and zombie.command == "[sleep]"
    with pytest.raises(NoSuchProcess):  # a zombie has no namespaces any more
        zombie.ns_inode("time")
    assert [t.state for t in zombie.threads()] == ["Z"]
    assert not p.is_running()
    child.wait()
    with pytest.raises(NoSuchProcess):
        p.refresh()
    with pytest.raises(NoSuchProcess):
        Process(child.pid)


def test_scans_survive_processes_vanishing() -> None:
    """Processes and threads come and go while we scan: no scan may fail."""
    stop_churn = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            while not stop_churn.is_set():
                kids = [subprocess.Popen(["true"]) for _ in range(8)]
                for k in kids:
                    k.wait()
                ts = [threading.Thread(target=time.sleep, args=(0.001,)) for _ in range(4)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        deadline = time.monotonic() + 2.0
        rounds = 0
        while time.monotonic() < deadline:
            me = os.getpid()
            assert any(t.tgid == me for t in proc.iter_tasks())
            assert me in proc.process_snapshot()
            assert me in {p.pid for p in proc.iter_processes(status=True, cmdline=True)}
            assert proc.build_tree(me, ns=True).pid == me
            rounds += 1
        for args in (["tasks"], ["tasks", "--json"], ["tree", "--ns", str(me)]):  # the CLI too
            res = run_cli(*args)
            assert res.returncode == 0 and res.stderr == "", res.stderr
    finally:
        stop_churn.set()
        thread.join()
    assert not errors
    assert rounds >= 3


def test_procfs_root_can_point_at_another_procfs(tmp_path: os.PathLike[str]) -> None:
    """PROCFS is read at call time: a private procfs mount works like /proc."""
    target = os.path.join(tmp_path, "proc")
    os.mkdir(target)
    subprocess.run(["mount", "-t", "proc", "proc", target], check=True)
    try:
        proc.PROCFS = target
        assert os.getpid() in set(proc.iter_pids())
        assert Process(os.getpid()).ppid == os.getppid()
    finally:
        proc.PROCFS = "/proc"
        subprocess.run(["umount", target], check=True)
    assert proc.PROCFS == "/proc"
