"""Errors of cgroup placement; each names the path and keeps the kernel's errno."""

from __future__ import annotations

import errno as _errno
import os

from ..errors import KernelError, UsageError

__all__ = ["CgroupBusyError", "CgroupError", "CgroupPathError", "CgroupUnavailableError", "cgroup_error"]


class CgroupError(KernelError):
    """The kernel refused a cgroup step (mkdir, a write to ``cgroup.procs``, rmdir, ...)."""


class CgroupBusyError(CgroupError):
    """A group still has processes (or child groups that do) and so cannot be removed."""

    def __init__(self, path: str, pids: list[int], *, step: str = "rmdir") -> None:
        shown = ", ".join(str(p) for p in pids[:10]) + (" ..." if len(pids) > 10 else "")
        what = f"processes {shown} are still in it" if pids else "the kernel still counts tasks in it"
        super().__init__(
            _errno.EBUSY,
            f"cgroup {path} cannot be removed: {what}; kill them first "
            "(`kill --all ID KILL`, or `delete --force`)",
            step=step, filename=path,
        )
        self.pids = pids

    def __str__(self) -> str:
        return f"{self.step}: EBUSY: {self.strerror}"


class CgroupUnavailableError(CgroupError):
    """There is no cgroup to act on: none mounted, or placement was skipped (rootless)."""

    def __init__(self, message: str, *, step: str = "cgroup") -> None:
        super().__init__(_errno.ENOENT, message, step=step)

    def __str__(self) -> str:
        return f"{self.step}: {self.strerror}"


class CgroupPathError(UsageError):
    """A cgroupsPath clonekit will not use (systemd ``slice:prefix:name`` form, ``..``, ...)."""


_HINTS = {
    _errno.EACCES: "clonekit needs root (or a delegated cgroup2 subtree) to manage this group",
    _errno.EPERM: "clonekit needs root (or a delegated cgroup2 subtree) to manage this group",
    _errno.EROFS: "the cgroup filesystem is mounted read-only here (inside a container?)",
    _errno.ENOSPC: "the v1 cpuset group has no cpus or mems (cpuset.cpus / cpuset.mems are empty)",
    _errno.ESRCH: "the process has already exited",
    _errno.EOPNOTSUPP: "the group is threaded or a domain-invalid cgroup2 group",
    _errno.ENOENT: "the group or its parent does not exist (removed meanwhile?)",
    _errno.ENODEV: "the group was removed meanwhile",
}


def cgroup_error(exc: OSError | int, step: str, path: str, hint: str = "") -> CgroupError:
    """A :class:`CgroupError` for ``step`` on ``path`` with the system's text and a hint."""
    err = exc if isinstance(exc, int) else (exc.errno or 0)
    text = os.strerror(err)
    hint = hint or _HINTS.get(err, "")
    if hint:
        text = f"{text}: {hint}"
    return CgroupError(err, text, step=step, filename=path)
