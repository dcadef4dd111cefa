"""Paths inside the rootfs, handled through fds and never by string concatenation.

Every destination is resolved with ``openat2(rootfd, rel, O_PATH, RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)``: symlinks and ``..`` are followed as if the rootfs were ``/``, so a
rootfs holding ``/etc -> /`` or ``/tmp/x -> ../../..`` resolves *inside* itself.  Missing
components are created one at a time relative to the fd of their parent (mkdirat), and the
caller mounts onto the fd's ``/proc/self/fd/N`` path, so the dentry that was checked is the one
that gets the mount even if the tree is swapped under us (CVE-2021-30465).
"""

from __future__ import annotations

import errno
import os

from .. import _native
from .errors import RootfsError

__all__ = [
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "Root",
    "ensure_path",
    "fd_path",
    "mount_id",
    "open_in_root",
    "reopen",
]

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_RETRIES = 8  # openat2 returns EAGAIN when a rename raced with a ".." walk


class Root:
    """The rootfs: its host path (symlinks resolved) and an O_PATH fd of its top directory.

    Open it *after* the rootfs has been bind-mounted onto itself, so the fd is on that mount.
    ``resolved``: ``path`` is already free of symlinks (as :func:`bind_root` returns it)."""

    def __init__(self, path: str, *, resolved: bool = False):
        try:
            self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            hint = "root.path in config.json must name an existing directory on the host"
            raise RootfsError(exc.errno or 0, "open rootfs", path, hint) from None
        # the kernel's name of what was opened: symlinks resolved, as every check compares it
        self.path = path if resolved else os.readlink(fd_path(self.fd))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def contains(self, fd: int) -> bool:
        """Whether ``fd`` (any fd) names something inside the rootfs right now."""
        try:
            where = os.readlink(fd_path(fd))
        except OSError:
            return False
        if self.path == "/":
            return where.startswith("/")
        return where == self.path or where.startswith(self.path + "/")

    def __repr__(self) -> str:
        return f"Root({self.path!r}, fd={self.fd})"


def fd_path(fd: int) -> str:
    """The magic link that names the file ``fd`` refers to (what mount(2) is given)."""
    return f"/proc/self/fd/{fd}"


def _rel(path: str) -> str:
    rel = path.lstrip("/")
    return rel or "."


def _openat2(dirfd: int, rel: str, flags: int, resolve: int) -> int:
    for _ in range(_RETRIES):
        try:
            return int(_native.openat2(dirfd, rel, flags | os.O_CLOEXEC, 0, resolve))
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
    return int(_native.openat2(dirfd, rel, flags | os.O_CLOEXEC, 0, resolve))


def open_in_root(root: Root, path: str, *, step: str, flags: int = os.O_PATH,
                 no_symlinks: bool = False, missing_ok: bool = False) -> int:
    """An fd of ``path`` (absolute, inside the container) resolved inside the rootfs.

    ``no_symlinks`` refuses any symlink on the way (for /proc and /sys destinations, whose
    redirection is the CVE-2019-16884 class).  Raises :class:`RootfsError`; ENOENT passes
    through as a RootfsError with errno ENOENT so callers can skip missing paths, or gives -1
    with ``missing_ok`` (no exception built: the cheap way to skip)."""
    try:
        fd = _openat2(root.fd, _rel(path), flags, _IN_ROOT | RESOLVE_NO_SYMLINKS if no_symlinks else _IN_ROOT)
    except OSError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return -1
        raise _open_error(exc.errno or 0, path, step, no_symlinks) from None
    return _checked(root, fd, path, step)


def _open_error(err: int, path: str, step: str, no_symlinks: bool) -> RootfsError:
    hint = ""
    if err == errno.ELOOP and no_symlinks:
        hint = (f"{path} or one of its parents is a symlink in the rootfs; this destination "
                "must be a real directory (a symlink could redirect the kernel's files)")
    elif err == errno.ENOSYS:
        hint = "openat2 needs Linux 5.6 or later"
    elif err == errno.EXDEV:
        hint = f"{path} resolves outside the rootfs"
    return RootfsError(err, step, path, hint)


def _checked(root: Root, fd: int, path: str, step: str) -> int:
    if not root.contains(fd):
        where = _describe(fd)
        os.close(fd)
        raise RootfsError(errno.EXDEV, step, path,
                          f"{path} resolved to {where}, outside the rootfs {root.path}; "
                          "something moved it while the container was being set up")
    return fd


def _describe(fd: int) -> str:
    try:
        return os.readlink(fd_path(fd))
    except OSError:
        return "?"


def ensure_path(root: Root, path: str, *, step: str, kind: str = "dir", mode: int | None = None) -> int:
    """An O_PATH fd of ``path`` inside the rootfs, creating what is missing.

    Parents are always directories; the last component is a directory (``kind="dir"``) or an
    empty regular file (``kind="file"``).  The deepest existing ancestor is found walking up
    from the path (usually its parent: one lookup, not one per component); each missing
    component is then created with mkdirat/openat relative to the fd of its (resolved, checked)
    parent and re-resolved from the root fd."""
    fd = open_in_root(root, path, step=step, missing_ok=True)
    if fd >= 0:
        return fd
    parts = [p for p in path.split("/") if p not in ("", ".")]
    have = len(parts) - 1  # parts[:have] is the deepest ancestor that exists
    while True:
        if have == 0:
            parent = os.dup(root.fd)
            break
        parent = _open_dir(root, "/" + "/".join(parts[:have]), path, step, missing_ok=True)
        if parent >= 0:
            break
        have -= 1
    try:
        for i in range(have, len(parts)):
            prefix = "/" + "/".join(parts[: i + 1])
            last = i == len(parts) - 1
            fd = _component(root, parent, parts[i], prefix, path, step=step,
                            file=last and kind == "file", directory=not last, mode=mode)
            os.close(parent)
            parent = fd
    except BaseException:
        os.close(parent)
        raise
    return parent


def _open_dir(root: Root, prefix: str, path: str, step: str, *, missing_ok: bool = False) -> int:
    """O_PATH|O_DIRECTORY fd of ``prefix`` (a parent of ``path``); -1 if missing and
    ``missing_ok``; a clear error if it is not a directory."""
    try:
        return open_in_root(root, prefix, step=step, flags=os.O_PATH | os.O_DIRECTORY, missing_ok=missing_ok)
    except RootfsError as exc:
        if exc.errno != errno.ENOTDIR:
            raise
        raise RootfsError(errno.ENOTDIR, step, path,
                          f"{prefix} exists in the rootfs and is not a directory") from None


def _component(root: Root, parent: int, name: str, prefix: str, path: str, *, step: str, file: bool,
               directory: bool, mode: int | None) -> int:
    """Resolve ``prefix``; if missing, create ``name`` in ``parent`` and resolve again.  Retried
    when the tree changes between the two (a racing rename or symlink swap)."""
    link = None
    for _ in range(_RETRIES):
        fd = _open_dir(root, prefix, path, step, missing_ok=True) if directory else \
            open_in_root(root, prefix, step=step, missing_ok=True)
        if fd >= 0:
            return fd
        if name == "..":
            raise RootfsError(errno.ENOENT, step, prefix)
        link = _create(parent, name, prefix, step=step, file=file, mode=mode)
    if link is not None:
        raise RootfsError(errno.ENOENT, step, prefix,
                          f"{prefix} is a symlink to {link!r}, which does not exist in the rootfs; "
                          "create the target in the image or fix the link")
    raise RootfsError(errno.ENOENT, step, prefix,
                      f"{prefix} kept disappearing while it was created: is something changing the rootfs?")


def _create(parent: int, name: str, prefix: str, *, step: str, file: bool, mode: int | None) -> str | None:
    """Create ``name`` in ``parent``; the target of the symlink found in its place, if any."""
    try:
        if file:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644 if mode is None else mode, dir_fd=parent)
            os.close(fd)
        else:
            os.mkdir(name, 0o755 if mode is None else mode, dir_fd=parent)
    except FileExistsError:
        try:
            return os.readlink(name, dir_fd=parent)  # dangling, or swapped in meanwhile
        except OSError:
            return None  # lost a race to another creator: fine
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = f"cannot create {prefix} in the rootfs; create it in the image"
        elif exc.errno == errno.ENOENT:
            return None  # the parent went away meanwhile: the caller retries
        raise RootfsError(exc.errno or 0, step, prefix, hint) from None
    return None


def reopen(root: Root, path: str, old_fd: int, *, step: str) -> int:
    """Re-resolve ``path`` after a mount on ``old_fd``'s dentry and check the new fd is on a
    different mount: an fd opened before a mount does not see it, and remount/propagation
    calls must reach the new mount."""
    try:
        fd = open_in_root(root, path, step=step)
    except RootfsError as exc:
        if exc.errno != errno.ENOENT:
            raise
        raise RootfsError(errno.ENOENT, step, path, f"{path} disappeared right after the mount on it: "
                          "something is changing the rootfs during setup") from None
    if os.fstat(fd).st_dev != os.fstat(old_fd).st_dev:
        return fd  # another filesystem: another mount (the cheap check, ~1 µs)
    if mount_id(fd) == mount_id(old_fd):
        os.close(fd)
        raise RootfsError(errno.EXDEV, step, path,
                          f"{path} no longer leads to the mount just made on it; something "
                          "changed the rootfs during setup")
    return fd


def mount_id(fd: int) -> int:
    """The id of the mount ``fd`` is on (as in /proc/self/mountinfo), from /proc/self/fdinfo."""
    info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(info, 4096)
    finally:
        os.close(info)
    at = data.find(b"mnt_id:")
    if at < 0:
        raise RootfsError(errno.ENOSYS, "read mount id", None, "/proc/self/fdinfo lacks mnt_id")
    return int(data[at + 7:data.index(b"\n", at)])
