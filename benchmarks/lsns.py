"""clonekit lsns vs util-linux lsns over ~2000 processes.

Starts sleeping processes until about ``--procs`` processes exist (all in one process group of
ours, killed at the end), then runs both tools alternately and prints medians and the ratio
(target: clonekit faster, ratio < 1).

    /work/venv/bin/python benchmarks/lsns.py [--procs 2000] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def count_procs() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def start_sleepers(n: int) -> subprocess.Popen[bytes] | None:
    if n <= 0:
        return None
    sleep = "busybox sleep" if shutil.which("busybox") else "sleep"
    script = f"i=0; while [ $i -lt {n} ]; do {sleep} 600 & i=$((i+1)); done; wait"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while count_procs() < n and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc


def clonekit_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "clonekit")
    return [script, "lsns"] if os.path.exists(script) else [sys.executable, "-m", "clonekit", "lsns"]


FAILED: dict[str, int] = {}


def once(cmd: list[str]) -> float:
    """Seconds of one successful run.  A run that fails is timed again: util-linux lsns exits 1
    now and then when a process vanishes while it reads /proc (other work on the machine)."""
    for _ in range(5):
        start = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        elapsed = time.perf_counter() - start
        if done.returncode == 0:
            return elapsed
        FAILED[cmd[0]] = FAILED.get(cmd[0], 0) + 1
    raise SystemExit(f"{' '.join(cmd)} failed 5 times: {done.stderr.decode(errors='replace').strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    util = shutil.which("lsns")
    if util is None:
        print("util-linux lsns is not installed: nothing to compare with")
        return 1
    sleepers = start_sleepers(opts.procs - count_procs())
    try:
        print(f"processes: {count_procs()}")
        cases = {
            "table": ([util], clonekit_cmd()),
            "--json": ([util, "--json"], [*clonekit_cmd(), "--json"]),
            "-t net": ([util, "-t", "net"], [*clonekit_cmd(), "-t", "net"]),
        }
        for name, (theirs, ours) in cases.items():
            once(theirs)
            once(ours)
            t_util, t_ours = [], []
            for _ in range(opts.runs):
                t_util.append(once(theirs))
                t_ours.append(once(ours))
            mu, mo = statistics.median(t_util), statistics.median(t_ours)
            print(f"lsns {name:8s} util-linux median {mu * 1000:7.1f} ms   "
                  f"clonekit median {mo * 1000:7.1f} ms   ratio {mo / mu:.2f}x (target < 1)")
        for cmd, count in FAILED.items():
            print(f"({cmd} failed {count} time(s) and was run again)")
    finally:
        if sleepers is not None:
            os.killpg(sleepers.pid, signal.SIGKILL)
            sleepers.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
