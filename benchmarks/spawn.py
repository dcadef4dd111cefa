"""spawn() of /bin/true vs os.posix_spawn, subprocess.Popen and os.fork+execv.

Targets (issue 2): within 1.1x of os.posix_spawn; at least 2.5x faster than os.fork+execv.
Run with the virtualenv's interpreter: .venv/bin/python benchmarks/spawn.py
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _bench import measure, report

import clonekit

TRUE = "/bin/true"
ARGV = [TRUE]


def ck_spawn() -> None:
    clonekit.spawn(ARGV).wait()


def posix_spawn() -> None:
    pid = os.posix_spawn(TRUE, ARGV, os.environ)
    os.waitpid(pid, 0)


def popen() -> None:
    subprocess.Popen(ARGV).wait()


def fork_execv() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(TRUE, ARGV)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    loops = int(os.environ.get("LOOPS", "200"))
    medians = measure(
        {"clonekit.spawn": ck_spawn, "os.posix_spawn": posix_spawn, "subprocess.Popen": popen,
         "os.fork+execv": fork_execv},
        loops=loops, rounds=7,
    )
    report("spawn /bin/true and wait (median per call)", medians, "os.posix_spawn")
    print(f"  clonekit.spawn / os.posix_spawn = {medians['clonekit.spawn'] / medians['os.posix_spawn']:.2f}"
          " (target <= 1.10)")
    print(f"  os.fork+execv / clonekit.spawn  = {medians['os.fork+execv'] / medians['clonekit.spawn']:.2f}"
          " (target >= 2.5)")
