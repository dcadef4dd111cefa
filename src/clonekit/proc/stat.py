"""Low-level procfs reading: one read per file, parsers for ``stat`` and ``status``.

These functions take paths and bytes and return plain values; :mod:`clonekit.proc.tasks` builds
the public records on them.  Every file is read with one ``open``/``read``/``close`` (a loop only
when the file outgrows the buffer), which is what makes a full scan cheap.
"""

from __future__ import annotations

import errno
import os
import sys
from functools import cache

from clonekit.proc.errors import AccessDenied, NoSuchProcess, ProcError

#: namespace kinds with their /proc/PID/ns/ file names, in util-linux's order.
NS_KINDS: tuple[str, ...] = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")
#: the ns files that name the namespace a task's *future children* will get.
NS_FOR_CHILDREN: tuple[str, ...] = ("pid_for_children", "time_for_children")

_BUFSIZE = 8192


def procfs() -> str:
    """The procfs root in use (``clonekit.proc.PROCFS``, read at call time)."""
    root: str = sys.modules["clonekit.proc"].PROCFS
    return root


def read_bytes(path: str, pid: int | None = None) -> bytes:
    """The whole content of a /proc file; missing process -> NoSuchProcess, EACCES -> AccessDenied."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        raise NoSuchProcess(pid, path) from None
    except PermissionError:
        raise AccessDenied(pid, path) from None
    try:
        data = os.read(fd, _BUFSIZE)
        if len(data) == _BUFSIZE:  # rare: long cmdline or environ
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except ProcessLookupError:  # ESRCH: the task exited between open and read
        raise NoSuchProcess(pid, path) from None
    except PermissionError:
        raise AccessDenied(pid, path) from None
    finally:
        os.close(fd)


# (comm, state, ppid, tty_nr, utime, stime, num_threads, starttime)
StatTuple = tuple[str, str, int, int, int, int, int, int]


def parse_stat(data: bytes) -> StatTuple:
    """The fields of ``/proc/PID/stat`` that clonekit uses.

    ``comm`` may itself hold spaces and parentheses, so it is cut between the first ``(`` and the
    *last* ``)``; the numbered fields (proc(5)) follow.
    """
    lpar = data.find(b"(")
    rpar = data.rfind(b")")
    comm = data[lpar + 1 : rpar].decode("utf-8", "surrogateescape")
    f = data[rpar + 2 :].split()
    # f[0]=state(3) f[1]=ppid(4) f[4]=tty_nr(7) f[11]=utime(14) f[12]=stime(15)
    # f[17]=num_threads(20) f[19]=starttime(22)
    return (
        comm,
        f[0].decode("ascii"),
        int(f[1]),
        int(f[4]),
        int(f[11]),
        int(f[12]),
        int(f[17]),
        int(f[19]),
    )


def _line(data: bytes, key: bytes) -> bytes | None:
    """The value of ``key`` (e.g. ``b"\\nUid:"``) in a status file, without the key."""
    start = data.find(key)
    if start < 0:
        return None
    start += len(key)
    end = data.find(b"\n", start)
    return data[start:end] if end >= 0 else data[start:]


# (tgid, euid, nstgid, nspid)
StatusTuple = tuple[int, int, list[int], list[int]]


def parse_status(data: bytes) -> StatusTuple:
    """Tgid, effective uid, and the NStgid/NSpid chains (outermost namespace first)."""
    tgid_s = _line(data, b"\nTgid:")
    uid_s = _line(data, b"\nUid:")
    tgid = int(tgid_s) if tgid_s is not None else -1
    euid = int(uid_s.split()[1]) if uid_s is not None else -1
    nspid_s = _line(data, b"\nNSpid:")
    nstgid_s = _line(data, b"\nNStgid:")
    nspid = [int(x) for x in nspid_s.split()] if nspid_s is not None else []
    nstgid = [int(x) for x in nstgid_s.split()] if nstgid_s is not None else []
    return tgid, euid, nstgid, nspid


def parse_cmdline(data: bytes) -> list[str]:
    """argv from ``/proc/PID/cmdline`` (NUL separated; empty for kernel threads and zombies)."""
    if not data:
        return []
    if data.endswith(b"\0"):
        data = data[:-1]
    return data.decode("utf-8", "surrogateescape").split("\0")


@cache
def clock_ticks() -> int:
    """USER_HZ: the unit of utime/stime/starttime in /proc/PID/stat."""
    return os.sysconf("SC_CLK_TCK")


_boot_time: dict[str, float] = {}


def boot_time() -> float:
    """Boot time in epoch seconds, cached.

    For the live /proc it is ``now - CLOCK_BOOTTIME`` (what procps uses, sub-second and
    consistent with the starttime of tasks in this time namespace); for another procfs root it
    is the ``btime`` line of its ``stat``.
    """
    root = procfs()
    value = _boot_time.get(root)
    if value is None:
        if root == "/proc":
            import time

            value = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        else:
            data = read_bytes(f"{root}/stat")
            line = _line(data, b"\nbtime")
            if line is None:
                raise ProcError(
                    errno.ENOENT,
                    f"{root}/stat has no btime line: is {root} a mounted procfs?",
                    filename=f"{root}/stat",
                )
            value = float(line)
        _boot_time[root] = value
    return value


@cache
def user_name(uid: int) -> str:
    """The login name of ``uid`` from the passwd database, or the number as text."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
