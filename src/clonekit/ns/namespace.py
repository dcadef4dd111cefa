"""A :class:`Namespace` value read from ``/proc/PID/ns/*`` or an nsfs file, and the nsfs ioctls.

A namespace is identified by the (device, inode) of its nsfs file.  ``parent()`` and ``owner()``
ask the kernel (``NS_GET_PARENT``, ``NS_GET_USERNS``); the namespaces they return have no path,
so they keep an open nsfs descriptor for as long as the value lives (closed when it is garbage
collected, or at once with :meth:`Namespace.close`).
"""

from __future__ import annotations

import errno
import os
import stat

from ..errors import KernelError, UsageError
from .errors import NoSuchProcessError, NotANamespaceError, WrongKindError, namespace_file_error
from .kinds import Kind, kinds_from_flags

TYPE_CHECKING = False  # typing/dataclasses cost milliseconds at start-up; mypy reads this as True
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NSFS_MAGIC", "Namespace", "namespaces_of", "nstype_of_fd"]

# include/uapi/linux/nsfs.h: _IO(0xb7, n)
NS_GET_USERNS = 0xB701
NS_GET_PARENT = 0xB702
NS_GET_NSTYPE = 0xB703
NS_GET_OWNER_UID = 0xB704
NSFS_MAGIC = 0x6E736673

_nsfs_dev: int | None = None


def _nsfs_device() -> int:
    """st_dev of nsfs (one superblock for all namespaces)."""
    global _nsfs_dev
    if _nsfs_dev is None:
        _nsfs_dev = os.stat("/proc/self/ns/net").st_dev
    return _nsfs_dev


class _Handle:
    """Owns one open nsfs descriptor; closes it when the last Namespace using it goes away."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def nstype_of_fd(fd: int) -> Kind:
    """The kind of the namespace behind an nsfs descriptor (``NS_GET_NSTYPE``)."""
    import fcntl

    try:
        value = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            raise NotANamespaceError(f"descriptor {fd} is not a namespace file (nsfs)") from None
        raise
    found = kinds_from_flags(value)
    if len(found) != 1:  # pragma: no cover - a kernel newer than us
        raise NotANamespaceError(f"descriptor {fd} has an unknown namespace type {value:#x}")
    return found[0]


class Namespace:
    """One namespace: its kind and the (device, inode) of its nsfs file.

    Equality and hashing use (kind, device, inode) only.  ``path`` is where it was read from, if
    anywhere; a namespace obtained from an ioctl keeps an open descriptor instead.
    """

    __slots__ = ("_handle", "device", "inode", "kind", "path")

    def __init__(self, kind: Kind, inode: int, device: int, path: str | None = None,
                 _handle: _Handle | None = None) -> None:
        self.kind = kind
        self.inode = inode
        self.device = device
        self.path = path
        self._handle = _handle

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return (self.kind, self.inode, self.device) == (other.kind, other.inode, other.device)

    def __hash__(self) -> int:
        return hash((self.kind, self.inode, self.device))

    def __repr__(self) -> str:
        return (f"Namespace(kind={self.kind.value!r}, inode={self.inode}, device={self.device}, "
                f"path={self.path!r})")

    # ----------------------------------------------------------------- construction
    @classmethod
    def of(cls, pid: int | str = "self", kind: Kind | str = Kind.NET, *,
           for_children: bool = False) -> Namespace:
        """The namespace of ``kind`` that process ``pid`` is in (or, with ``for_children``, the
        one its children get: ``pid_for_children``/``time_for_children``)."""
        from .kinds import parse_kinds

        (k,) = parse_kinds(kind)
        name = k.proc_child_name if for_children else k.proc_name
        path = f"/proc/{pid}/ns/{name}"
        try:
            st = os.stat(path)
        except OSError as exc:
            raise _proc_error(exc, pid, path) from None
        return cls(k, st.st_ino, st.st_dev, path)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], kind: Kind | str | None = None) -> Namespace:
        """The namespace behind an nsfs file: ``/proc/PID/ns/net``, a persisted bind mount, ...
        Raises :class:`NotANamespaceError` for other files, :class:`WrongKindError` when
        ``kind`` is given and does not match."""
        path = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise namespace_file_error(exc, path) from None
        try:
            ns = cls.from_fd(fd, kind, _shown=path)
        finally:
            os.close(fd)
        return cls(ns.kind, ns.inode, ns.device, path)

    @classmethod
    def from_fd(cls, fd: int, kind: Kind | str | None = None, *, _shown: str | None = None,
                _own: bool = False) -> Namespace:
        """The namespace behind an open nsfs descriptor.  With ``_own`` the value takes
        ownership of ``fd`` (used for namespaces that have no path)."""
        st = os.fstat(fd)
        shown = _shown or f"descriptor {fd}"
        if not stat.S_ISREG(st.st_mode) or st.st_dev != _nsfs_device():
            raise NotANamespaceError(
                f"{shown} is not a namespace file: expected /proc/PID/ns/<kind> or a bind mount of "
                "one (as made by 'unshare --net=FILE' or clonekit.ns.persist)")
        actual = nstype_of_fd(fd)
        if kind is not None:
            from .kinds import parse_kinds

            (wanted,) = parse_kinds(kind)
            if wanted is not actual:
                raise WrongKindError(f"{shown} is a {actual} namespace, not a {wanted} namespace")
        handle = _Handle(fd) if _own else None
        return cls(actual, st.st_ino, st.st_dev, None, handle)

    # ----------------------------------------------------------------- relations
    def open(self) -> int:
        """A new O_CLOEXEC descriptor of this namespace (the caller closes it)."""
        if self._handle is not None and self._handle.fd >= 0:
            return os.dup(self._handle.fd)
        if self.path is None:
            raise UsageError(f"{self} has no path and no open descriptor any more")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise namespace_file_error(exc, self.path) from None
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (self.inode, self.device):
            os.close(fd)
            raise KernelError(errno.ESTALE, f"{self.path} now names another namespace "
                              f"(inode {st.st_ino}, not {self.inode}): the process changed or exited",
                              step="open namespace", filename=self.path)
        return fd

    def _related(self, request: int, what: str) -> Namespace | None:
        import fcntl

        fd = self.open()
        try:
            try:
                new = fcntl.ioctl(fd, request)
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    # the relative is outside the caller's view (an ancestor of our own namespace)
                    return None
                if exc.errno == errno.EINVAL:
                    raise UsageError(f"{self.kind} namespaces have no {what}: only pid and user "
                                     "namespaces are nested") from None
                raise KernelError(exc.errno or 0, f"{os.strerror(exc.errno or 0)}",
                                  step=f"ioctl {what}", filename=self.path) from None
        finally:
            os.close(fd)
        return Namespace.from_fd(new, _own=True)

    def parent(self) -> Namespace | None:
        """The parent pid or user namespace; None when it is outside the caller's view (the
        initial namespace, or an ancestor of the caller's own).  Other kinds: UsageError."""
        return self._related(NS_GET_PARENT, "parent")

    def owner(self) -> Namespace | None:
        """The user namespace that owns this one (None when outside the caller's view)."""
        return self._related(NS_GET_USERNS, "owning user namespace")

    @property
    def owner_uid(self) -> int:
        """For a user namespace: the uid (in the caller's view) of its creator."""
        import array
        import fcntl

        if self.kind is not Kind.USER:
            raise UsageError(f"owner_uid exists for user namespaces only, this is a {self.kind} namespace")
        fd = self.open()
        try:
            buf = array.array("I", [0])
            fcntl.ioctl(fd, NS_GET_OWNER_UID, buf, True)
            return int(buf[0])
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the descriptor a path-less namespace holds (no effect otherwise)."""
        if self._handle is not None:
            self._handle.close()

    def __str__(self) -> str:
        return f"{self.kind.value}:[{self.inode}]"


def _proc_error(exc: OSError, pid: int | str, path: str) -> Exception:
    if exc.errno == errno.ENOENT:
        if not os.path.exists(f"/proc/{pid}"):
            return NoSuchProcessError(f"no process with pid {pid} (it exited, or never existed)")
        return KernelError(errno.ENOENT, f"this kernel has no {os.path.basename(path)} namespaces",
                           step="stat", filename=path)
    return KernelError(exc.errno or 0, os.strerror(exc.errno or 0), step="stat", filename=path)


def namespaces_of(pid: int | str = "self", kinds: Any = None) -> dict[Kind, Namespace]:
    """Every namespace of ``pid`` (or those of ``kinds``), keyed by kind."""
    from .kinds import KERNEL_ORDER, parse_kinds

    wanted = KERNEL_ORDER if kinds is None else parse_kinds(kinds)
    return {k: Namespace.of(pid, k) for k in wanted}
