"""What cgroup placement adds to starting a task (run as root: python benchmarks/cgroups.py).

Every case clones a Python child that execs /bin/true, waits for it and removes its group; the
cases differ in how the child gets into its group on this host's layout:

* ``no cgroup``: the baseline;
* ``add (pid write)``: born in the cgroup2 group (CLONE_INTO_CGROUP), then the parent writes the
  child's pid to each v1 hierarchy's cgroup.procs (the previous runtime path; runc does the same);
* ``join (child writes 0)``: born in the cgroup2 group, the child writes ``0`` to each v1
  ``tasks`` file itself (join_fds/join_self: no global threadgroup lock, no RCU grace period);
* ``raw syscalls (floor)``: the join path as bare mkdir / open / write / rmdir calls, no Cgroup.

Containers are not started back to back in real life, and the kernel's threadgroup lock is only
cheap to take again within a grace period of its last use: every round sleeps GAP seconds (0.1)
first, so each case meets it cold as a `clonekit run` does.  Then each step's median on its own.
Groups live under /clonekit-bench-cg and are removed.  (Not a pytest file: just figures.)
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from collections.abc import Callable

import clonekit
from clonekit.cgroups import Cgroup, Layout, detect, join_self

ROUNDS = int(os.environ.get("ROUNDS", "20"))
GAP = float(os.environ.get("GAP", "0.1"))
TOP = "/clonekit-bench-cg"  # not the tests' top group: the suite may run meanwhile


def _run_true(v2_fd: int | None = None, before_exec: Callable[[], None] | None = None,
              gate: bool = False) -> tuple[clonekit.Task, int | None]:
    """Clone a child that (optionally waits for a byte, runs ``before_exec``, then) execs
    /bin/true.  Returns the task and the write end of its gate (None without one)."""
    r, w = os.pipe() if gate else (-1, -1)
    child = clonekit.clone(cgroup=v2_fd)
    if child == 0:  # pragma: no cover - in the child
        try:
            if gate:
                os.close(w)
                os.read(r, 1)
            if before_exec is not None:
                before_exec()
            os.execv("/bin/true", ["/bin/true"])
        finally:
            os._exit(127)
    assert isinstance(child, clonekit.Task)
    if gate:
        os.close(r)
        return child, w
    return child, None


def _finish(task: clonekit.Task) -> None:
    task.wait()
    task.close()


def case_plain(i: int) -> None:
    task, _ = _run_true()
    _finish(task)


def case_add(i: int, layout: Layout | None = None) -> None:
    cg = Cgroup.create(f"{TOP}/bench-{os.getpid()}-a{i}", container_id="b", layout=layout)
    fd = cg.v2_dir_fd()
    try:
        task, gate = _run_true(fd, gate=True)
    finally:
        if fd is not None:
            os.close(fd)
    assert gate is not None
    cg.add(task.pid, v2=fd is None)
    os.write(gate, b"x")
    os.close(gate)
    _finish(task)
    cg.remove()


def case_join(i: int, layout: Layout | None = None) -> None:
    cg = Cgroup.create(f"{TOP}/bench-{os.getpid()}-j{i}", container_id="b", layout=layout)
    fd = cg.v2_dir_fd()
    fds = cg.join_fds(v2=fd is None)
    try:
        task, _ = _run_true(fd, lambda: join_self(fds))
    finally:
        for x in (*fds, *([fd] if fd is not None else [])):
            os.close(x)
    _finish(task)
    cg.remove()


def case_raw(i: int) -> None:
    """The join path with nothing but the syscalls (what any implementation must do)."""
    layout = detect()
    rel = f"{TOP}/bench-{os.getpid()}-r{i}"
    dirs = [f"{h.mountpoint}{rel}" for h in layout.targets()]
    for d in dirs:
        os.mkdir(d)
    for h, d in zip(layout.targets(), dirs, strict=True):
        if "cpuset" in h.controllers:
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(f"{h.mountpoint}{TOP}/{name}", "rb") as src, open(f"{d}/{name}", "wb") as dst:
                    dst.write(src.read())
    v2 = next((d for h, d in zip(layout.targets(), dirs, strict=True) if h.version == 2), None)
    fd = os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if v2 else None
    fds = [os.open(f"{d}/tasks", os.O_WRONLY | os.O_CLOEXEC)
           for h, d in zip(layout.targets(), dirs, strict=True) if h.version == 1]

    def join() -> None:
        for x in fds:
            os.write(x, b"0")

    try:
        task, _ = _run_true(fd, join)
    finally:
        for x in (*fds, *([fd] if fd is not None else [])):
            os.close(x)
    _finish(task)
    for d in dirs:
        os.rmdir(d)


def _medians(cases: dict[str, Callable[[int], None]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn(-1)  # warm up (imports, the layout)
    for i in range(ROUNDS):
        for name, fn in cases.items():
            time.sleep(GAP)
            t0 = time.perf_counter()
            fn(i)
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in samples.items()}


def _steps(layout: Layout) -> dict[str, float]:
    times: dict[str, list[float]] = {"detect (cached)": [], "create": [], "add v1 (pid write)": [],
                                     "join v1 (in the child)": [], "pids": [],
                                     "signal_all(KILL)": [], "remove": []}
    for i in range(ROUNDS):
        time.sleep(GAP)
        t0 = time.perf_counter()
        detect()
        t1 = time.perf_counter()
        cg = Cgroup.create(f"{TOP}/bench-{os.getpid()}-s{i}", container_id="b")
        t2 = time.perf_counter()
        fd = cg.v2_dir_fd()
        with clonekit.spawn(["/bin/sleep", "10"], cgroup=fd) as t:
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
        time.sleep(GAP)
        if fd is not None:
            os.close(fd)
        joined = _join_time(i)
        for key, value in zip(times, (t1 - t0, t2 - t1, t4 - t3, joined, t5 - t4, t6 - t5, t8 - t7),
                              strict=True):
            times[key].append(value)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _join_time(i: int) -> float:
    """join_self() timed inside a child (reported through a pipe)."""
    cg = Cgroup.create(f"{TOP}/bench-{os.getpid()}-js{i}", container_id="b")
    fd = cg.v2_dir_fd()
    fds = cg.join_fds(v2=fd is None)
    r, w = os.pipe()
    child = clonekit.clone(cgroup=fd)
    if child == 0:  # pragma: no cover - in the child
        try:
            t0 = time.perf_counter()
            join_self(fds)
            os.write(w, repr(time.perf_counter() - t0).encode())
        finally:
            os._exit(0)
    assert isinstance(child, clonekit.Task)
    for x in (*fds, w, *([fd] if fd is not None else [])):
        os.close(x)
    with os.fdopen(r, "rb") as f:
        took = float(f.read() or "nan")
    _finish(child)
    cg.remove()
    return took


def main() -> int:
    if os.geteuid() != 0:
        print(f"run as root (makes cgroups under {TOP})", file=sys.stderr)
        return 1
    layout = detect()
    made_top = []
    for h in layout.targets():
        top = f"{h.mountpoint}{TOP}"
        if not os.path.isdir(top):
            os.mkdir(top)
            made_top.append(top)
            if "cpuset" in h.controllers:
                for name in ("cpuset.cpus", "cpuset.mems"):
                    with open(f"{h.mountpoint}/{name}", "rb") as src, open(f"{top}/{name}", "wb") as dst:
                        dst.write(src.read())
    try:
        cases: dict[str, Callable[[int], None]] = {
            "no cgroup": case_plain,
            "add (pid write)": case_add,
            "join (child writes 0)": case_join,
            "raw syscalls (floor)": case_raw,
        }
        if layout.v2 is not None and layout.v1:
            v2 = Layout([layout.v2])
            cases["cgroup2 only (no v1)"] = lambda i: case_join(i, v2)
        med = _medians(cases)
        base = med["no cgroup"]
        print(f"clone + exec /bin/true + wait, group in {len(layout.targets())} hierarchies "
              f"({layout.mode}), cold (GAP {GAP}s), medians of {ROUNDS}:")
        for name, ms in med.items():
            extra = "" if name == "no cgroup" else f"  +{ms - base:6.3f} ms"
            print(f"  {name:<24s} {ms:7.3f} ms{extra}")
        print("steps:")
        for step, ms in _steps(layout).items():
            print(f"  {step:<24s} {ms:7.3f} ms")
    finally:
        for top in made_top:
            os.rmdir(top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
