"""The cgroup pool: groups carry the limits, are reused run after run, and are removed at
close -- or, for a caller killed before it could close, by the next Sandbox on the same top."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sb_helpers import group_dirs, group_tasks

from clonekit.sandbox import SandboxUsageError
from waiting import wait_for

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_limits_are_in_the_group_files(make, top) -> None:
    sb = make(memory="48m", pids=7, cpus=0.25)
    script = "cat /proc/self/cgroup; sleep 0.2"
    first = sb.run(["/bin/sh", "-c", script]).stdout.decode()
    # the cgroup namespace is rooted at the run's group: it sees itself at /
    lines = dict(line.split(":", 2)[1:] for line in first.splitlines())
    assert lines["memory"] == lines["pids"] == lines["cpu"] == "/", first
    groups = sorted({d.rsplit("/", 1)[1] for d in group_dirs(top) if d.rsplit("/", 1)[1][0].isdigit()})
    assert len(groups) == 1 and groups[0].startswith(f"{os.getpid()}-")
    group = f"{top}/{groups[0]}"
    assert _read(f"/sys/fs/cgroup/memory{group}/memory.limit_in_bytes") == str(48 << 20)
    assert _read(f"/sys/fs/cgroup/pids{group}/pids.max") == "7"
    assert _read(f"/sys/fs/cgroup/cpu{group}/cpu.cfs_quota_us") == "25000"
    sb.run(["/bin/true"])
    assert sorted({d.rsplit("/", 1)[1] for d in group_dirs(top) if d.rsplit("/", 1)[1][0].isdigit()}) \
        == groups  # the same group, reused


def test_a_killed_caller_leaves_groups_the_next_sandbox_removes(make, top) -> None:
    code = (f"import sys; from clonekit.sandbox import Sandbox\n"
            f"sb = Sandbox(pids=8, cgroup_top={top!r})\n"
            "print('running', flush=True); sb.run(['sleep', '600'])")
    caller = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert caller.stdout is not None and caller.stdout.readline() == b"running\n"
        sleeper = wait_for(lambda: group_tasks(top), what="the sandbox's sleep in its group")
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        # the parent-death signal took the sandbox with the caller
        wait_for(lambda: not group_tasks(top), what="the sandbox to end with its caller")
        wait_for(lambda: not os.path.exists(f"/proc/{sleeper[0]}"), what="the sleep to be gone")
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        if caller.stdout is not None:
            caller.stdout.close()
    left = [d for d in group_dirs(top) if f"/{caller.pid}-" in d]
    assert left, "the killed caller's group should still be there before a sweep"
    make(pids=8)  # a new Sandbox on the same top sweeps it
    assert [d for d in group_dirs(top) if f"/{caller.pid}-" in d] == []


def test_a_sandbox_that_fails_to_be_made_leaves_nothing(make, top) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(SandboxUsageError, match="seccomp="):
        make(memory="64m", pids=8, seccomp="not a filter")  # refused after the groups were made
    assert group_dirs(top) == []
    assert set(os.listdir("/proc/self/fd")) <= before | {str(fd) for fd in range(3)}


def test_sandboxes_sharing_a_top_outlive_each_others_close(make, top) -> None:
    """Sandboxes share a cgroup_top (the default one, by default): one closing removes the top
    when it is empty, which it is while the other has made no group yet; the other's next run
    makes the top again instead of failing to make its group there."""
    first, second = make(memory="32m"), make(memory="32m")
    assert first.run(["/bin/true"]).returncode == 0
    first.close()
    assert group_dirs(top) == []  # the top went with the last group in it
    r = second.run(["/bin/sh", "-c", "cat /proc/self/cgroup | grep -c memory:/"])
    assert r.stdout == b"1\n" and r.returncode == 0, r
    assert any(d.endswith(f"/memory{top}") for d in group_dirs(top))
