"""Side by side with runc: the same `runc spec` bundle, runc's container and prepare_rootfs in a
child see the same mount table (mount points, filesystem types, per-mount options) and the same
/dev.  Known, deliberate differences are normalised and listed here:

- readonlyPaths also get nosuid,nodev,noexec here (Debian's runc 1.1 only sets ro);
- /sys/fs/cgroup: the placement of the child differs (runc puts its container in a group of its
  own), so only the hierarchy names and types are compared, plus "unified" (cgroup2 of the
  hybrid host), which runc 1.1 leaves out and clonekit mounts; clonekit honours "ro" on the
  tmpfs, which runc 1.1 leaves rw.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from rootfs_helpers import run_child

from clonekit import CloneFlag as F

SCRIPT = ("cat /proc/self/mountinfo; echo ===; "
          "for f in /dev/* /dev/pts/*; do busybox stat -c '%n %F %t %T %a %N' $f; done")


def _bundle(rootfs: str) -> str:
    bundle = os.path.dirname(rootfs)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", SCRIPT]
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def _normalise(output: str) -> tuple[dict[str, tuple[str, frozenset[str]]], list[str], set[str]]:
    mounts_text, devices_text = output.split("===\n")
    mounts: dict[str, tuple[str, frozenset[str]]] = {}
    cgroups: set[str] = set()
    for line in mounts_text.splitlines():
        left, right = line.split(" - ")
        point, options = left.split()[4], frozenset(left.split()[5].split(","))
        fstype = right.split()[0]
        if point.startswith("/sys/fs/cgroup/"):
            cgroups.add(f"{point} {fstype}")
            continue
        if point == "/sys/fs/cgroup":
            options -= {"ro", "rw"}
        if point in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"):
            options -= {"nosuid", "nodev", "noexec"}
        mounts[point] = (fstype, options)
    return mounts, sorted(devices_text.splitlines()), cgroups


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no_pivot"])
def test_same_mounts_and_devices_as_runc(rootfs, no_pivot):
    bundle = _bundle(rootfs)
    cid = f"ck-rootfs-{uuid.uuid4().hex[:10]}"
    try:
        runc = subprocess.run(["runc", "run", *(["--no-pivot"] if no_pivot else []), "--bundle", bundle, cid],
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
    assert runc.returncode == 0, runc.stderr

    from clonekit.rootfs import prepare_rootfs
    from clonekit.runtime.spec import load_plan

    plan = load_plan(bundle)

    def body():
        prepare_rootfs(plan, rootless=False, no_pivot=no_pivot)
        return subprocess.run(["/bin/sh", "-c", SCRIPT], capture_output=True, text=True).stdout

    ours = run_child(body, flags=F.NEWNS | F.NEWPID | F.NEWIPC | F.NEWUTS | F.NEWNET)
    theirs_mounts, theirs_devices, theirs_cgroups = _normalise(runc.stdout)
    our_mounts, our_devices, our_cgroups = _normalise(ours)
    assert len(theirs_mounts) >= 15 and len(theirs_devices) >= 14 and len(theirs_cgroups) >= 5
    assert our_mounts == theirs_mounts
    assert our_devices == theirs_devices
    assert our_cgroups - {"/sys/fs/cgroup/unified cgroup2"} == theirs_cgroups
