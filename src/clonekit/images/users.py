"""An image's ``User`` ("", "name", "uid", "name:group", "uid:gid") as numbers, looked up in the
rootfs's /etc/passwd and /etc/group as runc and Docker do: a name must exist, a number need not
(it is used as is, with gid 0 when no passwd line gives one), and the user's supplementary
groups are the /etc/group lines that list its name.  The files are opened inside the rootfs
(openat2 RESOLVE_IN_ROOT): an image whose /etc/passwd is a symlink to /etc/passwd reads its own.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _native
from .errors import ImageError

__all__ = ["open_regular", "resolve_user"]

_IN_ROOT = 0x10 | 0x02  # RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_MAX = 4 << 20


def _read(rootfs: str, path: str) -> list[list[str]]:
    """The colon-separated lines of ``path`` inside ``rootfs`` ([] when it is missing)."""
    root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_regular(root, path.lstrip("/"))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        raise ImageError(f"{rootfs}: cannot read {path}: {exc.strerror}", err=exc.errno,
                         filename=path) from None
    finally:
        os.close(root)
    with os.fdopen(fd, "rb") as f:
        text = f.read(_MAX).decode("utf-8", "replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def open_regular(root: int, path: str, *, fifo: bool = False) -> int:
    """``path`` opened for reading inside the directory ``root`` (openat2 RESOLVE_IN_ROOT), if it
    is a regular file (or, with ``fifo``, a fifo): it is looked at through O_PATH first, as
    opening a fifo blocks and opening a device acts on the host (a watchdog opened is armed).
    Else OSError (EINVAL)."""
    fd = int(_native.openat2(root, path, os.O_PATH | os.O_CLOEXEC, 0, _IN_ROOT))
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or (fifo and stat.S_ISFIFO(mode))):
            raise OSError(errno.EINVAL, f"{path} is not a regular file (a fifo, device, socket or "
                          "directory); an image's file to read must be one")
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)  # this inode, reopened
    finally:
        os.close(fd)


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) < 2**32 - 1 else None


def resolve_user(rootfs: str | os.PathLike[str], user: str) -> tuple[int, int, tuple[int, ...]]:
    """(uid, gid, supplementary gids) of the image's ``User`` in ``rootfs``."""
    root = os.fspath(rootfs)
    name, _, group = user.partition(":")
    uid, gid, login = 0, 0, "root" if not name else ""
    if name:
        passwd = _read(root, "/etc/passwd")
        uid_n = _number(name)
        line = next((p for p in passwd if len(p) >= 4 and (p[0] == name or (uid_n is not None and
                     p[2] == name))), None)
        if line is not None:
            login, uid = line[0], _number(line[2]) or 0
            gid = _number(line[3]) or 0
        elif uid_n is not None:
            uid = uid_n
        else:
            raise ImageError(f"{root}: the image's user {name!r} is not in its /etc/passwd; give a "
                             "numeric uid, or add the user to the image", filename="/etc/passwd")
    groups = _read(root, "/etc/group")
    if group:
        gid_n = _number(group)
        line = next((g for g in groups if len(g) >= 3 and (g[0] == group or (gid_n is not None and
                     g[2] == group))), None)
        if line is not None:
            gid = _number(line[2]) or 0
        elif gid_n is not None:
            gid = gid_n
        else:
            raise ImageError(f"{root}: the image's group {group!r} is not in its /etc/group; give a "
                             "numeric gid, or add the group to the image", filename="/etc/group")
    extra: list[int] = []
    if login:
        for g in groups:
            if len(g) >= 4 and login in g[3].split(","):
                n = _number(g[2])
                if n is not None and n != gid and n not in extra:
                    extra.append(n)
    return uid, gid, tuple(extra)
