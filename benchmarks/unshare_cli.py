"""clonekit unshare vs util-linux unshare: ``unshare -f -p -m -u -i -n -- /bin/true``.

Runs both commands alternately (so machine noise hits both alike), prints medians and the ratio.
Target: clonekit within 1.5x of util-linux.  Needs root (the namespaces are not user-owned).

    /work/venv/bin/python benchmarks/unshare_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ARGS = ["-f", "-p", "-m", "-u", "-i", "-n", "--", "/bin/true"]


def clonekit_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "clonekit")
    if os.path.exists(script):
        return [script, "unshare"]
    return [sys.executable, "-m", "clonekit", "unshare"]


# Measure what users get: bytecode cached (a PYTHONDONTWRITEBYTECODE environment would make
# every run compile clonekit from source).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def once(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    opts = parser.parse_args()
    util = shutil.which("unshare")
    if util is None:
        print("util-linux unshare is not installed: nothing to compare with")
        return 1
    peers = {"util-linux unshare": [util, *ARGS], "clonekit unshare": [*clonekit_cmd(), *ARGS],
             "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
             "clonekit --version (CLI floor)": [clonekit_cmd()[0], "--version"] if len(clonekit_cmd()) == 2
             else [*clonekit_cmd()[:-1], "--version"]}
    times: dict[str, list[float]] = {name: [] for name in peers}
    for cmd in peers.values():  # warm the page cache
        once(cmd)
    for _ in range(opts.runs):
        for name, cmd in peers.items():
            times[name].append(once(cmd))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:38s} median {value * 1000:7.2f} ms")
    ratio = medians["clonekit unshare"] / medians["util-linux unshare"]
    print(f"ratio clonekit/util-linux: {ratio:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
