"""Low-level procfs reading: one read per file, parsers for ``stat`` and ``status``.

These functions take paths and bytes and return plain values; :mod:`clonekit.proc.tasks` builds
the public records on them.  Every file is read with one ``open``/``read``/``close`` (a loop only
when the file outgrows the buffer), which is what makes a full scan cheap.
"""

from __future__ import annotations

import errno
import os
import sys

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


# (comm, state, ppid, tty_nr, utime, stime, num_threads, starttime, flags)
StatTuple = tuple[str, str, int, int, int, int, int, int, int]

#: PF_KTHREAD in the flags field of stat: a kernel thread (no cmdline, uid 0, init pid ns).
PF_KTHREAD = 0x00200000


def parse_stat(data: bytes) -> StatTuple:
    """The fields of ``/proc/PID/stat`` that clonekit uses.

    ``comm`` may itself hold spaces and parentheses, so it is cut between the first ``(`` and the
    *last* ``)``; the numbered fields (proc(5)) follow.
    """
    lpar = data.find(b"(")
    rpar = data.rfind(b")")
    comm = data[lpar + 1 : rpar].decode("utf-8", "surrogateescape")
    f = data[rpar + 2 :].split(None, 20)  # fields past starttime are not needed
    # f[0]=state(3) f[1]=ppid(4) f[4]=tty_nr(7) f[6]=flags(9) f[11]=utime(14) f[12]=stime(15)
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
        int(f[6]),
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


def _ids(line: bytes) -> list[int]:
    return [int(line)] if b"\t" not in line else [int(x) for x in line.split()]


def parse_status(data: bytes) -> StatusTuple:
    """Tgid, effective uid, and the NStgid/NSpid chains (outermost namespace first).

    The lines come in the kernel's order (Tgid, ..., Uid, ..., NStgid, NSpid), so each search
    starts where the previous one ended.
    """
    find = data.find
    i = find(b"\nTgid:\t")
    if i < 0:
        return -1, -1, [], []
    i += 7
    end = find(b"\n", i)
    tgid = int(data[i:end])
    i = find(b"\nUid:\t", end)
    euid = -1
    if i >= 0:
        i = find(b"\t", i + 6) + 1  # past the real uid
        end = find(b"\t", i)
        euid = int(data[i:end])
        i = end
    else:
        i = 0
    nstgid: list[int] = []
    nspid: list[int] = []
    i = find(b"\nNStgid:\t", i)
    if i >= 0:
        end = find(b"\n", i + 9)
        nstgid = _ids(data[i + 9 : end])
        if data.startswith(b"\nNSpid:\t", end):
            i = end + 8
            nspid = _ids(data[i : find(b"\n", i)])
    return tgid, euid, nstgid, nspid


def ns_link_inode(path: str) -> int:
    """The namespace inode behind an ns link, from ``readlink`` (``"net:[4026531833]"``).

    Reading the link is about twice as cheap as ``stat`` through it (no nsfs dentry is looked
    up) and gives the same number as ``st_ino`` of the namespace file.
    """
    link = os.readlink(path)
    return int(link[link.index("[") + 1 : -1])


def parse_cmdline(data: bytes) -> list[str]:
    """argv from ``/proc/PID/cmdline`` (NUL separated; empty for kernel threads and zombies)."""
    if not data:
        return []
    if data.endswith(b"\0"):
        data = data[:-1]
    return data.decode("utf-8", "surrogateescape").split("\0")


_clock_ticks: list[int] = []  # memo (not functools.cache: functools imports collections)


def clock_ticks() -> int:
    """USER_HZ: the unit of utime/stime/starttime in /proc/PID/stat."""
    if not _clock_ticks:
        _clock_ticks.append(os.sysconf("SC_CLK_TCK"))
    return _clock_ticks[0]


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


_user_names: dict[int, str] = {}


def user_name(uid: int) -> str:
    """The login name of ``uid`` from the passwd database, or the number as text (cached)."""
    name = _user_names.get(uid)
    if name is None:
        import pwd

        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        _user_names[uid] = name
    return name
