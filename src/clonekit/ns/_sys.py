"""The few raw syscalls the namespace code needs that Python 3.11's ``os`` lacks.

Order of preference: ``os.unshare``/``os.setns`` (3.12+), then clonekit's C extension
(``_native.unshare/setns/mount/umount2/prctl``), then libc through ctypes — imported on first
use only (ctypes costs milliseconds of start-up).  Every function raises ``OSError`` with the
kernel's errno.
"""

from __future__ import annotations

import os

from ..mountflags import MNT_DETACH as MNT_DETACH
from ..mountflags import MS_BIND as MS_BIND
from ..mountflags import MS_NODEV as MS_NODEV
from ..mountflags import MS_NOEXEC as MS_NOEXEC
from ..mountflags import MS_NOSUID as MS_NOSUID
from ..mountflags import MS_PRIVATE as MS_PRIVATE
from ..mountflags import MS_RDONLY as MS_RDONLY
from ..mountflags import MS_REC as MS_REC
from ..mountflags import MS_REMOUNT as MS_REMOUNT
from ..mountflags import MS_SHARED as MS_SHARED
from ..mountflags import MS_SLAVE as MS_SLAVE
from ..mountflags import MS_UNBINDABLE as MS_UNBINDABLE

TYPE_CHECKING = False  # typing costs ~10 ms of start-up
if TYPE_CHECKING:
    from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2

_libc: Any = None
_NATIVE: Any = False  # not looked up yet


def _native(name: str) -> Any:
    """``clonekit._native.<name>`` if the extension is built and has it, else None."""
    global _NATIVE
    if _NATIVE is False:
        native: Any = None
        try:
            from .. import _native as native
        except ImportError:  # pragma: no cover - extension not built
            pass
        _NATIVE = native
    return getattr(_NATIVE, name, None)


def _lib() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                              ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                              ctypes.c_ulong]
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        if path is None:
            raise OSError(err, f"{what}: {os.strerror(err)}")
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def unshare(flags: int) -> None:
    """unshare(2)."""
    fn = getattr(os, "unshare", None) or _native("unshare")
    if fn is not None:
        fn(flags)
        return
    _check(_lib().unshare(int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): ``fd`` is an nsfs file or a pidfd (then ``nstype`` is a CLONE_NEW* mask)."""
    fn = getattr(os, "setns", None) or _native("setns")
    if fn is not None:
        fn(fd, nstype)
        return
    _check(_lib().setns(fd, nstype), "setns")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    fn = _native("mount")
    if fn is not None:
        fn(source, target, fstype, flags, data)
        return
    _check(_lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    fn = _native("umount2")
    if fn is not None:
        fn(target, flags)
        return
    _check(_lib().umount2(_b(target), flags), "umount", target)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> None:
    """prctl(2) for the integer-argument options."""
    fn = _native("prctl")
    if fn is not None:
        fn(option, arg2, arg3, arg4, arg5)
        return
    _check(_lib().prctl(option, arg2, arg3, arg4, arg5), "prctl")


def raise_ambient_caps() -> None:
    """Make every permitted capability inheritable and ambient, so it survives exec as non-root
    (what ``unshare --keep-caps`` does)."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    lib = _lib()
    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    _check(lib.capget(ctypes.byref(header), data), "capget")
    for half in data:
        half.inheritable = half.permitted
    _check(lib.capset(ctypes.byref(header), data), "capset")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        word, bit = divmod(cap, 32)
        if data[word].permitted & (1 << bit):
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
