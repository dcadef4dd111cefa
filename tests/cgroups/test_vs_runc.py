"""Side by side with runc (Debian's package): the same absolute cgroupsPath puts the container in
the same group of the same hierarchies, as the container itself reports in /proc/self/cgroup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from cg_helpers import proc_cgroup

import clonekit
from clonekit.cgroups import Cgroup


def _bundle(base: str, cgroups_path: str) -> str:
    bundle = os.path.join(base, "bundle")
    os.makedirs(os.path.join(bundle, "rootfs", "bin"))
    shutil.copy("/bin/busybox", os.path.join(bundle, "rootfs", "bin", "busybox"))
    os.symlink("busybox", os.path.join(bundle, "rootfs", "bin", "cat"))
    subprocess.run(["runc", "spec"], cwd=bundle, check=True, capture_output=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/cat", "/proc/self/cgroup"]
    # no cgroup namespace, so the container reports host cgroup paths
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "cgroup"]
    config["linux"]["cgroupsPath"] = cgroups_path
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        _, field, path = line.split(":", 2)
        out[field] = path
    return out


def test_same_hierarchies_and_paths_as_runc(real: str, tmp_path: object) -> None:
    if shutil.which("runc") is None or not os.path.exists("/bin/busybox"):
        pytest.skip("needs runc and busybox-static")
    runc_path = f"{real}-runc"
    bundle = _bundle(str(tmp_path), runc_path)
    # clonekit's group first: runc removes its leaf group but not the parents it makes, so the
    # shared parent /clonekit-test-cg is one clonekit made and takes down when it is empty
    cg = Cgroup.create(real, container_id="c")
    try:
        runc = ["runc", "--root", os.path.join(str(tmp_path), "state"), "run", "ck-cg-vs-runc"]
        done = subprocess.run(runc, cwd=bundle, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        runc_seen = _parse(done.stdout)
        with clonekit.spawn(["/bin/sleep", "100"]) as t:
            cg.add(t.pid)
            ours = proc_cgroup(t.pid)
            t.kill()
            t.wait()
    finally:
        cg.remove()
    assert {f: p.replace(runc_path, real) for f, p in runc_seen.items()} == ours
    assert set(ours.values()) == {real}


def test_relative_path_is_below_the_runtimes_own_group_as_in_runc(real: str, tmp_path: object) -> None:
    """A relative cgroupsPath joins the *runtime's* own group in each hierarchy, as runc's does.
    Both runtimes are started from a group the test made (never from the machine's own groups)."""
    if shutil.which("runc") is None or not os.path.exists("/bin/busybox"):
        pytest.skip("needs runc and busybox-static")
    caller = Cgroup.create(real, container_id="caller")  # the runtimes' own group, ours
    # runc 1.1 on a hybrid host joins a relative path to the cgroup2 hierarchy's *root* instead
    # (a quirk): with the test's own top in front of the relative path, that lands in our group
    # too (<real>/<name>), where the cleanup below finds it
    relative = real.strip("/")
    seen = {}
    try:
        for name, runtime in (("runc", ["runc"]), ("ck", [sys.executable, "-m", "clonekit"])):
            bundle = _bundle(os.path.join(str(tmp_path), name), f"{relative}/{name}")
            cmd = [*runtime, "--root", os.path.join(str(tmp_path), name, "state"), "run", f"ck-rel-{name}"]
            done = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=60,
                                  preexec_fn=lambda: caller.add(os.getpid()))
            assert done.returncode == 0, done.stderr
            seen[name] = _parse(done.stdout)
    finally:
        for top in caller.paths.values():  # runc leaves the parents it made; clonekit does not
            for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                if d != top:
                    os.rmdir(d)
        caller.remove()
    leaf = f"{real}/{relative}/ck"
    assert set(seen["ck"].values()) == {leaf}, seen["ck"]
    assert seen["ck"].keys() == seen["runc"].keys()
    assert {f: p.replace("/runc", "/ck") for f, p in seen["runc"].items() if f} == \
        {f: p for f, p in seen["ck"].items() if f}
