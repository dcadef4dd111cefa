"""Mount propagation of the mount tree (what ``unshare --propagation`` sets)."""

from __future__ import annotations

import errno

from ..errors import KernelError, UsageError
from . import _sys

__all__ = ["PROPAGATIONS", "set_propagation"]

PROPAGATIONS = {
    "private": _sys.MS_PRIVATE,
    "slave": _sys.MS_SLAVE,
    "shared": _sys.MS_SHARED,
    "unbindable": _sys.MS_UNBINDABLE,
    "unchanged": 0,
}


def check_propagation(mode: str) -> str:
    if mode not in PROPAGATIONS:
        raise UsageError(f"unknown propagation {mode!r}: use private, slave, shared or unchanged")
    return mode


def set_propagation(mode: str, path: str = "/", *, recursive: bool = True) -> None:
    """Set the propagation of the mount at ``path`` (and below it, with ``recursive``).
    Do this in a new mount namespace: on the host it changes every process's view."""
    flags = PROPAGATIONS[check_propagation(mode)]
    if not flags:
        return
    if recursive:
        flags |= _sys.MS_REC
    try:
        _sys.mount(None, path, None, flags)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EINVAL:
            hint = f" ({path} is not a mount point)"
        elif exc.errno == errno.EPERM:
            hint = " (needs CAP_SYS_ADMIN in the user namespace owning this mount namespace)"
        raise KernelError(exc.errno or 0, f"cannot make mounts {mode}: {exc.strerror}{hint}",
                          step=f"mount --make-r{mode}", filename=path) from None
