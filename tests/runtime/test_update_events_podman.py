"""podman update and podman stats with clonekit as podman's runtime: the limits podman sets, seen
from inside the container and changed by `podman update` (which runs the runtime's `update -r`)."""

from __future__ import annotations

import pytest
from test_clients import CLONEKIT, image_tar, needs_podman, podman  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(CLONEKIT is None, reason="clonekit is not installed as a command next to "
                                                         "this interpreter (pip install -e .)")


@needs_podman
def test_podman_update_and_stats(podman):  # noqa: F811
    cid = podman.detached("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", args=("sleep", "1000"))
    inside = podman("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split() == [str(64 << 20), "20", "50000"]
    done = podman("update", "--memory", "96m", "--cpus", "0.25", cid)  # podman 4.3 has no --pids-limit
    assert done.returncode == 0, done.stderr
    inside = podman("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert inside.stdout.split() == [str(96 << 20), "20", "25000"]
    stats = podman("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", cid)
    assert stats.returncode == 0, stats.stderr
    usage, pids = stats.stdout.strip().split("|")
    # podman 4.3 takes the limit from its own copy of the config (getMemLimit), not the group
    assert usage.split(" / ")[1] in ("67.11MB", "100.7MB") and pids == "1", stats.stdout
