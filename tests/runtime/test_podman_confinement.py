"""podman (Debian's 4.3) driving clonekit as its OCI runtime: what podman asks for is applied, as
under runc -- before OCI runtime II, podman reported success for `--cap-drop all` and seccomp
profiles that never happened.  podman runs with private storage and run dirs, no image (a
busybox --rootfs), and its containers' groups under /clonekit-test/podman-<id>."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from runtime_helpers import RUNC, cgroup_dirs, remove_cgroup

PODMAN = shutil.which("podman")
pytestmark = pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt install podman)")

# this machine: no network for containers, and no CAP_SYS_RESOURCE to raise podman's default limits
HOST_LIMITS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
OBSERVE = "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status; " \
          "cat /sys/fs/cgroup/pids/pids.max; mknod /tmp/kmsg c 1 11 2>&1; true"


@pytest.fixture
def podman(rootfs):
    top = tempfile.mkdtemp(prefix="clonekit-podman-")
    parent = f"clonekit-test/podman-{uuid.uuid4().hex[:8]}"

    def run(runtime: str, *options: str) -> subprocess.CompletedProcess[str]:
        cmd = [PODMAN, "--root", f"{top}/storage", "--runroot", f"{top}/run", "--storage-driver", "vfs",
               "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", runtime,
               "run", "--rm", *HOST_LIMITS, "--cgroup-parent", f"/{parent}", *options,
               "--rootfs", rootfs, "/bin/sh", "-c", OBSERVE]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    try:
        yield run
    finally:
        subprocess.run([PODMAN, "--root", f"{top}/storage", "--runroot", f"{top}/run", "--storage-driver",
                        "vfs", "rm", "--all", "--force"], capture_output=True, timeout=60)
        subprocess.run([PODMAN, "--root", f"{top}/storage", "--runroot", f"{top}/run", "--storage-driver",
                        "vfs", "system", "reset", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)
        remove_cgroup(parent.split("/", 1)[1])
        assert not cgroup_dirs(parent.split("/", 1)[1])


def clonekit_command() -> str:
    command = os.path.join(os.path.dirname(sys.executable), "clonekit")
    if not os.path.exists(command):
        pytest.skip("clonekit is not installed as a command next to this interpreter")
    return command


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
@pytest.mark.parametrize("options", [
    (), ("--cap-drop", "all"), ("--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"),
    ("--security-opt", "no-new-privileges"), ("--pids-limit", "33"),
])
def test_what_podman_asks_for_is_applied_as_under_runc(podman, options):
    ours, theirs = podman(clonekit_command(), *options), podman(RUNC, *options)
    assert ours.returncode == 0 and theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert "Seccomp:\t2" in ours.stdout  # podman's default profile
    assert "Operation not permitted" in ours.stdout  # no mknod of the host's kernel log
    if options == ("--cap-drop", "all"):
        assert "CapEff:\t0000000000000000" in ours.stdout
    if "--pids-limit" in options:
        assert ours.stdout.splitlines()[7] == "33"
    else:
        assert ours.stdout.splitlines()[7] == "2048"  # podman's default, applied
