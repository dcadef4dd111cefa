"""Keep a namespace alive without a process: bind-mount its nsfs file onto a path
(what ``unshare --net=FILE`` and ``ip netns add`` do), and release it again.

A mount namespace can only be persisted onto a mount that does not propagate (not "shared"):
otherwise the bind would propagate into the namespace it refers to, and the kernel refuses.
"""

from __future__ import annotations

import errno
import os

from ..errors import KernelError, UsageError
from . import _sys
from .kinds import Kind
from .namespace import Namespace, _nsfs_device

__all__ = ["mount_of", "persist", "persisted", "release"]


def mount_of(path: str) -> dict[str, str] | None:
    """The /proc/self/mountinfo entry of the mount that holds ``path``: keys mount_point,
    fstype, source, optional (the propagation tags)."""
    path = os.path.realpath(path)
    best: dict[str, str] | None = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            point = _unescape(fields[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best["mount_point"])):
                rest = right.split()
                best = {"mount_point": point, "optional": " ".join(fields[6:]),
                        "fstype": rest[0], "source": rest[1] if len(rest) > 1 else "",
                        "root": _unescape(fields[3])}
    return best


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def persisted() -> list[tuple[str, Namespace]]:
    """Every nsfs bind mount visible to the caller: (path, namespace)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if not right.startswith("nsfs "):
                continue
            fields = left.split()
            root, point = fields[3], _unescape(fields[4])
            # root is "net:[4026532281]"
            name, _, rest = root.partition(":[")
            try:
                kind = Kind(name)
                inode = int(rest.rstrip("]"))
            except ValueError:
                continue
            out.append((point, Namespace(kind, inode, _nsfs_device(), point)))
    return out


def _source(ns: Namespace | str | os.PathLike[str]) -> tuple[str, Namespace | None]:
    if isinstance(ns, Namespace):
        if ns.path is not None:
            return ns.path, ns
        fd = ns.open()
        return f"/proc/self/fd/{fd}", ns
    return os.fspath(ns), None


def persist(ns: Namespace | str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """Bind-mount namespace ``ns`` (a Namespace, or a path like /proc/PID/ns/net) onto ``path``,
    creating the file if missing.  Returns the path.  Undo with :func:`release`."""
    target = os.fspath(path)
    source, value = _source(ns)
    opened_fd = int(source.rsplit("/", 1)[1]) if source.startswith("/proc/self/fd/") else -1
    created = False
    try:
        kind = value.kind if value is not None else Namespace.from_path(source).kind
        if os.path.isdir(target):
            raise UsageError(f"cannot persist onto {target}: it is a directory; give a file path")
        if not os.path.exists(target):
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
                created = True
            except OSError as exc:
                raise KernelError(exc.errno or 0, f"cannot create the file to bind onto: {exc.strerror}",
                                  step="persist namespace", filename=target) from None
        if kind is Kind.MNT:
            info = mount_of(target)
            if info and "shared:" in info["optional"]:
                raise UsageError(
                    f"cannot persist a mount namespace onto {target}: its mount "
                    f"{info['mount_point']} propagates (shared); put the file on a private mount, e.g. "
                    f"'mount --bind DIR DIR && mount --make-private DIR'")
        try:
            _sys.mount(source, target, None, _sys.MS_BIND)
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EINVAL and kind is Kind.MNT:
                hint = (" (a mount namespace can only be bound onto a private mount, from a namespace "
                        "older than it)")
            elif exc.errno == errno.EPERM:
                hint = " (bind mounts need CAP_SYS_ADMIN over the caller's mount namespace)"
            raise KernelError(exc.errno or 0, f"cannot bind {kind} namespace onto {target}: "
                              f"{exc.strerror}{hint}", step="persist namespace", filename=target) from None
        created = False
        return target
    finally:
        if opened_fd >= 0:
            os.close(opened_fd)
        if created:
            os.unlink(target)


def release(path: str | os.PathLike[str], *, remove: bool = False) -> None:
    """Undo :func:`persist`: unmount the namespace file at ``path`` (the namespace dies once no
    process, descriptor or other mount holds it); with ``remove`` also delete the file."""
    target = os.fspath(path)
    Namespace.from_path(target)  # refuse to unmount something that is not a persisted namespace
    try:
        _sys.umount2(target, 0)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise KernelError(exc.errno or 0, f"cannot release {target}: {exc.strerror}",
                              step="umount", filename=target) from None
        _sys.umount2(target, _sys.MNT_DETACH)
    if remove:
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
