"""Mount propagation of the mount tree (what ``unshare --propagation`` sets)."""

from __future__ import annotations

from ..errors import UsageError
from ..mountflags import MS_PRIVATE, MS_REC, MS_SHARED, MS_SLAVE, MS_UNBINDABLE

__all__ = ["PROPAGATIONS", "set_propagation"]

PROPAGATIONS = {
    "private": MS_PRIVATE,
    "slave": MS_SLAVE,
    "shared": MS_SHARED,
    "unbindable": MS_UNBINDABLE,
    "unchanged": 0,
}


def check_propagation(mode: str) -> str:
    if mode not in PROPAGATIONS:
        raise UsageError(f"unknown propagation {mode!r}: use private, slave, shared or unchanged")
    return mode


def set_propagation(mode: str, path: str = "/", *, recursive: bool = True) -> None:
    """Set the propagation of the mount at ``path`` (and below it, with ``recursive``).
    Do this in a new mount namespace: on the host it changes every process's view.
    Raises a KernelError (a RootfsError: errno, step, path, hint) when the kernel refuses."""
    flags = PROPAGATIONS[check_propagation(mode)]
    if not flags:
        return
    if recursive:
        flags |= MS_REC
    # the one mount(MS_<propagation>) helper, shared with the container's rootfs setup
    from ..rootfs.pivot import set_tree_propagation

    set_tree_propagation(flags, path, step=f"mount --make-{'r' if recursive else ''}{mode}")
