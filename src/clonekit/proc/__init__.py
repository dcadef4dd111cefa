"""Readers of /proc: every task of every process, NSpid chains, namespace inodes.

Pure Python over procfs, in the spirit of psutil's ``_pslinux``:

- ``PROCFS`` is the procfs root; set ``clonekit.proc.PROCFS`` to point the readers at another
  tree (a fake one in tests, or the /proc of another mount namespace).
- ``/proc/PID/stat`` (and ``status``) are read once and give many fields; a :class:`Process`
  caches what it read until :meth:`Process.refresh`.
- Errors carry the pid: :class:`NoSuchProcess` (also a ``ProcessLookupError``) and
  :class:`AccessDenied` (also a ``PermissionError``), both rooted at :class:`clonekit.Error`.

Names are imported lazily so ``import clonekit.proc`` stays cheap.
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False  # not `from typing import ...`: typing costs more than a scan

#: procfs root used by every reader of this package (read at call time).
PROCFS = "/proc"

_EXPORTS = {
    "ProcError": "errors",
    "NoSuchProcess": "errors",
    "AccessDenied": "errors",
    "NS_KINDS": "stat",
    "clock_ticks": "stat",
    "boot_time": "stat",
    "user_name": "stat",
    "Process": "tasks",
    "TaskInfo": "tasks",
    "iter_pids": "tasks",
    "iter_tids": "tasks",
    "iter_processes": "tasks",
    "process_snapshot": "tasks",
    "iter_tasks": "tasks",
    "ns_inode": "tasks",
    "namespaces": "tasks",
    "TreeNode": "tree",
    "build_tree": "tree",
}

__all__ = ["PROCFS", *sorted(_EXPORTS)]

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    # ruff: noqa: F401  (re-exported lazily through __getattr__)
    from .errors import AccessDenied, NoSuchProcess, ProcError
    from .stat import NS_KINDS, boot_time, clock_ticks, user_name
    from .tasks import (
        Process,
        TaskInfo,
        iter_pids,
        iter_processes,
        iter_tasks,
        iter_tids,
        namespaces,
        ns_inode,
        process_snapshot,
    )
    from .tree import TreeNode, build_tree


def __getattr__(name: str) -> Any:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
