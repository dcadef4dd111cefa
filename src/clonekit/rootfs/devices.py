"""Device nodes and the /dev symlinks of the runtime-spec.

Rootful: mknod(at) relative to the fd of the resolved parent directory, then fchownat.
Rootless or in a user namespace (mknod is EPERM there): an empty file is created at the
destination and the host's node of the same path is bind-mounted onto it, as runc does; or, when
the runtime made the node itself on a private tmpfs (``sources.detach_devices``, as crun does),
that node's detached bind is attached there.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _native
from ..mountflags import MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH, MS_BIND
from .errors import RootfsError
from .paths import Root, ensure_path, fd_path, open_in_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ..runtime.plan import DevicePlan, Plan

__all__ = ["DEFAULT_DEVICES", "DEV_SYMLINKS", "Device", "create_device", "create_devices",
           "dev_symlinks", "needs_dev_setup"]


class Device:
    """A device to create: the fields of DevicePlan (any object with them will do)."""

    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int = 0o666,
                 uid: int = 0, gid: int = 0):
        self.path, self.type, self.major, self.minor = path, type, major, minor
        self.file_mode, self.uid, self.gid = file_mode, uid, gid

    def __repr__(self) -> str:
        return f"Device({self.path!r}, {self.type!r}, {self.major}, {self.minor})"


# config-linux.md "Default Devices"; /dev/console (terminal) and /dev/ptmx are handled apart.
DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
    Device("/dev/tty", "c", 5, 0),
)
# config.md "Dev symbolic links" (plus /dev/core like runc when the host has /proc/kcore)
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)

_FORMATS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(plan: Plan) -> bool:
    """Whether to populate /dev: not when /dev is a bind of the host's (it is already full, and
    writing there would write on the host)."""
    return not any(m.is_bind and (m.destination.rstrip("/") or "/") == "/dev" for m in plan.mounts)


def create_devices(root: Root, devices: Iterable[DevicePlan | Device], *, rootless: bool,
                   defaults: bool = True, trees: Sequence[int] = ()) -> None:
    """The default devices (unless ``defaults`` is false), then ``devices`` (a device of the
    config replaces the default of the same path), then /dev/ptmx and the /dev symlinks.
    Each parent directory (/dev for most) is resolved once for all its devices.  ``trees``:
    per device of ``devices``, the runtime's detached bind of a node it made
    (:func:`.sources.detach_devices`) or -1; each is closed by the time this returns."""
    devices = list(devices)
    made = {d.path: t for d, t in zip(devices, trees, strict=False) if t >= 0}
    wanted: dict[str, DevicePlan | Device] = {}
    if defaults:
        wanted.update((d.path, d) for d in DEFAULT_DEVICES)
    wanted.update((d.path, d) for d in devices)
    parents: dict[str, int] = {}
    old_umask = os.umask(0)  # the modes are the config's
    try:
        for dev in wanted.values():
            tree = made.pop(dev.path, -1)
            if tree >= 0:
                _bind_device(root, dev, tree=tree)
            elif rootless:
                _bind_device(root, dev)
            else:
                _mknod(root, dev, parents)
    finally:
        os.umask(old_umask)
        for tree in made.values():
            os.close(tree)
    try:
        if defaults:
            dev_symlinks(root, parents.get("/dev", -1))
    finally:
        for fd in parents.values():
            os.close(fd)


def create_device(root: Root, dev: DevicePlan | Device, *, rootless: bool) -> None:
    if rootless:
        _bind_device(root, dev)
        return
    parents: dict[str, int] = {}
    old_umask = os.umask(0)
    try:
        _mknod(root, dev, parents)
    finally:
        os.umask(old_umask)
        for fd in parents.values():
            os.close(fd)


def _split(path: str) -> tuple[str, str]:
    parent, name = os.path.split(path.rstrip("/"))
    return parent or "/", name


def _mknod(root: Root, dev: DevicePlan | Device, parents: dict[str, int]) -> None:
    """mknodat in the parent's fd (from ``parents``, the caller's cache: resolved once), under
    the caller's umask 0."""
    step = f"mknod {dev.path}"
    fmt = _FORMATS[dev.type]
    rdev = 0 if dev.type == "p" else os.makedev(dev.major, dev.minor)
    parent_path, name = _split(dev.path)
    parent = parents.get(parent_path)
    if parent is None:
        parent = parents[parent_path] = ensure_path(root, parent_path, step=step)
    try:
        try:
            os.mknod(name, fmt | (dev.file_mode & 0o7777), rdev, dir_fd=parent)
        except FileExistsError:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_IFMT(st.st_mode) == fmt and st.st_rdev == rdev:
                _chmod_in(parent, name, dev.file_mode & 0o7777)
            elif stat.S_ISDIR(st.st_mode):
                raise RootfsError(errno.EEXIST, step, dev.path,
                                  "a directory of the rootfs is in the way") from None
            else:  # a file or symlink of the image: replace it (never followed)
                os.unlink(name, dir_fd=parent)
                os.mknod(name, fmt | (dev.file_mode & 0o7777), rdev, dir_fd=parent)
        os.chown(name, dev.uid, dev.gid, dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        if isinstance(exc, RootfsError):
            raise
        hint = ""
        if exc.errno == errno.EPERM:
            hint = ("creating device nodes needs CAP_MKNOD in the initial user namespace; "
                    "rootless containers get their devices bind-mounted from the host (rootless=True)")
        raise RootfsError(exc.errno or 0, step, dev.path, hint) from None


def _chmod_in(parent: int, name: str, mode: int) -> None:
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        os.chmod(fd_path(fd), mode)
    finally:
        os.close(fd)


def _bind_device(root: Root, dev: DevicePlan | Device, *, tree: int = -1) -> None:
    """An empty file at the device's path, with the host's node of the same path bound on it,
    or ``tree`` (a detached bind of a node the runtime made) attached there (and closed)."""
    from .mounts import mount_on

    step = f"bind device {dev.path}"
    if tree >= 0:
        try:
            dst = ensure_path(root, dev.path, step=step, kind="file")
            try:
                _native.move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
            except OSError as exc:
                raise RootfsError(exc.errno or 0, step, dev.path) from None
            finally:
                os.close(dst)
        finally:
            os.close(tree)
        return
    try:
        src = os.open(dev.path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.ENOENT:
            hint = (f"the host has no {dev.path}: in a user namespace (or rootless) mknod is "
                    "refused, so devices are bind mounts of the host's node of the same path, as "
                    "with runc and crun; create it on the host or drop the device")
        raise RootfsError(exc.errno or 0, step, dev.path, hint) from None
    try:
        st = os.fstat(src)
        fmt = _FORMATS[dev.type]
        want = 0 if dev.type == "p" else os.makedev(dev.major, dev.minor)
        if stat.S_IFMT(st.st_mode) != fmt or (dev.type != "p" and st.st_rdev != want):
            raise RootfsError(errno.EINVAL, step, dev.path,
                              f"the host's {dev.path} is not the {dev.type} {dev.major}:{dev.minor} "
                              f"device the config asks for ({os.major(st.st_rdev)}:{os.minor(st.st_rdev)})")
        dst = ensure_path(root, dev.path, step=step, kind="file")
        try:
            mount_on(dst, fd_path(src), None, MS_BIND, None, step=step, path=dev.path)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def dev_symlinks(root: Root, dev_fd: int = -1) -> None:
    """/dev/ptmx -> pts/ptmx, /dev/fd -> /proc/self/fd, stdin/stdout/stderr (and /dev/core).
    ``dev_fd``: /dev already resolved by the caller (it stays the caller's to close)."""
    step = "symlink /dev/ptmx"
    dev = ensure_path(root, "/dev", step=step) if dev_fd < 0 else dev_fd
    try:
        try:
            st = os.stat("ptmx", dir_fd=dev, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(st.st_mode) and os.readlink("ptmx", dir_fd=dev) == "pts/ptmx":
                pass
            else:
                try:
                    os.unlink("ptmx", dir_fd=dev)
                except OSError as exc:
                    raise RootfsError(exc.errno or 0, step, "/dev/ptmx",
                                      "cannot remove the image's /dev/ptmx to make it a symlink") from None
        links = [*DEV_SYMLINKS, ("pts/ptmx", "ptmx")]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
            except OSError as exc:
                raise RootfsError(exc.errno or 0, f"symlink /dev/{name}", f"/dev/{name}") from None
    finally:
        if dev != dev_fd:
            os.close(dev)


def check_device(root: Root, path: str) -> tuple[int, int, int] | None:
    """(type bits, major, minor) of ``path`` inside the rootfs, or None if missing."""
    try:
        fd = open_in_root(root, path, step=f"stat {path}")
    except RootfsError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)


def bind_console(root: Root, pty_fd: int, path: str = "/dev/console") -> None:
    """Bind the pty ``pty_fd`` (the container's terminal) onto /dev/console.

    The destination is created as an empty file if missing and must be reached without any
    symlink, and the pty is bound through its own fd, so neither end can be swapped for another
    file (the CVE-2025-52565 class, where /dev/console became a bind onto /proc files)."""
    from .mounts import mount_on

    step = f"bind console {path}"
    st = os.fstat(pty_fd)
    if not stat.S_ISCHR(st.st_mode):
        raise RootfsError(errno.ENOTTY, step, path, "the console fd is not a terminal device")
    parent_path, name = _split(path)
    parent = ensure_path(root, parent_path, step=step)
    try:
        try:
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=parent)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RootfsError(exc.errno or 0, step, path) from None
    finally:
        os.close(parent)
    dst = open_in_root(root, path, step=step, no_symlinks=True)
    try:
        kind = stat.S_IFMT(os.fstat(dst).st_mode)
        if kind not in (stat.S_IFREG, stat.S_IFCHR):
            raise RootfsError(errno.EINVAL, step, path,
                              f"{path} in the rootfs is neither a file nor a device node")
        mount_on(dst, fd_path(pty_fd), None, MS_BIND, None, step=step, path=path)
    finally:
        os.close(dst)
