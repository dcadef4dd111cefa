"""Errors of the /proc readers; each carries the pid (and the path) it was about."""

from __future__ import annotations

import errno as _errno

from clonekit.errors import Error


class ProcError(Error, OSError):
    """A /proc read failed for a process; ``pid`` names it, ``filename`` the file."""

    def __init__(self, err: int, message: str, *, pid: int | None = None, filename: str | None = None):
        super().__init__(err, message)
        self.pid = pid
        if filename is not None:
            self.filename = filename

    def __str__(self) -> str:
        return str(self.strerror)


class NoSuchProcess(ProcError, ProcessLookupError):
    """The process (or thread) does not exist, or exited while it was being read."""

    def __init__(self, pid: int | None, filename: str | None = None, *, what: str = "process"):
        super().__init__(
            _errno.ESRCH,
            f"no {what} with id {pid}: it does not exist or has exited "
            "(list live ones with `clonekit tasks`)",
            pid=pid,
            filename=filename,
        )


class AccessDenied(ProcError, PermissionError):
    """Reading a /proc file of the process was refused (ptrace access mode check, hidepid)."""

    def __init__(self, pid: int | None, filename: str | None = None):
        super().__init__(
            _errno.EACCES,
            f"access to {filename or 'the /proc files'} of process {pid} denied: reading it "
            "needs ptrace access to the process (same user, or CAP_SYS_PTRACE), and /proc must "
            "not be mounted with hidepid",
            pid=pid,
            filename=filename,
        )
