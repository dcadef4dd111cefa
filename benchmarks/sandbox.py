"""A warm ``Sandbox.run(["/bin/true"])`` against its peers, side by side in one run:
``bwrap --unshare-all`` (the same tree: host /usr, /etc, /lib* read-only, fresh /tmp, /proc,
/dev), ``crun run`` (a busybox bundle as ``crun spec`` writes it, no cgroups), and
``subprocess.run`` (no isolation at all, the floor).  Then where the time of a sandbox run goes.

crun refuses hybrid cgroup hosts, so this script first moves itself into a private mount
namespace where /sys/fs/cgroup/unified is unmounted; every case runs there, so it is the same
for all.  Cases alternate round by round (drift hits all); medians per call.

Run: .venv/bin/python benchmarks/sandbox.py      (root; bwrap and crun from Debian)
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

from _bench import measure

LOOPS = int(os.environ.get("LOOPS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "9"))
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
TOP = "/clonekit-bench-sandbox"

BWRAP_TREE = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
              "--tmpfs", "/tmp", "--die-with-parent", "--new-session"]


def private_mounts_without_cgroup2() -> None:
    """crun 1.8 refuses a hybrid host; without the cgroup2 mount (here only) it is a v1 host."""
    from clonekit import _native

    _native.unshare(0x00020000)  # CLONE_NEWNS
    _native.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    if os.path.ismount("/sys/fs/cgroup/unified"):
        _native.umount2("/sys/fs/cgroup/unified", MNT_DETACH)


def bwrap_argv() -> list[str]:
    argv = ["bwrap", "--unshare-all", *BWRAP_TREE]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + name
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    return [*argv, "/bin/true"]


def crun_bundle(work: str) -> str:
    from clonekit.runtime.busybox import build_rootfs

    bundle = os.path.join(work, "bundle")
    os.mkdir(bundle)
    build_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["process"].update(terminal=False, args=["/bin/true"])
    config["linux"].pop("resources", None)
    config["ociVersion"] = "1.0.2"  # the newest Debian's crun 1.8 accepts
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def phases(sb: object, devnull: int) -> dict[str, tuple[float, float]]:
    """(spawn, wait) medians of the native call with growing parts of the child's op list:
    the clone with its namespaces alone, + the mount tree, + the confinement (all of it).  The
    network namespace is one made ahead, as in a run (its making is timed on its own)."""
    from clonekit import _native
    from clonekit.sandbox.nr import CLONE_NEWNET, NR

    program = sb._ops  # type: ignore[attr-defined]
    ops = list(program.ops)
    for n in range(3):
        ops[program.slots[f"stdio{n}"]] = (NR["dup3"], 0, devnull, n, 0)
    netns_slot = program.slots["netns"]
    tree_end = program.steps.index("chdir /") + 1
    flags = sb._flags & ~CLONE_NEWNET  # type: ignore[attr-defined]
    cases = {"clone + namespaces + exec": ops[:netns_slot + 1], "+ the mount tree": ops[:tree_end],
             "+ confinement (all)": ops}
    out = {}
    made = []
    for name, part in cases.items():
        spawn, wait = [], []
        for i in range(ROUNDS * LOOPS + 10):
            t = time.perf_counter()
            netns = _native.sandbox_new_netns()
            made.append(time.perf_counter() - t)
            part[netns_slot] = (NR["setns"], 0, netns, CLONE_NEWNET)
            t0 = time.perf_counter()
            pid, pidfd, err, _ = _native.sandbox_spawn(flags, part, [b"/bin/true"], [b"/bin/true"], [], -1)
            t1 = time.perf_counter()
            os.close(netns)
            assert not err, (name, err)
            os.waitpid(pid, 0)
            t2 = time.perf_counter()
            os.close(pidfd)
            if i >= 10:
                spawn.append(t1 - t0)
                wait.append(t2 - t1)
        out[name] = (statistics.median(spawn), statistics.median(wait))
    out["(a network namespace, made ahead)"] = (statistics.median(made), 0.0)
    return out


def python_share(sb: object) -> float:
    """Median, over runs, of a run's time outside the native call and the wait for the command."""
    from clonekit import _native
    from clonekit.sandbox import sandbox as module

    native, collect = _native.sandbox_spawn, module.collect
    inside = [0.0]

    def timed_spawn(*args: object) -> object:
        t = time.perf_counter()
        try:
            return native(*args)
        finally:
            inside[0] += time.perf_counter() - t

    def timed_collect(*args: object) -> object:
        t = time.perf_counter()
        try:
            return collect(*args)
        finally:
            inside[0] += time.perf_counter() - t

    _native.sandbox_spawn, module.collect = timed_spawn, timed_collect  # type: ignore[assignment]
    try:
        shares = []
        for i in range(ROUNDS * LOOPS + 10):
            inside[0] = 0.0
            t = time.perf_counter()
            sb.run(["/bin/true"])  # type: ignore[attr-defined]
            if i >= 10:
                shares.append(time.perf_counter() - t - inside[0])
        return statistics.median(shares)
    finally:
        _native.sandbox_spawn, module.collect = native, collect  # type: ignore[assignment]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    private_mounts_without_cgroup2()
    from clonekit.sandbox import Sandbox

    work = tempfile.mkdtemp(prefix="clonekit-bench-sandbox-")
    sb = Sandbox(cgroup_top=TOP)
    limited = Sandbox(memory="256m", pids=64, cgroup_top=TOP)
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        cases = {
            "Sandbox.run (warm)": lambda: sb.run(["/bin/true"]),
            "Sandbox.run, memory+pids limits": lambda: limited.run(["/bin/true"]),
        }
        if shutil.which("bwrap"):
            argv = bwrap_argv()
            cases["bwrap --unshare-all"] = lambda: subprocess.run(argv, check=True)
        if shutil.which("crun"):
            bundle = crun_bundle(work)
            state = os.path.join(work, "crun-state")

            def crun() -> None:
                subprocess.run(["crun", "--root", state, "--cgroup-manager=disabled", "run", "--bundle",
                                bundle, f"b{uuid.uuid4().hex[:12]}"], check=True, stdout=subprocess.DEVNULL)

            cases["crun run"] = crun
        cases["subprocess.run (no isolation)"] = lambda: subprocess.run(["/bin/true"], check=True)
        medians = measure(cases, loops=LOOPS, rounds=ROUNDS)
        base = medians["Sandbox.run (warm)"]
        print(f"\n/bin/true, {ROUNDS} rounds x {LOOPS}, median per call")
        for name, t in medians.items():
            print(f"  {name:<34} {t * 1e3:7.2f} ms   {t / base:5.2f}x Sandbox.run")
        print(f"  target: <= 3 ms per warm run: {_met(base <= 0.003)} ({base * 1e3:.2f} ms)")
        if "crun run" in medians:
            ratio = medians["crun run"] / base
            print(f"  target: >= 3x crun's throughput per call: {ratio:.1f}x ({_met(ratio >= 3)})")
        if "bwrap --unshare-all" in medians:
            ratio = medians["bwrap --unshare-all"] / base
            print(f"  target: faster than bwrap --unshare-all: {ratio:.1f}x ({_met(ratio > 1)})")

        print("\nwhere a run's time goes (native call alone: spawn = clone to exec, wait = exit and reap)")
        parts = phases(sb, devnull)
        netns = parts.pop("(a network namespace, made ahead)")[0]
        previous = 0.0
        for name, (spawn, wait) in parts.items():
            print(f"  {name:<28} spawn {spawn * 1e3:6.3f} ms (+{(spawn - previous) * 1e3:6.3f})   "
                  f"wait {wait * 1e3:6.3f} ms")
            previous = spawn
        print(f"  a network namespace, made ahead by a helper thread: {netns * 1e3:6.3f} ms "
              "(off the run's path)")
        print(f"  Python around the native call (options to ops, pipes, poll, reap, Result): "
              f"{python_share(sb) * 1e3:6.3f} ms per run")
    finally:
        os.close(devnull)
        sb.close()
        limited.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
