"""clonekit unshare vs util-linux unshare: ``unshare -f -p -m -u -i -n -- /bin/true``.

Runs the commands alternately (so machine noise hits all alike), prints medians and the ratio.
Target: clonekit within 1.5x of util-linux.  Needs root (the namespaces are not user-owned).
Floors measured alongside: the bare interpreter, ``clonekit --version`` (the CLI's own start-up)
and the import of the library modules ``clonekit unshare`` runs (what is left above the floor is
theirs).  ``--ab SRC`` (repeatable) adds the same command with another source tree first on
PYTHONPATH (e.g. ``git archive HEAD src | tar -x -C /tmp/head`` for a before/after in one run).

    /work/main/.venv/bin/python benchmarks/unshare_cli.py [--runs N] [--ab /tmp/head/src]
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


LIBRARY = "import clonekit.ns.newns, clonekit.ns._child, clonekit.process"


def once(cmd: list[str], env: dict[str, str] = ENV) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--ab", metavar="SRC", action="append", default=[],
                        help="also time clonekit from this source tree (repeatable)")
    opts = parser.parse_args()
    util = shutil.which("unshare")
    if util is None:
        print("util-linux unshare is not installed: nothing to compare with")
        return 1
    peers = {"util-linux unshare": [util, *ARGS], "clonekit unshare": [*clonekit_cmd(), *ARGS],
             "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
             "clonekit --version (CLI floor)": [*clonekit_cmd()[:-1], "--version"],
             "import of the library it runs": [sys.executable, "-c", LIBRARY]}
    envs = dict.fromkeys(peers, ENV)
    for src in opts.ab:
        name = f"clonekit unshare from {src}"
        peers[name] = [*clonekit_cmd(), *ARGS]
        envs[name] = {**ENV, "PYTHONPATH": os.path.abspath(src)}
    times: dict[str, list[float]] = {name: [] for name in peers}
    for name, cmd in peers.items():  # warm the page cache
        once(cmd, envs[name])
    for _ in range(opts.runs):
        for name, cmd in peers.items():
            times[name].append(once(cmd, envs[name]))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:38s} median {value * 1000:7.2f} ms  ({value / medians['util-linux unshare']:5.2f}x)")
    ratio = medians["clonekit unshare"] / medians["util-linux unshare"]
    print(f"ratio clonekit/util-linux: {ratio:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
