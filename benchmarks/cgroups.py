"""What cgroup placement adds to starting a task (run as root: python benchmarks/cgroups.py).

Prints medians (ms) of: spawn /bin/true with no cgroup; the same with a group made, the task born
in it (CLONE_INTO_CGROUP) and added to the v1 hierarchies, waited for, and the group removed —
on this host's full layout and on its cgroup2 hierarchy alone; then each step on its own.  Groups
live under /clonekit-test-cg and are removed.  (Not a pytest file: no assertions, just figures.)
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time

import clonekit
from clonekit.cgroups import Cgroup, Layout, detect

ROUNDS = int(os.environ.get("ROUNDS", "60"))


def _one(i: int, layout: Layout | None) -> float:
    t0 = time.perf_counter()
    if layout is None:
        with clonekit.spawn(["/bin/true"]) as t:
            t.wait()
        return time.perf_counter() - t0
    cg = Cgroup.create(f"/clonekit-test-cg/bench-{os.getpid()}-{i}", container_id="b", layout=layout)
    fd = cg.v2_dir_fd()
    try:
        t = clonekit.spawn(["/bin/true"], cgroup=fd)
    finally:
        if fd is not None:
            os.close(fd)
    with t:
        cg.add(t.pid, v2=fd is None)
        t.wait()
    cg.remove()
    return time.perf_counter() - t0


def _median_ms(layout: Layout | None) -> float:
    _one(0, layout)  # warm up
    return statistics.median(_one(i, layout) for i in range(ROUNDS)) * 1e3


def _steps() -> dict[str, float]:
    times: dict[str, list[float]] = {"detect (cached)": [], "create": [], "add (v1)": [], "pids": [],
                                     "signal_all(KILL)": [], "remove": []}
    for i in range(ROUNDS):
        t0 = time.perf_counter()
        detect()
        t1 = time.perf_counter()
        cg = Cgroup.create(f"/clonekit-test-cg/bench-{os.getpid()}-s{i}", container_id="b")
        t2 = time.perf_counter()
        fd = cg.v2_dir_fd()
        with clonekit.spawn(["/bin/sleep", "10"], cgroup=fd) as t:
            if fd is not None:
                os.close(fd)
            t3 = time.perf_counter()
            cg.add(t.pid, v2=fd is None)
            t4 = time.perf_counter()
            cg.pids()
            t5 = time.perf_counter()
            cg.signal_all(signal.SIGKILL)
            t6 = time.perf_counter()
            t.wait()
        t7 = time.perf_counter()
        cg.remove()
        t8 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t4 - t3, t5 - t4, t6 - t5, t8 - t7), strict=True):
            times[key].append(value)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> int:
    if os.geteuid() != 0:
        print("run as root (makes cgroups under /clonekit-test-cg)", file=sys.stderr)
        return 1
    layout = detect()
    plain = _median_ms(None)
    full = _median_ms(layout)
    print(f"spawn /bin/true, no cgroup:               {plain:7.3f} ms")
    print(f"  + group in {len(layout.targets()):2d} hierarchies ({layout.mode}): {full:7.3f} ms"
          f"  (x{full / plain:.2f}, +{full - plain:.3f} ms)")
    if layout.v2 is not None:
        v2 = _median_ms(Layout([layout.v2]))
        print(f"  + group in cgroup2 only:                {v2:7.3f} ms"
              f"  (x{v2 / plain:.2f}, +{v2 - plain:.3f} ms)")
    for step, ms in _steps().items():
        print(f"  {step:<18s} {ms:7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
