"""`exec` of /bin/true into a running container: clonekit vs runc, in the same run.

One busybox container per runtime (`sleep`), confined as a real one is (`runc spec`'s
capabilities and rlimits, podman's default seccomp profile; CONFINE=0 for the bare bundle), then
LOOPS execs per round, rounds interleaving the runtimes so drift hits both.  Each exec is the
whole command as a client runs it (process start to exit status), stdio on /dev/null.

Run: .venv/bin/python benchmarks/exec.py      (root; runc from Debian)
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
LOOPS = int(os.environ.get("LOOPS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CONFINE = os.environ.get("CONFINE", "1") != "0"
PARENT = "clonekit-bench-exec"


def _load(name: str, path: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not shutil.which("runc"):
        raise SystemExit("needs runc (Debian package: runc)")
    fx = _load("clonekit_runtime_fixtures", os.path.join(HERE, "..", "tests", "runtime", "conftest.py"))
    lifecycle = _load("clonekit_bench_lifecycle", os.path.join(HERE, "lifecycle.py"))
    # the runtime as clients start it, with its bytecode cached (a container host has it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    work = tempfile.mkdtemp(prefix="clonekit-bench-exec-")
    runtimes = {"clonekit": [*lifecycle.clonekit_cmd(), "--root", os.path.join(work, "state-ck")],
                "runc": ["runc", "--root", os.path.join(work, "state-runc")]}
    made: list[tuple[list[str], str]] = []
    try:
        from clonekit.runtime.busybox import build_rootfs

        rootfs = os.path.join(work, "rootfs")
        build_rootfs(rootfs)
        ids = {}
        for name, base in runtimes.items():
            cid = f"bench-{name}-{uuid.uuid4().hex[:8]}"
            bundle = os.path.join(work, cid)
            os.mkdir(bundle)
            config = fx.base_config(rootfs, ["/bin/sleep", "1000"], cid)
            config["linux"]["cgroupsPath"] = f"/{PARENT}/{cid}"
            if CONFINE:
                lifecycle.confine(config)
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(config, f)
            subprocess.run([*base, "run", "--detach", "--bundle", bundle, cid], check=True, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            made.append((base, cid))
            ids[name] = cid
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        for rnd in range(ROUNDS + 1):  # round 0 warms up (and writes clonekit's bytecode)
            for name, base in runtimes.items():
                cmd = [*base, "exec", ids[name], "/bin/true"]
                for _ in range(LOOPS):
                    start = time.perf_counter()
                    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    elapsed = time.perf_counter() - start
                    if proc.returncode != 0:
                        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
                    if rnd:
                        times[name].append(elapsed)
        ck, rc = statistics.median(times["clonekit"]), statistics.median(times["runc"])
        what = "confined: caps, rlimits, podman's seccomp" if CONFINE else "bare"
        print(f"\nexec /bin/true into a running busybox container, {what}")
        print(f"({ROUNDS} rounds x {LOOPS}, median per exec)")
        print(f"  clonekit  {ck * 1e3:6.1f} ms")
        print(f"  runc      {rc * 1e3:6.1f} ms")
        print(f"  runc / clonekit = {rc / ck:.2f} (target > 1: faster than runc)")
    finally:
        for base, cid in made:
            subprocess.run([*base, "delete", "--force", cid], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
        _remove_parent_groups()


def _remove_parent_groups() -> None:
    """runc leaves the parent group it made in each hierarchy; both containers are gone."""
    top = "/sys/fs/cgroup"
    for hierarchy in os.listdir(top):
        group = os.path.join(top, hierarchy, PARENT)
        if os.path.islink(os.path.join(top, hierarchy)) or not os.path.isdir(group):
            continue
        for dirpath, _, _ in sorted(os.walk(group), key=lambda entry: -len(entry[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
