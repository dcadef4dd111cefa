"""Propagation of the tree, the rootfs bind, and the switch of root (pivot_root or MS_MOVE)."""

from __future__ import annotations

import errno
import os

from .. import _native
from ..mountflags import MNT_DETACH, MS_BIND, MS_MOVE, MS_REC, MS_SLAVE
from .errors import RootfsError
from .paths import fd_path

__all__ = ["bind_root", "enter_root", "set_tree_propagation"]


def set_tree_propagation(flags: int = MS_SLAVE | MS_REC, path: str = "/", *,
                         step: str = "set rootfs propagation") -> None:
    """Make the mounts at ``path`` (recursively with MS_REC) slave/private/...: with the
    default rslave nothing the container mounts propagates back to the host.  The one
    propagation helper: ``ns.set_propagation`` (``unshare --propagation``) uses it too."""
    try:
        _native.mount(None, path, None, flags, None)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EINVAL:
            hint = f"{path} is not a mount point, or the propagation flags {flags:#x} are invalid"
        elif exc.errno == errno.EPERM:
            hint = ("needs CAP_SYS_ADMIN in the user namespace owning this mount namespace: "
                    "run inside a new one")
        raise RootfsError(exc.errno or 0, step, path, hint) from None


def bind_root(path: str) -> str:
    """Bind the rootfs onto itself (recursively), so it is a mount point pivot_root accepts.
    Returns the path with symlinks resolved (the kernel's name of the directory)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _bind_error(exc.errno or 0, os.path.abspath(path)) from None
    try:
        real = os.readlink(fd_path(fd))
        try:
            _native.mount(fd_path(fd), fd_path(fd), None, MS_BIND | MS_REC, None)
        except OSError as exc:
            raise _bind_error(exc.errno or 0, real) from None
    finally:
        os.close(fd)
    return real


def _bind_error(err: int, real: str) -> RootfsError:
    hint = ""
    if err == errno.ENOENT:
        hint = f"the rootfs {real} does not exist on the host (root.path in config.json)"
    elif err == errno.ENOTDIR:
        hint = f"the rootfs {real} is not a directory"
    elif err == errno.EACCES:
        hint = (f"the container's root (host uid {_host_uid_of_root()}) cannot reach {real}: every "
                "directory above it must be searchable (x) by that uid, e.g. chmod o+x")
    return RootfsError(err, "bind rootfs", real, hint)


def _host_uid_of_root() -> str:
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, outside, _count = line.split()
                if inside == "0":
                    return outside
    except OSError:
        pass
    return "unmapped"


def enter_root(path: str, *, no_pivot: bool = False) -> None:
    """Make ``path`` (a mount point) the root: pivot_root(".", ".") then detach the old root
    (stacked on "." after the call), or MS_MOVE it onto "/" and chroot with ``no_pivot``."""
    try:
        fd = os.open(path, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(exc.errno or 0, "pivot_root", path) from None
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    if no_pivot:
        _move_root(path)
        return
    # the old root, to stand on after the call: a lookup of "." from the new root's directory
    # stays on the new root (only umount crosses into the mount stacked there), and rslave on
    # it would strip the container's own mounts of their shared propagation
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _native.pivot_root(".", ".")
        except OSError as exc:
            hint = ""
            if exc.errno in (errno.EINVAL, errno.EBUSY):
                hint = ("the rootfs must be a mount point of its own (bind_root) whose parent is not "
                        "shared, and the current root must not be the initramfs (use --no-pivot there)")
            raise RootfsError(exc.errno or 0, "pivot_root", path, hint) from None
        os.fchdir(old)  # as runc and crun do
    finally:
        os.close(old)
    try:
        # "." is the old root, stacked over the new one: keep its unmount from propagating
        _native.mount(None, ".", None, MS_SLAVE | MS_REC, None)
        _native.umount2(".", MNT_DETACH)
    except OSError as exc:
        raise RootfsError(exc.errno or 0, "unmount the old root", "/") from None
    os.chdir("/")


def _detach_outside(path: str) -> None:
    """Without pivot_root the host's mounts stay in the namespace, below the chroot: detach
    those that neither hold nor lie inside the rootfs (children first), so a process that
    escapes the chroot finds less.  Best effort: mounts locked by a user namespace stay."""
    from .mountinfo import read_mountinfo

    inside = path.rstrip("/") + "/"
    for mi in reversed(read_mountinfo()):
        point = mi.mountpoint
        if point == path or point.startswith(inside) or inside.startswith(point.rstrip("/") + "/"):
            continue
        try:
            _native.umount2(point, MNT_DETACH)
        except OSError:
            pass


def _move_root(path: str) -> None:
    _detach_outside(path)
    try:
        _native.mount(".", "/", None, MS_MOVE, None)
    except OSError as exc:
        hint = "the rootfs mount cannot be moved while its parent mount is shared" \
            if exc.errno == errno.EINVAL else ""
        raise RootfsError(exc.errno or 0, "move rootfs to /", path, hint) from None
    try:
        os.chroot(".")
    except OSError as exc:
        raise RootfsError(exc.errno or 0, "chroot", path) from None
    os.chdir("/")
