"""clonekit tasks / tree vs procps ``ps -eLf`` / psmisc ``pstree -p`` over ~2,000 processes.

Starts a few helper processes that fork ~2,000 sleeping children (cheap: fork only, no exec;
each child dies with its helper through PR_SET_PDEATHSIG), then runs each command alternately
with stdout to /dev/null and prints medians and ratios.  The clonekit CLI is run as
``/work/venv/bin/python -m clonekit`` (the interpreter running this script), with byte-code
caching on as after a normal install (PYTHONDONTWRITEBYTECODE is dropped from its environment).
Target: faster than ps and pstree.  Everything started here is stopped by pid at the end.

    /work/venv/bin/python benchmarks/inspect_tasks.py [--procs 2000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HELPER = r"""
import ctypes, os, signal, sys
n = int(sys.argv[1])
libc = ctypes.CDLL(None)
me = os.getpid()
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the helper
        if os.getppid() != me:
            os._exit(0)
        while True:
            signal.pause()
    kids.append(pid)
print(len(kids), flush=True)
sys.stdin.read()
for pid in kids:
    os.kill(pid, signal.SIGKILL)
for pid in kids:
    os.waitpid(pid, 0)
"""


def start_helpers(total: int, helpers: int = 4) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(helpers):
        n = total // helpers + (1 if i < total % helpers else 0)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", HELPER, str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()  # all children forked
    return procs


def stop_helpers(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()  # the helper kills and reaps its own children
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()  # its children follow it (PDEATHSIG)
            p.wait()
        assert p.stdout is not None
        p.stdout.close()


# as installed: byte-code caches written once and then used (this environment may disable them)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def once(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - start


def compare(title: str, cases: dict[str, list[str]], baseline: str, runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for cmd in cases.values():
        once(cmd)  # warm caches
    for _ in range(runs):
        for name, cmd in cases.items():  # interleaved: machine noise hits all alike
            samples[name].append(once(cmd))
    medians = {name: statistics.median(s) for name, s in samples.items()}
    base = medians[baseline]
    print(f"\n{title}")
    for name, t in medians.items():
        print(f"  {name:<32} {t * 1e3:8.1f} ms   {t / base:5.2f}x {baseline}")
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2000, help="sleeping processes to add")
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    ps, pstree = shutil.which("ps"), shutil.which("pstree")
    if ps is None or pstree is None:
        print("needs procps ps and psmisc pstree", file=sys.stderr)
        return 2
    ck = [sys.executable, "-m", "clonekit"]
    idle = compare(
        f"as the machine is ({len(os.listdir('/proc'))} /proc entries): start-up dominates",
        {"ps -eLf": [ps, "-eLf"], "clonekit tasks": [*ck, "tasks"]},
        "ps -eLf",
        opts.runs,
    )
    helpers = start_helpers(opts.procs)
    try:
        # the in-process scan, for the profile: what the CLI pays beyond interpreter start-up
        from clonekit.proc import iter_tasks

        t0 = time.perf_counter()
        tasks = list(iter_tasks())
        scan = time.perf_counter() - t0
        entries = len(os.listdir("/proc"))
        print(f"{len(tasks)} tasks in {entries} /proc entries; in-process scan {scan * 1e3:.1f} ms")
        pass_cmd = {"python -c pass": [sys.executable, "-c", "pass"]}
        startup = compare("interpreter start-up (for reference)", pass_cmd, "python -c pass", opts.runs)
        t = compare(
            "tasks vs ps -eLf",
            {
                "ps -eLf": [ps, "-eLf"],
                "clonekit tasks": [*ck, "tasks"],
                "clonekit tasks --json": [*ck, "tasks", "--json"],
            },
            "ps -eLf",
            opts.runs,
        )
        r = compare(
            "tree vs pstree -p",
            {"pstree -p": [pstree, "-p"], "clonekit tree": [*ck, "tree"],
             "pstree -pS": [pstree, "-pS"], "clonekit tree --ns": [*ck, "tree", "--ns"]},
            "pstree -p",
            opts.runs,
        )  # fmt: skip
    finally:
        stop_helpers(helpers)
    print("\nsummary (ratio < 1: clonekit faster)")
    print(f"  tasks / ps -eLf        {t['clonekit tasks'] / t['ps -eLf']:.2f}  (target < 1)")
    print(f"  tree / pstree -p       {r['clonekit tree'] / r['pstree -p']:.2f}  (target < 1)")
    print(f"  tree --ns / pstree -pS {r['clonekit tree --ns'] / r['pstree -pS']:.2f}")
    print(f"  python start-up alone  {startup['python -c pass'] * 1e3:.1f} ms")
    print(f"  tasks / ps -eLf before adding processes {idle['clonekit tasks'] / idle['ps -eLf']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
