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

from .errors import RootfsError
from .mountinfo import MS
from .paths import Root, fd_path, open_in_root, reopen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["mask_paths", "readonly_paths", "readonly_root"]

_NULL = os.makedev(1, 3)
_MASK_TMPFS = MS.RDONLY  # as runc: an empty read-only tmpfs
_READONLY = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC


def _open_null(root: Root) -> int:
    """The container's /dev/null when it is the real 1:3 node reached without any symlink (what
    runc binds, so the mount tables match); the runtime's own otherwise."""
    try:
        fd = open_in_root(root, "/dev/null", step="open /dev/null", no_symlinks=True)
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


def _resolve(root: Root, path: str, step: str) -> int | None:
    try:
        return open_in_root(root, path, step=step)
    except RootfsError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def mask_paths(root: Root, paths: Iterable[str]) -> list[str]:
    """Hide each path: /dev/null over a file, an empty read-only tmpfs over a directory.
    Returns the paths that existed and were masked."""
    from .mounts import mount_on

    done: list[str] = []
    null = -1
    try:
        for path in paths:
            step = f"mask {path}"
            fd = _resolve(root, path, step)
            if fd is None:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    mount_on(fd, "tmpfs", "tmpfs", _MASK_TMPFS, None, step=step, path=path)
                else:
                    if null < 0:
                        null = _open_null(root)
                    mount_on(fd, fd_path(null), None, MS.BIND, None, step=step, path=path)
            finally:
                os.close(fd)
            done.append(path)
    finally:
        if null >= 0:
            os.close(null)
    return done


def readonly_paths(root: Root, paths: Iterable[str]) -> list[str]:
    """Bind each path onto itself (recursively) and remount it ro,nosuid,nodev,noexec, keeping
    its other flags.  Returns the paths that existed."""
    from .mounts import mount_on, remount

    done: list[str] = []
    for path in paths:
        step = f"readonly {path}"
        fd = _resolve(root, path, step)
        if fd is None:
            continue
        try:
            mount_on(fd, fd_path(fd), None, MS.BIND | MS.REC, None, step=step, path=path)
            new = reopen(root, path, fd, step=step)
            try:
                remount(new, _READONLY, step=step, path=path)
            finally:
                os.close(new)
        finally:
            os.close(fd)
        done.append(path)
    return done


def readonly_root(root: Root) -> None:
    """Remount the rootfs's own bind mount read-only (keeping nosuid, nodev... as they are)."""
    from .mounts import remount

    remount(root.fd, MS.RDONLY, step="remount / read-only", path="/")
