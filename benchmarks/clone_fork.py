"""clone() with no flags (child os._exit) vs os.fork(): both copy the Python process.

Target (issue 2): within 1.1x of os.fork.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _bench import measure, report

import clonekit


def ck_clone() -> None:
    task = clonekit.clone()
    if task == 0:
        os._exit(0)
    task.wait()


def fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    medians = measure({"clonekit.clone": ck_clone, "os.fork": fork},
                      loops=int(os.environ.get("LOOPS", "200")), rounds=7)
    report("fork-like child that exits at once (median per call)", medians, "os.fork")
    ratio = medians["clonekit.clone"] / medians["os.fork"]
    print(f"  clonekit.clone / os.fork = {ratio:.2f} (target <= 1.10)")
