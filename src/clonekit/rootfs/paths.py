"""Paths inside the rootfs, handled through fds and never by string concatenation.

Every destination is resolved with ``openat2(rootfd, rel, O_PATH, RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS)``: symlinks and ``..`` are followed as if the rootfs were ``/``, so a
rootfs holding ``/etc -> /`` or ``/tmp/x -> ../../..`` resolves *inside* itself.  Missing
components are created one at a time relative to the fd of their parent (mkdirat), following
symlinks by reading them, never by name (so a link to a directory not there yet gets it made
inside the rootfs), and the caller mounts onto the fd's ``/proc/self/fd/N`` path, so the dentry
that was checked is the one that gets the mount even if the tree is swapped under us
(CVE-2021-30465).
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _native
from .errors import RootfsError

__all__ = [
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "Root",
    "ensure_path",
    "fd_path",
    "make_path",
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
_MAX_LINKS = 40  # symlinks followed in one walk, as the kernel's MAXSYMLINKS


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
    """An O_PATH fd of ``path`` inside the rootfs, creating what is missing (see :func:`make_path`)."""
    return make_path(root, path, step=step, kind=kind, mode=mode)[0]


def make_path(root: Root, path: str, *, step: str, kind: str = "dir",
              mode: int | None = None) -> tuple[int, bool]:
    """An O_PATH fd of ``path`` inside the rootfs, creating what is missing, and whether its last
    component was created here (a tmpfs over an existing directory takes that one's mode).

    Parents are always directories; the last component is a directory (``kind="dir"``) or an
    empty regular file (``kind="file"``).  One openat2(RESOLVE_IN_ROOT) when it all exists;
    else the path is walked one component at a time from the root fd, as runc's MkdirAllInRoot
    does: each name is opened with O_NOFOLLOW relative to its parent's fd and created there
    (mkdirat/openat) when missing, a symlink is read and its target spliced into the rest of
    the path (absolute targets and ``..`` restart from, and stop at, the rootfs's top), so a
    link to a directory the image lacks (``/etc/resolv.conf -> ../run/...``) is created where
    it points inside the rootfs.  The kernel never follows a symlink by name here, and every
    directory created in is checked to still be inside the rootfs: nothing lands on the host."""
    fd = open_in_root(root, path, step=step, missing_ok=True)
    if fd >= 0:
        return fd, False
    for _ in range(_RETRIES):
        got = _walk(root, path, step=step, file=kind == "file", mode=mode)
        if got is not None:
            return got
    raise RootfsError(errno.ENOENT, step, path,
                      f"{path} kept changing while it was created: is something changing the rootfs?")


def _split_path(path: str) -> list[str]:
    """The components of ``path`` in reverse (a stack: the next one is last), without "" and "."."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


def _walk(root: Root, path: str, *, step: str, file: bool, mode: int | None) -> tuple[int, bool] | None:
    """One creating walk of ``path`` (see :func:`make_path`); None when a race undid a step (the
    caller walks again)."""
    todo = _split_path(path)
    dirs = [os.dup(root.fd)]  # the fds of the directories walked through; dirs[0] is the top
    seen = "/"                 # what has been walked, for messages
    links = lost = 0
    created = False
    try:
        while todo:
            name = todo.pop()
            if name == "..":  # the logical parent: never above the top, as RESOLVE_IN_ROOT
                if len(dirs) > 1:
                    os.close(dirs.pop())
                seen = os.path.dirname(seen) or "/"
                continue
            here = dirs[-1]
            last = not todo
            prefix = os.path.join(seen, name)
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            except FileNotFoundError:
                if ".." in todo:
                    raise RootfsError(errno.ENOENT, step, path,
                                      f"{prefix} does not exist and the rest of the path leaves it "
                                      "with '..': create it in the image") from None
                if not root.contains(here):
                    return None  # moved out of the rootfs under us: walk again from the top
                made = _create(here, name, prefix, step=step, file=last and file, mode=mode)
                if made is None:
                    return None  # the parent went away meanwhile: walk again
                if not made:
                    lost += 1
                    if lost > _RETRIES:
                        return None
                    todo.append(name)  # someone else made it meanwhile: look again
                    continue
                created = last
                try:
                    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
                except FileNotFoundError:
                    return None
            except OSError as exc:
                raise RootfsError(exc.errno or 0, step, prefix) from None
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink("", dir_fd=fd)  # this very link, not the name again
                finally:
                    os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise RootfsError(errno.ELOOP, step, path,
                                      f"more than {_MAX_LINKS} symlinks on the way to {path}")
                if target.startswith("/"):
                    for extra in dirs[1:]:
                        os.close(extra)
                    del dirs[1:]
                    seen = "/"
                todo.extend(_split_path(target))
                created = False
                continue
            if last:
                return _checked(root, fd, path, step), created
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise RootfsError(errno.ENOTDIR, step, path,
                                  f"{prefix} exists in the rootfs and is not a directory")
            dirs.append(fd)
            seen = prefix
        # the path named the top itself (only "..", "." or links to "/")
        return _checked(root, os.dup(dirs[0]), path, step), False
    finally:
        for fd in dirs:
            os.close(fd)


def _create(parent: int, name: str, prefix: str, *, step: str, file: bool, mode: int | None) -> bool | None:
    """Create ``name`` in ``parent`` (never following a symlink); False if it exists already,
    None if ``parent`` is gone (a racing rename or rmdir)."""
    try:
        if file:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644 if mode is None else mode, dir_fd=parent)
            os.close(fd)
        else:
            os.mkdir(name, 0o755 if mode is None else mode, dir_fd=parent)
    except FileExistsError:
        return False
    except FileNotFoundError:
        return None
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = f"cannot create {prefix} in the rootfs; create it in the image"
        raise RootfsError(exc.errno or 0, step, prefix, hint) from None
    return True


def reopen(root: Root, path: str, old_fd: int, *, step: str) -> int:
    """Re-resolve ``path`` after a mount on ``old_fd``'s dentry and check the new fd is on a
    different mount: an fd opened before a mount does not see it, and remount/propagation
    calls must reach the new mount."""
    try:
        if _rel(path) == ".":  # a mount over the rootfs's top: our fd is below it, its path is not
            fd = os.open(root.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
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
