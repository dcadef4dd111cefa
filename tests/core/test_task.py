"""clonekit.Task: a pidfd handle that waits, signals and reaps without PID races."""

from __future__ import annotations

import asyncio
import os
import select
import signal

import pytest

import clonekit


def test_wait_timeout_poll_and_returncode():
    task = clonekit.spawn(["/bin/sleep", "0.3"])
    with task:
        assert task.poll() is None
        with pytest.raises(TimeoutError):
            task.wait(timeout=0.01)
        assert task.wait(timeout=10) == 0
        assert task.returncode == 0
        assert task.poll() == 0


def test_fileno_is_pollable_and_becomes_readable_at_exit():
    with clonekit.spawn(["/bin/sleep", "0.1"]) as task:
        assert select.select([task], [], [], 0)[0] == []
        assert select.select([task], [], [], 10)[0] == [task]
        assert task.wait() == 0


def test_send_signal_after_reap_is_a_noop_and_never_hits_a_reused_pid():
    task = clonekit.spawn(["/bin/true"])
    task.wait(timeout=10)
    task.send_signal(signal.SIGKILL)  # reaped: nothing is signalled
    task.close()


def test_terminate():
    with clonekit.spawn(["/bin/sleep", "30"]) as task:
        task.terminate()
        assert task.wait(timeout=10) == -signal.SIGTERM


def test_wait_async():
    async def main():
        with clonekit.spawn(["/bin/sh", "-c", "sleep 0.1; exit 3"]) as task:
            return await task.wait_async()

    assert asyncio.run(main()) == 3


def test_context_manager_reaps_and_closes_the_pidfd():
    before = set(os.listdir("/proc/self/fd"))
    with clonekit.spawn(["/bin/sh", "-c", "exit 4"]) as task:
        assert os.readlink(f"/proc/self/fd/{task.fileno()}") == "anon_inode:[pidfd]"
    assert task.returncode == 4
    assert set(os.listdir("/proc/self/fd")) <= before
    with pytest.raises(clonekit.UsageError, match="closed"):
        task.fileno()


def test_from_pid_holds_an_existing_process():
    proc = clonekit.spawn(["/bin/sleep", "30"])
    with clonekit.Task.from_pid(proc.pid) as held:
        held.kill()
        assert proc.wait(timeout=10) == -signal.SIGKILL
    proc.close()


def test_from_pid_of_a_missing_process_is_a_clear_error():
    with pytest.raises(clonekit.KernelError, match="no such process"):
        clonekit.Task.from_pid(2**22 + 12345)
