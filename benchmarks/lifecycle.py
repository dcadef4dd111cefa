"""`run` of /bin/true in a busybox bundle: clonekit vs runc vs crun, plus peak RSS.

The bundle is confined as a real one is: `runc spec`'s capabilities, rlimits and deny-all device
rules, plus podman's default seccomp profile (CONFINE=0 measures the bare bundle instead).

Each runtime runs LOOPS containers per round; rounds interleave the runtimes so drift hits all.
crun refuses hybrid cgroup hosts, so it runs in a private mount namespace where
/sys/fs/cgroup/unified is unmounted (the issue's recipe).  Peak RSS is ru_maxrss of the runtime
process itself (GNU time's %M); the container's init is a separate process for every runtime.

Run: .venv/bin/python benchmarks/lifecycle.py      (root; runc and crun from Debian)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = int(os.environ.get("LOOPS", "10"))
HIERARCHIES = ("unified", "memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer", "cpuset",
               "systemd", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc")
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CONFINE = os.environ.get("CONFINE", "1") != "0"
# the linux.seccomp section podman 4.3 wrote into a config.json on this machine (its default profile)
PODMAN_SECCOMP = os.path.join(HERE, "podman-seccomp.json")


def confine(config: dict) -> None:
    """What `runc spec` writes (caps, NOFILE, devices) and podman's default seccomp profile."""
    from clonekit.runtime.defaults import default_config

    spec = default_config(rootless=False)
    for key in ("capabilities", "rlimits"):
        config["process"][key] = spec["process"][key]  # type: ignore[index]
    config["linux"]["resources"] = spec["linux"]["resources"]  # type: ignore[index]
    with open(PODMAN_SECCOMP) as f:
        config["linux"]["seccomp"] = json.load(f)


def _fixtures():
    path = os.path.join(HERE, "..", "tests", "runtime", "conftest.py")
    spec = importlib.util.spec_from_file_location("clonekit_runtime_fixtures", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def clonekit_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "clonekit")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "clonekit"]


def timed(cmd: list[str], rss_file: str) -> tuple[float, int]:
    """Seconds for the command, and its peak RSS in KiB.  The RSS comes from GNU time, whose
    small process forks the runtime: ru_maxrss of a child forked from this Python process would
    start at this process's own high-water mark and hide the runtime's."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
    with open(rss_file) as f:
        return elapsed, int(f.read().split()[-1])


def main() -> None:
    fx = _fixtures()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("needs GNU time (Debian package: time)")
    work = tempfile.mkdtemp(prefix="clonekit-bench-")
    _make_parent_groups()
    try:
        rootfs = os.path.join(work, "rootfs")
        from clonekit.runtime.busybox import build_rootfs

        build_rootfs(rootfs)
        runtimes = {"clonekit": [*clonekit_cmd(), "--root", os.path.join(work, "state-ck")]}
        if shutil.which("runc"):
            runtimes["runc"] = ["runc", "--root", os.path.join(work, "state-runc")]
        if shutil.which("crun"):
            runtimes["crun"] = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                                'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh",
                                "crun", "--root", os.path.join(work, "state-crun")]
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        rss: dict[str, list[int]] = {name: [] for name in runtimes}
        for rnd in range(ROUNDS + 1):  # round 0 warms up
            for name, base in runtimes.items():
                for _ in range(LOOPS):
                    cid = f"bench-{name}-{uuid.uuid4().hex[:8]}"
                    bundle = os.path.join(work, cid)
                    os.mkdir(bundle)
                    config = fx.base_config(rootfs, ["/bin/true"], cid)
                    config["linux"]["cgroupsPath"] = f"/clonekit-bench/{cid}"
                    config["ociVersion"] = "1.0.2"  # the newest Debian's crun 1.8 accepts
                    if CONFINE:
                        confine(config)
                    with open(os.path.join(bundle, "config.json"), "w") as f:
                        json.dump(config, f)
                    t, maxrss = timed([*base, "run", "--bundle", bundle, cid], os.path.join(work, "rss"))
                    if rnd:
                        times[name].append(t)
                        rss[name].append(maxrss)
                    shutil.rmtree(bundle)
        base_t = statistics.median(times["clonekit"])
        what = "confined: caps, rlimits, devices, podman's seccomp" if CONFINE else "bare"
        print(f"\nrun /bin/true in a busybox bundle, {what}")
        print(f"({ROUNDS} rounds x {LOOPS}, median per container)")
        for name in runtimes:
            t = statistics.median(times[name])
            print(f"  {name:<9} {t * 1e3:7.1f} ms   {t / base_t:5.2f}x clonekit   "
                  f"peak RSS {statistics.median(rss[name]) / 1024:5.1f} MiB")
        if "runc" in times:
            ratio = statistics.median(times["runc"]) / base_t
            print(f"  runc / clonekit = {ratio:.2f} (target > 1: faster than runc)")
        if "crun" in times:
            ratio = base_t / statistics.median(times["crun"])
            print(f"  clonekit / crun = {ratio:.2f} (crun is the speed to reach)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for top in HIERARCHIES:
            try:
                os.rmdir(f"/sys/fs/cgroup/{top}/clonekit-bench")
            except OSError:
                pass


def _make_parent_groups() -> None:
    """The containers' parent group exists beforehand, as a pod's does under kubelet: then every
    runtime makes one directory per hierarchy (clonekit removes only the parents it made, runc
    none, so without this clonekit would make and remove the parent each time and runc not)."""
    for top in HIERARCHIES:
        root = f"/sys/fs/cgroup/{top}"
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        group = os.path.join(root, "clonekit-bench")
        os.makedirs(group, exist_ok=True)
        if top == "cpuset":  # a v1 cpuset group takes no task before it has cpus and mems
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(root, name)) as src, open(os.path.join(group, name), "w") as dst:
                    dst.write(src.read())


if __name__ == "__main__":
    main()
