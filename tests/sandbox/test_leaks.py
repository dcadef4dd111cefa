"""Warm runs leave nothing behind: 1,000 runs in a row and 8 threads x 100 runs at once, with
cgroup limits on; afterwards the caller has the same mounts, fds and children, its RSS is flat,
and the pool holds no more groups than runs went on at once (none after close)."""

from __future__ import annotations

import threading
import time

import pytest
from sb_helpers import children, fds, group_dirs, group_tasks, mounts, rss_kib

from waiting import wait_for


def _state() -> tuple[list[str], set[int], set[int]]:
    return mounts(), fds(), children()


def test_a_thousand_runs_in_a_row(make, top) -> None:
    at_first = _state()
    sb = make(memory="64m", pids=32)
    for _ in range(100):  # warm: imports, allocator pools, the group, the spare network namespaces
        assert sb.run(["/bin/true"]).returncode == 0
    warm, rss = _state(), rss_kib()
    started = time.monotonic()
    codes = {sb.run(["/bin/true"]).returncode for _ in range(1000)}
    took = time.monotonic() - started
    assert codes == {0}
    now = _state()
    # the same mounts and children; as many fds (spare network namespaces come and go)
    assert (now[0], len(now[1]), now[2]) == (warm[0], len(warm[1]), warm[2])
    assert rss_kib() - rss < 2048, f"RSS grew from {rss} to {rss_kib()} KiB"
    # one group (memory, pids, cpuacct for cpu_time): one run at a time needs no more
    assert len([d for d in group_dirs(top) if d.rsplit("/", 1)[1][0].isdigit()]) == 3
    assert group_tasks(top) == []
    assert took < 30, f"1000 warm runs took {took:.1f} s"
    sb.close()
    assert group_dirs(top) == []
    assert _state() == at_first


def test_eight_threads_a_hundred_runs_each(make, top) -> None:
    before = _state()
    sb = make(memory="64m", pids=32)
    sb.run(["/bin/true"])
    rss = rss_kib()
    failures: list[BaseException] = []
    outputs: list[set[bytes]] = []

    def worker(n: int) -> None:
        try:
            seen = {sb.run(["echo", str(n)]).stdout for _ in range(100)}
            outputs.append(seen)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    # each thread saw its own output only: no run got another's pipes
    assert sorted(b for seen in outputs for b in seen) == [f"{n}\n".encode() for n in range(8)]
    assert rss_kib() - rss < 4096
    groups = {d.rsplit("/", 1)[1] for d in group_dirs(top) if d.rsplit("/", 1)[1][0].isdigit()}
    assert 1 <= len(groups) <= 8  # one per run going on at a time, at most
    assert group_tasks(top) == []
    sb.close()  # the groups and their fds go
    assert group_dirs(top) == []
    assert _state() == before


def test_close_while_runs_are_in_flight(make, top) -> None:
    """close() from one thread while others run: a run already going finishes with its own
    result, a later one is refused (SandboxUsageError), none sees fds or groups close() released
    under it, and when close() returns every group is gone."""
    from clonekit.sandbox.errors import SandboxUsageError

    before = _state()
    sb = make(memory="64m", pids=32)
    sb.run(["/bin/true"])
    outcomes: list[object] = []
    going = threading.Event()

    def worker(n: int) -> None:
        try:
            while True:
                going.set()
                r = sb.run(["/bin/sh", "-c", f"echo {n}; sleep 0.05"])
                outcomes.append((r.returncode, r.stdout))
        except SandboxUsageError:
            outcomes.append("closed")
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    going.wait()
    wait_for(lambda: group_tasks(top), what="a run in its group")  # close() lands mid-run
    sb.close()
    assert group_dirs(top) == []
    for t in threads:
        t.join()
    odd = [o for o in outcomes if o != "closed" and not (isinstance(o, tuple) and o[0] == 0)]
    assert not odd, odd
    assert outcomes.count("closed") == 4
    assert _state() == before


def test_an_interrupt_right_after_the_clone_kills_and_reaps(make, top) -> None:
    """A KeyboardInterrupt (a signal's handler) may land on any line of run(); on the first line
    after the clone it used to leave the command running, unreaped, in a group the pool handed
    to the next run.  Delivered there (by a trace hook, the way Python delivers it between
    lines), the run is killed and reaped, and its fds and group are let go."""
    import inspect
    import sys

    from clonekit.sandbox import sandbox as sandbox_module

    sb = make(memory="64m")
    sb.run(["/bin/true"])
    before = _state()
    source, first = inspect.getsourcelines(sandbox_module.Sandbox._spawn_and_wait)
    spawn = next(n for n, line in enumerate(source) if "_native.sandbox_spawn(" in line)
    after_spawn = first + next(n for n in range(spawn + 1, len(source))
                               if not source[n].rstrip().endswith(("args,", "cgroup_fd)")))

    def trace(frame, event, arg):
        if frame.f_code is sandbox_module.Sandbox._spawn_and_wait.__code__:
            if event == "line" and frame.f_lineno == after_spawn:
                sys.settrace(None)
                raise KeyboardInterrupt
            return trace
        return None

    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            sb.run(["sleep", "30"])
    finally:
        sys.settrace(None)
    now = _state()
    assert (now[0], len(now[1]), now[2]) == (before[0], len(before[1]), before[2])
    assert group_tasks(top) == []
    assert sb.run(["echo", "next"]).stdout == b"next\n"
