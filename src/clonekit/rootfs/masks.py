"""maskedPaths, readonlyPaths and the read-only root.

Done before pivot_root, while /proc is still the runtime's own procfs: the fd-path trick needs a
/proc the container cannot have prepared (the CVE-2025-52881 class), and the config need not
mount /proc at all.  Each path is resolved inside the rootfs; a missing one is skipped.

The /dev/null that masks files is opened once (the container's if it is the real node reached
without symlinks, else the runtime's own) and checked to be the 1:3 character device before its
fd is bound (CVE-2025-31133: a /dev/null swapped for a symlink turned masking into a bind of
anything).
"""

from __future__ import annotations

import errno
import os
import stat

from ..mountflags import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
)
from .errors import RootfsError
from .paths import Root, fd_path, open_in_root, reopen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["mask_paths", "readonly_paths", "readonly_root"]

_NULL = os.makedev(1, 3)
_MASK_TMPFS = MS_RDONLY  # as runc: an empty read-only tmpfs
_READONLY = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
_READONLY_ATTR = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC


def _open_null(root: Root) -> int:
    """The container's /dev/null when it is the real 1:3 node reached without any symlink (what
    runc binds, so the mount tables match); the runtime's own otherwise."""
    try:
        fd = open_in_root(root, "/dev/null", step="open /dev/null", no_symlinks=True, missing_ok=True)
    except RootfsError:
        fd = -1
    if fd >= 0:
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == _NULL:
            return fd
        os.close(fd)
    try:
        fd = os.open("/dev/null", os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(exc.errno or 0, "open /dev/null", "/dev/null") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _NULL:
        os.close(fd)
        raise RootfsError(errno.EINVAL, "open /dev/null", "/dev/null",
                          "the runtime's /dev/null is not the 1:3 character device; refusing to "
                          "mask with it")
    return fd


def mask_paths(root: Root, paths: Iterable[str]) -> list[str]:
    """Hide each path: /dev/null over a file, an empty read-only tmpfs over a directory.
    Returns the paths that existed and were masked."""
    from .mounts import mount_on

    done: list[str] = []
    null = -1
    try:
        for path in paths:
            step = f"mask {path}"
            fd = open_in_root(root, path, step=step, missing_ok=True)
            if fd < 0:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    mount_on(fd, "tmpfs", "tmpfs", _MASK_TMPFS, None, step=step, path=path)
                else:
                    if null < 0:
                        null = _open_null(root)
                    mount_on(fd, fd_path(null), None, MS_BIND, None, step=step, path=path)
            finally:
                os.close(fd)
            done.append(path)
    finally:
        if null >= 0:
            os.close(null)
    return done


def readonly_paths(root: Root, paths: Iterable[str]) -> list[str]:
    """Bind each path onto itself (recursively) and make that mount ro,nosuid,nodev,noexec,
    keeping its other flags.  Returns the paths that existed.

    The bind is open_tree + move_mount, whose fd names the new mount itself: the flags are set
    on it with one mount_setattr, with no lookup of the path again.  Without those syscalls
    (Linux < 5.2 / 5.12): mount(2) on the fd's magic link, the path re-resolved and checked to
    lead to the new mount, then MS_REMOUNT."""
    from .mounts import bind_fd, mount_on, remount, set_attributes

    done: list[str] = []
    for path in paths:
        step = f"readonly {path}"
        fd = open_in_root(root, path, step=step, missing_ok=True)
        if fd < 0:
            continue
        try:
            new = bind_fd(fd, fd, recursive=True, step=step, path=path)
            if new < 0:
                mount_on(fd, fd_path(fd), None, MS_BIND | MS_REC, None, step=step, path=path)
                new = reopen(root, path, fd, step=step)
            try:
                if not set_attributes(new, _READONLY_ATTR, 0, step=step, path=path):
                    remount(new, _READONLY, step=step, path=path)
            finally:
                os.close(new)
        finally:
            os.close(fd)
        done.append(path)
    return done


def readonly_root(root: Root) -> None:
    """Make the rootfs's own bind mount read-only (keeping nosuid, nodev... as they are)."""
    from .mounts import remount, set_attributes

    step = "remount / read-only"
    if not set_attributes(root.fd, MOUNT_ATTR_RDONLY, 0, step=step, path="/"):
        remount(root.fd, MS_RDONLY, step=step, path="/")
