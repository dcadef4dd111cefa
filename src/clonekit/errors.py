"""clonekit's exception tree.

Everything clonekit raises on purpose derives from :class:`Error`.  Failures that come from the
kernel also derive from :class:`OSError` and keep the kernel's ``errno``, so callers that already
handle ``OSError`` keep working.  Every message says what failed, why, and what to do.
"""

from __future__ import annotations

import errno as _errno
import os


class Error(Exception):
    """Root of every error clonekit raises on purpose."""


class UsageError(Error, ValueError):
    """Bad input from the caller: an unknown flag name, a wrong type, an impossible option."""


class KernelError(Error, OSError):
    """The kernel refused a step (or would refuse it).

    ``errno`` is the kernel's errno; ``step`` names what was being done (e.g. ``"clone3"``,
    ``"mount /proc"``); ``filename`` is the path involved, if any.
    """

    def __init__(self, err: int, message: str, *, step: str = "", filename: str | None = None):
        super().__init__(err, message)
        self.step = step
        if filename is not None:
            self.filename = filename

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        where = f"{self.step}: " if self.step else ""
        path = f" ({self.filename})" if self.filename else ""
        return f"{where}{name}: {self.strerror}{path}"


def errno_name(err: int) -> str:
    """``"EINVAL"`` for 22; the number as text when Python does not know it."""
    return _errno.errorcode.get(err, str(err))


def from_errno(err: int, step: str, hint: str = "", filename: str | None = None) -> KernelError:
    """A KernelError with the system's text for ``err`` plus an optional hint."""
    text = os.strerror(err)
    if hint:
        text = f"{text}: {hint}"
    return KernelError(err, text, step=step, filename=filename)
