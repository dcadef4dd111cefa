"""spawn() with NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET vs the same clone3+execve written in C.

The C program (benchmarks/c/clone_exec_floor.c, built here with gcc) is the kernel's floor:
about 1.5 ms on this machine, the network namespace dominating.  Target: within 1.15x.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import clonekit
from clonekit import CloneFlag as F

FLAGS = F.NEWPID | F.NEWNS | F.NEWUTS | F.NEWIPC | F.NEWNET
LOOPS, ROUNDS = int(os.environ.get("LOOPS", "40")), 7


def build_floor(workdir: str) -> str:
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "clone_exec_floor.c")
    exe = os.path.join(workdir, "clone_exec_floor")
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def clonekit_round() -> float:
    start = time.perf_counter()
    for _ in range(LOOPS):
        clonekit.spawn(["/bin/true"], flags=FLAGS, env={}).wait()
    return (time.perf_counter() - start) / LOOPS


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="clonekit-bench-") as tmp:
        floor = build_floor(tmp)
        ours, theirs = [], []
        clonekit_round()
        for _ in range(ROUNDS):  # interleaved, so drift hits both
            ours.append(clonekit_round())
            out = subprocess.run([floor, str(int(FLAGS)), str(LOOPS), "1"], capture_output=True,
                                 text=True, check=True).stdout
            theirs.append(float(out) / 1e6)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"\nspawn /bin/true with {FLAGS} (median per task)")
    print(f"  clonekit.spawn        {a * 1e3:7.3f} ms")
    print(f"  C clone3+execve floor {b * 1e3:7.3f} ms")
    print(f"  ratio {a / b:.2f}x the floor (target <= 1.15)")


if __name__ == "__main__":
    sys.exit(main())
