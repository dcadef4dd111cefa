"""What a Sandbox is made of, validated once: the records :mod:`.tree` and :mod:`.confine`
turn into the child's ops."""

from __future__ import annotations

import os

from .._record import record
from .errors import SandboxUsageError

__all__ = ["HOST_DIRS", "NETWORKS", "Bind", "Tmpfs", "TreeOptions", "host_entries", "parse_size"]

#: the host's directories the default root shows, read-only (symlinks such as /bin -> usr/bin on
#: a merged-/usr system are made as the same symlinks)
HOST_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
NETWORKS = ("none", "loopback", "host")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@record(frozen=True)
class Bind:
    source: str        # absolute, on the host
    target: str        # absolute, in the sandbox
    readonly: bool = True
    is_dir: bool = True


@record(frozen=True)
class Tmpfs:
    target: str
    size: int          # bytes


@record(frozen=True)
class TreeOptions:
    """The sandbox's filesystem.  ``rootfs``: a directory bound read-only as ``/``; ``lower``: a
    read-only directory (an unpacked image) under a writable overlay that lives as long as the
    run; neither: a tmpfs root with the host's :data:`HOST_DIRS` bound read-only."""

    rootfs: str | None = None
    lower: str | None = None
    host_entries: tuple[tuple[str, str | None], ...] = ()   # (name, symlink target or None)
    binds: tuple[Bind, ...] = ()
    tmpfs: tuple[Tmpfs, ...] = ()
    tmp_size: int = 64 << 20
    rootless: bool = False
    protect_proc: bool = False   # read-only /proc/sys & co. (the process runs as host uid 0)


def host_entries() -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for name in HOST_DIRS:
        path = "/" + name
        if os.path.islink(path):
            out.append((name, os.readlink(path)))
        elif os.path.isdir(path):
            out.append((name, None))
    return tuple(out)


def parse_size(value: int | str | None, what: str) -> int | None:
    """Bytes from an int or a string like ``"64m"`` / ``"1G"`` / ``"512k"``."""
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value <= 0:
            raise SandboxUsageError(f"{what} must be positive, not {value}")
        return value
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "")
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise SandboxUsageError(f"{what}: {value!r} is not a size (like 64m, 1g, 512k or a number "
                                "of bytes)") from None
    if size <= 0:
        raise SandboxUsageError(f"{what} must be positive, not {value!r}")
    return size
