"""Helpers of the sandbox tests: what the host shows of a test's cgroups, mounts, fds and
children, to compare before and after."""

from __future__ import annotations

import json
import os

CGROUP_ROOT = "/sys/fs/cgroup"
HIERARCHIES = ("memory", "pids", "cpu", "cpuacct", "unified")


def group_dirs(top: str) -> list[str]:
    """Every directory of cgroup ``top`` (itself included) in every hierarchy."""
    out = []
    for h in HIERARCHIES:
        base = f"{CGROUP_ROOT}/{h}{top}"
        for d, _, _ in os.walk(base):
            out.append(d)
    return out


def group_tasks(top: str) -> list[int]:
    pids = []
    for d in group_dirs(top):
        try:
            with open(f"{d}/cgroup.procs") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [" ".join(line.split()[3:5]) for line in f]


def fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def children() -> set[int]:
    kids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                kids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return kids


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def py(code: str) -> list[str]:
    """argv running ``code`` with the sandbox's (the host's) python3."""
    return ["python3", "-c", code]


def last_json(text: bytes | str) -> object:
    lines = (text.decode() if isinstance(text, bytes) else text).strip().splitlines()
    return json.loads(lines[-1])
