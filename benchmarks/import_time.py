"""`import clonekit` and the CLI's start-up, from python -X importtime.  Target: under 15 ms."""

from __future__ import annotations

import statistics
import subprocess
import sys


def cumulative_us(stmt: str) -> int:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True,
                         text=True, check=True).stderr
    total = 0
    for line in err.splitlines():
        # "import time: self [us] | cumulative | imported package", top-level entries only
        if line.startswith("import time:") and "|" in line:
            parts = line.split("|")
            name = parts[2]
            if name.startswith(" clonekit") and not name.startswith("  "):
                total += int(parts[1])
    return total


if __name__ == "__main__":
    runs = 9
    for label, stmt in (("import clonekit", "import clonekit"),
                        ("import clonekit + clone/spawn/Task",
                         "import clonekit; clonekit.spawn; clonekit.Task"),
                        ("CLI parser for `check`",
                         "from clonekit.cli import build_parser; build_parser('check')")):
        t = statistics.median(cumulative_us(stmt) for _ in range(runs))
        print(f"  {label:<40} {t / 1000:6.2f} ms (median of {runs}; target < 15 ms for import clonekit)")
