"""What cgroup resource limits add to `run`: /bin/true with memory + pids + cpu limits vs the same
bundle without, under clonekit and runc side by side (the issue's bar: clonekit's added cost no
more than runc's).

Limits: memory 64 MiB (memsw the same), reservation 32 MiB, pids 20, cpu shares 512 with a
50 ms / 100 ms quota.  Rounds interleave the four cases so drift hits all; medians per container.

Run: .venv/bin/python benchmarks/resources.py      (root; runc from Debian)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lifecycle import HIERARCHIES, _fixtures, _make_parent_groups, clonekit_cmd

LOOPS = int(os.environ.get("LOOPS", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
MIB = 1 << 20
LIMITS = {"memory": {"limit": 64 * MIB, "swap": 64 * MIB, "reservation": 32 * MIB},
          "pids": {"limit": 20}, "cpu": {"shares": 512, "quota": 50000, "period": 100000}}


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    fx = _fixtures()
    work = tempfile.mkdtemp(prefix="clonekit-bench-res-")
    _make_parent_groups()
    try:
        rootfs = os.path.join(work, "rootfs")
        from clonekit.runtime.busybox import build_rootfs

        build_rootfs(rootfs)
        runtimes = {"clonekit": [*clonekit_cmd(), "--root", os.path.join(work, "state-ck")]}
        if shutil.which("runc"):
            runtimes["runc"] = ["runc", "--root", os.path.join(work, "state-runc")]
        times: dict[tuple[str, bool], list[float]] = {(n, lim): [] for n in runtimes for lim in (False, True)}
        for rnd in range(ROUNDS + 1):  # round 0 warms up
            for (name, limited), samples in times.items():
                for _ in range(LOOPS):
                    cid = f"bench-{name}-{uuid.uuid4().hex[:8]}"
                    bundle = os.path.join(work, cid)
                    os.mkdir(bundle)
                    config = fx.base_config(rootfs, ["/bin/true"], cid)
                    config["linux"]["cgroupsPath"] = f"/clonekit-bench/{cid}"
                    if limited:
                        config["linux"]["resources"] = LIMITS
                    with open(os.path.join(bundle, "config.json"), "w") as f:
                        json.dump(config, f)
                    start = time.perf_counter()
                    proc = subprocess.run([*runtimes[name], "run", "--bundle", bundle, cid],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    elapsed = time.perf_counter() - start
                    if proc.returncode != 0:
                        raise SystemExit(f"{name} run failed: {proc.stderr.decode()}")
                    if rnd:
                        samples.append(elapsed)
                    shutil.rmtree(bundle)
        print(f"\nrun /bin/true, with and without memory+pids+cpu limits ({ROUNDS} rounds x {LOOPS}, "
              "median per container)")
        for name in runtimes:
            bare, limited = (statistics.median(times[(name, lim)]) for lim in (False, True))
            print(f"  {name:<9} without {bare * 1e3:6.1f} ms   with {limited * 1e3:6.1f} ms   "
                  f"added {(limited - bare) * 1e3:+5.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for top in HIERARCHIES:
            try:
                os.rmdir(f"/sys/fs/cgroup/{top}/clonekit-bench")
            except OSError:
                pass


if __name__ == "__main__":
    main()
