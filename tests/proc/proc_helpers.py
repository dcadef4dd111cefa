"""Helpers of the /proc tests: controlled processes (started and reaped here) and the CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

# A python child with N idle threads and K `sleep` children; it prints its children's pids,
# then waits for stdin to close and cleans up after itself.
_CHILD = r"""
import subprocess, sys, threading
n, k = int(sys.argv[1]), int(sys.argv[2])
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(n)]
for t in threads:
    t.start()
kids = [subprocess.Popen(["sleep", "600"]) for _ in range(k)]
print(" ".join(str(p.pid) for p in kids), flush=True)
sys.stdin.read()
stop.set()
for t in threads:
    t.join()
for p in kids:
    p.kill()
    p.wait()
"""


@dataclass
class Family:
    proc: subprocess.Popen[str]
    kids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


def stop_family(proc: subprocess.Popen[str], extra: tuple[int, ...] | list[int] = ()) -> None:
    """Close the child's stdin (it then reaps its own children and exits) and reap it."""
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for pid in extra:  # our orphaned grandchildren, by pid, only while they still run sleep
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "sleep":
                    os.kill(pid, signal.SIGKILL)
    if proc.stdout:
        proc.stdout.close()


def start_family(threads: int, kids: int = 0) -> Family:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(threads), str(kids)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return Family(proc, [int(p) for p in line.split()])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clonekit", *args], capture_output=True, text=True, timeout=60
    )


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def children_of(pid: int, timeout: float = 10.0) -> list[int]:
    """The child pids of ``pid``, waiting until it has at least one."""
    deadline = time.monotonic() + timeout
    while True:
        kids: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
        if kids or time.monotonic() > deadline:
            return sorted(kids)
        time.sleep(0.02)


def wait_exec(pid: int, comm: str, timeout: float = 10.0) -> None:
    """Wait until ``pid`` runs ``comm`` (after its exec)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() == comm:
                return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} did not exec {comm}")


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Kill and reap a process this test started."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def free_pid() -> int:
    """A pid that no process uses right now."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise AssertionError("no free pid")
