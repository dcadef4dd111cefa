"""Helpers of the cgroup tests: what the kernel says about membership, leftovers, fake trees."""

from __future__ import annotations

import os

from waiting import wait_for as wait_for  # re-exported: the tests import it from here

TOP = "/clonekit-test-cg"


def hierarchy_mounts() -> list[str]:
    """Mount points of every cgroup/cgroup2 filesystem, from the real mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(left.split()[4])
    return out


def leftovers(name: str = TOP.strip("/")) -> list[str]:
    """``<mount>/<name>`` directories that exist, in every mounted hierarchy."""
    return [os.path.join(m, name) for m in hierarchy_mounts() if os.path.isdir(os.path.join(m, name))]


def proc_cgroup(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {controller field: path} ("" is cgroup2)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, field, path = line.rstrip("\n").split(":", 2)
            out[field] = path
    return out


def cat(path: str) -> str:
    with open(path) as f:
        return f.read()


# -- fake /sys/fs/cgroup trees ----------------------------------------------------------------

def _line(n: int, dev: str, root: str, point: str, fstype: str, opts: str) -> str:
    point = point.replace(" ", "\\040")
    return f"{n} 20 {dev} {root} {point} rw,nosuid,relatime shared:{n} - {fstype} {fstype} {opts}"


def fake_unified(base: str) -> str:
    """A cgroup v2-only host (Fedora, Debian 11+, Ubuntu 21.10+)."""
    point = f"{base}/sys/fs/cgroup"
    os.makedirs(point)
    return "\n".join([
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        _line(30, "0:26", "/", point, "cgroup2", "rw,nsdelegate,memory_recursiveprot"),
    ]) + "\n"


V1_HIERARCHIES = [  # (directory, super options)
    ("systemd", "rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd"),
    ("cpu,cpuacct", "rw,cpu,cpuacct"),
    ("net_cls,net_prio", "rw,net_cls,net_prio"),
    ("memory", "rw,memory"),
    ("cpuset", "rw,cpuset"),
    ("freezer", "rw,freezer"),
    ("pids", "rw,pids"),
    ("devices", "rw,devices"),
]


def fake_legacy(base: str) -> str:
    """A cgroup v1-only host (CentOS 7 style): co-mounted controllers, name=systemd, plus things
    to ignore: another tool's named hierarchy, and a bind mount of a memory subtree."""
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
             _line(25, "0:20", "/", f"{base}/sys/fs/cgroup", "tmpfs", "ro,mode=755")]
    for i, (name, opts) in enumerate(V1_HIERARCHIES):
        os.makedirs(f"{base}/sys/fs/cgroup/{name}")
        lines.append(_line(26 + i, f"0:{40 + i}", "/", f"{base}/sys/fs/cgroup/{name}", "cgroup", opts))
    os.makedirs(f"{base}/other tool")
    lines.append(_line(60, "0:60", "/", f"{base}/other tool", "cgroup", "rw,name=othertool"))
    memory_dev = f"0:{40 + [n for n, _ in V1_HIERARCHIES].index('memory')}"
    os.makedirs(f"{base}/bound-memory")
    lines.append(_line(61, memory_dev, "/docker/abc", f"{base}/bound-memory", "cgroup", "rw,memory"))
    return "\n".join(lines) + "\n"


def fake_hybrid(base: str) -> str:
    """A hybrid host (Debian 10, Ubuntu 20.04, this machine): v1 controllers and cgroup2 at
    /sys/fs/cgroup/unified."""
    text = fake_legacy(base)
    os.makedirs(f"{base}/sys/fs/cgroup/unified")
    return text + _line(70, "0:70", "/", f"{base}/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate") + "\n"
