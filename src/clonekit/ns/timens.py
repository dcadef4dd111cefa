"""Time namespace clock offsets (``/proc/PID/timens_offsets``).

Offsets can only be written between ``unshare(CLONE_NEWTIME)`` and the moment the first process
enters the new namespace (a fork, or setns), by a process with CAP_SYS_TIME over it.
"""

from __future__ import annotations

import errno
import math
import os

from ..errors import KernelError, UsageError

__all__ = ["read_offsets", "set_offsets"]


def _split(seconds: float) -> tuple[int, int]:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise UsageError(f"a clock offset must be a number of seconds, not {seconds!r}")
    if isinstance(seconds, int):
        return seconds, 0
    whole = math.floor(seconds)
    return int(whole), round((seconds - whole) * 1_000_000_000) % 1_000_000_000


def set_offsets(*, monotonic: float | None = None, boottime: float | None = None,
                pid: int | str = "self") -> None:
    """Write the offsets of the time namespace ``pid``'s children will get."""
    lines = []
    for name, value in (("monotonic", monotonic), ("boottime", boottime)):
        if value is not None:
            sec, nsec = _split(value)
            lines.append(f"{name} {sec} {nsec}\n")
    if not lines:
        return
    path = f"/proc/{pid}/timens_offsets"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            for line in lines:  # one clock per write: the kernel accepts both, this names the bad one
                os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        err = exc.errno or 0
        hint = {
            errno.EACCES: "a process already entered the time namespace: offsets are fixed at that "
                          "moment; set them right after unshare, before forking",
            errno.EPERM: "needs CAP_SYS_TIME in the user namespace that owns the time namespace",
            errno.ERANGE: "the clock would go negative or overflow",
            errno.ENOENT: "this kernel has no time namespaces (Linux 5.6+)",
        }.get(err, "")
        msg = f"cannot set time namespace offsets ({' '.join(x.strip() for x in lines)}): {os.strerror(err)}"
        if hint:
            msg += f" ({hint})"
        raise KernelError(err, msg, step="write timens_offsets", filename=path) from None


def read_offsets(pid: int | str = "self") -> dict[str, float]:
    """{"monotonic": seconds, "boottime": seconds} of ``pid``'s time namespace."""
    out = {}
    with open(f"/proc/{pid}/timens_offsets") as f:
        for line in f:
            name, sec, nsec = line.split()
            out[name] = int(sec) + int(nsec) / 1e9
    return out
