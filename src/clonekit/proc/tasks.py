"""Processes and their tasks (threads) as read from /proc.

- :class:`Process` reads ``/proc/PID/stat`` once when made (so a missing pid fails at once with
  :class:`NoSuchProcess`) and ``status``/``cmdline`` once on first use; :meth:`Process.refresh`
  drops the cache.
- :class:`TaskInfo` is a plain record of one task (thread): TID, TGID, PPID, NLWP, state, comm,
  cmdline, start time, CPU time, UID and NSpid chain.
- :func:`iter_tasks`, :func:`iter_processes` and :func:`process_snapshot` scan all of /proc and
  silently skip processes and threads that exit while they are being read.
"""

from __future__ import annotations

import errno
import os

from clonekit.errors import UsageError
from clonekit.proc.errors import AccessDenied, NoSuchProcess, ProcError
from clonekit.proc.stat import (
    NS_FOR_CHILDREN,
    NS_KINDS,
    PF_KTHREAD,
    StatTuple,
    StatusTuple,
    boot_time,
    clock_ticks,
    ns_link_inode,
    parse_cmdline,
    parse_stat,
    parse_status,
    procfs,
    read_bytes,
    user_name,
)

TYPE_CHECKING = False  # collections.abc imports all of collections; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_NS_NAMES = frozenset(NS_KINDS + NS_FOR_CHILDREN)


def _check_pid(pid: object, what: str = "pid") -> int:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise UsageError(f"{what} must be a positive integer, not {pid!r}")
    return pid


def iter_pids() -> Iterator[int]:
    """The pids of all processes (thread-group leaders) visible in procfs, in /proc's order."""
    with os.scandir(procfs()) as it:
        for entry in it:
            name = entry.name
            if name.isdigit():
                yield int(name)


def iter_tids(pid: int) -> Iterator[int]:
    """The TIDs of the threads of ``pid`` (the leader's TID equals the pid)."""
    path = f"{procfs()}/{pid}/task"
    try:
        it = os.scandir(path)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        raise NoSuchProcess(pid, path) from None
    except PermissionError:
        raise AccessDenied(pid, path) from None
    with it:
        for entry in it:
            if entry.name.isdigit():
                yield int(entry.name)


def ns_inode(pid: int, kind: str, tid: int | None = None) -> int:
    """The inode number of namespace ``kind`` of ``pid`` (or of thread ``tid`` of ``pid``).

    ``kind`` is one of mnt uts ipc net pid user cgroup time, or pid_for_children /
    time_for_children.  The inode is what ``lsns`` shows in its NS column.
    """
    if kind not in _NS_NAMES:
        raise UsageError(
            f"unknown namespace kind {kind!r}: use one of {', '.join(NS_KINDS + NS_FOR_CHILDREN)}"
        )
    base = f"{procfs()}/{pid}" if tid is None else f"{procfs()}/{pid}/task/{tid}"
    path = f"{base}/ns/{kind}"
    try:
        return ns_link_inode(path)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        if not os.path.lexists(f"/proc/self/ns/{kind}"):  # the kernel, not the process, lacks it
            raise ProcError(
                errno.ENOENT,
                f"this kernel has no {kind} namespaces (no /proc/self/ns/{kind})",
                pid=pid,
                filename=path,
            ) from None
        raise NoSuchProcess(pid, path) from None  # gone, or a zombie (its namespaces are gone)
    except PermissionError:
        raise AccessDenied(pid, path) from None


def namespaces(pid: int, tid: int | None = None, kinds: Iterable[str] = NS_KINDS) -> dict[str, int]:
    """``{kind: inode}`` for ``kinds`` of ``pid`` (kinds this kernel lacks are left out)."""
    out: dict[str, int] = {}
    for kind in kinds:
        try:
            out[kind] = ns_inode(pid, kind, tid)
        except (NoSuchProcess, AccessDenied):
            raise
        except ProcError:
            continue
    return out


class TaskInfo:
    """One task (thread) of a process, as ``ps -eLf`` shows it.

    ``tid`` is ps's LWP, ``tgid`` its PID; ``starttime``/``utime``/``stime`` are in clock ticks
    (see :attr:`start_time` and :attr:`cpu_time` for seconds); ``uid`` is the effective uid;
    ``nspid`` is the task's own id in each nested PID namespace, outermost first (the ``NSpid``
    line of its status; ``nstgid`` is the same for its thread-group id).
    """

    # a plain slotted class, not a dataclass: importing dataclasses costs more than a scan
    __slots__ = (
        "cmdline",
        "comm",
        "nlwp",
        "nspid",
        "nstgid",
        "ppid",
        "starttime",
        "state",
        "stime",
        "tgid",
        "tid",
        "tty_nr",
        "uid",
        "utime",
    )
    _FIELDS = ("tid", "tgid", "ppid", "nlwp", "state", "comm", "cmdline", "tty_nr", "starttime",
               "utime", "stime", "uid", "nspid", "nstgid")  # fmt: skip

    def __init__(
        self,
        tid: int,
        tgid: int,
        ppid: int,
        nlwp: int,
        state: str,
        comm: str,
        cmdline: list[str],
        tty_nr: int,
        starttime: int,
        utime: int,
        stime: int,
        uid: int,
        nspid: list[int],
        nstgid: list[int],
    ) -> None:
        self.tid = tid
        self.tgid = tgid
        self.ppid = ppid
        self.nlwp = nlwp
        self.state = state
        self.comm = comm
        self.cmdline = cmdline
        self.tty_nr = tty_nr
        self.starttime = starttime
        self.utime = utime
        self.stime = stime
        self.uid = uid
        self.nspid = nspid
        self.nstgid = nstgid

    def _astuple(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"TaskInfo({inner})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskInfo):
            return NotImplemented
        return self._astuple() == other._astuple()

    __hash__ = None  # type: ignore[assignment]  # mutable record, like a dataclass with eq

    @property
    def pid(self) -> int:
        """ps's PID: the thread-group id."""
        return self.tgid

    @property
    def lwp(self) -> int:
        """ps's LWP: the thread id."""
        return self.tid

    @property
    def start_time(self) -> float:
        """Start time in epoch seconds."""
        return boot_time() + self.starttime / clock_ticks()

    @property
    def cpu_time(self) -> float:
        """User + system CPU time in seconds."""
        return (self.utime + self.stime) / clock_ticks()

    @property
    def user(self) -> str:
        """Login name of :attr:`uid`."""
        return user_name(self.uid)

    @property
    def command(self) -> str:
        """The command line as ps's CMD shows it; ``[comm]`` when there is none (kernel threads)."""
        return " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"

    def ns_inode(self, kind: str) -> int:
        """The inode of this task's namespace ``kind``."""
        return ns_inode(self.tgid, kind, self.tid)

    def namespaces(self, kinds: Iterable[str] = NS_KINDS) -> dict[str, int]:
        """``{kind: inode}`` of this task."""
        return namespaces(self.tgid, self.tid, kinds)


def _task(
    tid: int, tgid: int, st: StatTuple, uid: int, nstgid: list[int], nspid: list[int], cmdline: list[str]
) -> TaskInfo:
    comm, state, ppid, tty_nr, utime, stime, nlwp, starttime, _flags = st
    return TaskInfo(
        tid, tgid, ppid, nlwp, state, comm, cmdline, tty_nr, starttime, utime, stime, uid, nspid, nstgid
    )


class Process:
    """A process read from /proc; fields come from one read of ``stat`` and one of ``status``.

    ``Process(pid)`` raises :class:`NoSuchProcess` at once when there is no such process.  Values
    are a snapshot taken at the first read; call :meth:`refresh` for fresh ones.
    """

    __slots__ = ("_cmdline", "_stat", "_status", "pid")

    def __init__(self, pid: int) -> None:
        self.pid: int = _check_pid(pid)
        self._status: StatusTuple | None = None
        self._cmdline: list[str] | None = None
        self._stat: StatTuple = self._read_stat()

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, comm={self._stat[0]!r}, state={self._stat[1]!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Process):
            return NotImplemented
        return self.pid == other.pid and self.starttime == other.starttime

    def __hash__(self) -> int:
        return hash((self.pid, self.starttime))

    # -- reading ------------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return f"{procfs()}/{self.pid}/{name}"

    def _read_stat(self) -> StatTuple:
        return parse_stat(read_bytes(self._path("stat"), self.pid))

    def _read_status(self) -> StatusTuple:
        if self._status is None:
            self._status = parse_status(read_bytes(self._path("status"), self.pid))
        return self._status

    def refresh(self) -> None:
        """Forget cached values and re-read ``stat`` (NoSuchProcess if the process is gone)."""
        self._status = None
        self._cmdline = None
        self._stat = self._read_stat()

    def is_running(self) -> bool:
        """True while a process with this pid *and the same start time* exists (not reused)."""
        try:
            st = parse_stat(read_bytes(self._path("stat"), self.pid))
        except NoSuchProcess:
            return False
        return st[7] == self._stat[7] and st[1] not in ("Z", "X")

    # -- stat fields --------------------------------------------------------------------------
    @property
    def comm(self) -> str:
        """The command name (up to 15 bytes, what ``pstree`` shows)."""
        return self._stat[0]

    @property
    def state(self) -> str:
        """One letter: R running, S sleeping, D disk sleep, T stopped, t traced, Z zombie, X dead..."""
        return self._stat[1]

    @property
    def ppid(self) -> int:
        """Parent pid (0 for pid 1 and kthreadd, and for a parent outside our pid namespace)."""
        return self._stat[2]

    @property
    def tty_nr(self) -> int:
        """Controlling terminal device number (0 when none)."""
        return self._stat[3]

    @property
    def utime(self) -> int:
        """User CPU time of the whole process, clock ticks."""
        return self._stat[4]

    @property
    def stime(self) -> int:
        """System CPU time of the whole process, clock ticks."""
        return self._stat[5]

    @property
    def nlwp(self) -> int:
        """Number of threads."""
        return self._stat[6]

    @property
    def starttime(self) -> int:
        """Start time in clock ticks after boot (field 22 of stat)."""
        return self._stat[7]

    @property
    def is_kernel_thread(self) -> bool:
        """True for a kernel thread (PF_KTHREAD): no cmdline, no user space."""
        return bool(self._stat[8] & PF_KTHREAD)

    @property
    def start_time(self) -> float:
        """Start time in epoch seconds."""
        return boot_time() + self._stat[7] / clock_ticks()

    @property
    def cpu_time(self) -> float:
        """User + system CPU time in seconds (all threads)."""
        return (self._stat[4] + self._stat[5]) / clock_ticks()

    # -- status fields ------------------------------------------------------------------------
    @property
    def tgid(self) -> int:
        """Thread-group id (equals :attr:`pid` unless this object was made for a thread's TID)."""
        return self._read_status()[0]

    @property
    def uid(self) -> int:
        """Effective uid."""
        return self._read_status()[1]

    @property
    def user(self) -> str:
        """Login name of the effective uid."""
        return user_name(self.uid)

    @property
    def nspid(self) -> list[int]:
        """The pid in each nested PID namespace the process lives in, outermost first."""
        return list(self._read_status()[3])

    @property
    def nstgid(self) -> list[int]:
        """The thread-group id in each nested PID namespace, outermost first."""
        return list(self._read_status()[2])

    # -- other files --------------------------------------------------------------------------
    @property
    def cmdline(self) -> list[str]:
        """argv (empty for kernel threads and zombies)."""
        if self._cmdline is None:
            try:
                self._cmdline = parse_cmdline(read_bytes(self._path("cmdline"), self.pid))
            except AccessDenied:
                self._cmdline = []
        return list(self._cmdline)

    @property
    def command(self) -> str:
        """The command line as ps's CMD shows it; ``[comm]`` when there is none."""
        return " ".join(self.cmdline) or f"[{self.comm}]"

    def ns_inode(self, kind: str) -> int:
        """The inode of this process's namespace ``kind``."""
        return ns_inode(self.pid, kind)

    def namespaces(self, kinds: Iterable[str] = NS_KINDS) -> dict[str, int]:
        """``{kind: inode}`` of this process (kinds this kernel lacks are left out)."""
        return namespaces(self.pid, None, kinds)

    def threads(self) -> list[TaskInfo]:
        """Every thread of the process, leader first; threads that exit meanwhile are skipped."""
        out = list(_tasks_of(self.pid, self.cmdline, 2))
        if not out:
            raise NoSuchProcess(self.pid, self._path("task"))
        return out


_GONE = (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError)


def _read(path: str) -> bytes:
    """One file in one read (a loop only for long ones); errors are the caller's to skip."""
    fd = os.open(path, _O_RDONLY)
    try:
        data = os.read(fd, 8192)
        if len(data) == 8192:
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


_O_RDONLY = os.O_RDONLY | os.O_CLOEXEC


def _own_pid_ns() -> int | None:
    """Our pid namespace's inode when procfs() is the procfs of that namespace, else None.

    Then a task whose ``ns/pid`` is this inode has the one-level chain ``NSpid: <tid>`` and its
    ``status`` need not be read for it.
    """
    root = procfs()
    try:
        if os.readlink(f"{root}/self") != str(os.getpid()):
            return None
        return ns_link_inode(f"{root}/self/ns/pid")
    except OSError:
        return None


def _tasks_of(pid: int, cmdline: list[str], ids: int, want_uid: bool = True) -> Iterator[TaskInfo]:
    """The threads of ``pid``.  ``ids``: 0 = leave nspid/nstgid empty, 1 = one-level chains
    (the process is known to live in procfs's own pid namespace), 2 = read each ``status``."""
    base = f"{procfs()}/{pid}/task"
    stat = os.stat
    for tid in sorted(iter_tids(pid), key=lambda tid: (tid != pid, tid)):  # leader first
        d = f"{base}/{tid}"
        try:
            uid = stat(d).st_uid if want_uid else -1  # owned by the task's euid (see iter_tasks)
            st = parse_stat(_read(f"{d}/stat"))
            if ids == 2:
                _, uid, nstgid, nspid = parse_status(_read(f"{d}/status"))
            elif ids == 1:
                nstgid, nspid = [pid], [tid]
            else:
                nstgid, nspid = [], []
        except _GONE:  # the thread exited meanwhile
            continue
        yield _task(tid, pid, st, uid, nstgid, nspid, cmdline)


def iter_tasks(
    pids: Iterable[int] | None = None, *, cmdline: bool = True, nspid: bool = True, uid: bool = True
) -> Iterator[TaskInfo]:
    """Every task of every process (or of ``pids``), as :class:`TaskInfo`, process by process.

    Processes and threads that exit during the scan (or that we may not read) are skipped.
    ``cmdline=False`` spares reading each ``cmdline`` (``cmdline`` is then ``[]``);
    ``nspid=False`` leaves ``nspid``/``nstgid`` empty; ``uid=False`` leaves ``uid`` at -1.

    The scan reads as little as it can, which is what makes it faster than ``ps``:

    - the uid is the owner of the ``/proc/PID`` directory, which the kernel keeps equal to the
      task's effective uid (only the files inside turn root-owned for non-dumpable tasks), so
      one ``stat`` replaces reading and parsing ``status``;
    - the NSpid chain of a task in procfs's own pid namespace is just its id: ``status`` is
      read only for tasks in other (nested) pid namespaces, or when that cannot be told;
    - a single-threaded process's own files are its thread's: no ``task`` directory listing;
    - a kernel thread has no cmdline and lives in the initial namespaces: only ``stat``.
    """
    root = procfs()
    own_ns = _own_pid_ns() if nspid else None
    read, p_stat, p_status, p_cmdline = _read, parse_stat, parse_status, parse_cmdline
    make, stat, ns_link = _task, os.stat, ns_link_inode
    for pid in iter_pids() if pids is None else pids:
        d = f"{root}/{pid}"
        try:
            euid = stat(d).st_uid if uid else -1
            st = p_stat(read(f"{d}/stat"))
            if st[8] & PF_KTHREAD:  # kernel thread: no cmdline, initial namespaces
                yield make(pid, pid, st, euid, [pid], [pid], [])
                continue
            ids = 0
            if nspid:
                ids = 2
                if own_ns is not None:
                    try:
                        ids = 1 if ns_link(f"{d}/ns/pid") == own_ns else 2
                    except PermissionError:
                        pass
            single = st[6] == 1
            nstgid_l: list[int] = []
            nspid_l: list[int] = []
            if single:
                if ids == 2:
                    _, euid, nstgid_l, nspid_l = p_status(read(f"{d}/status"))
                elif ids == 1:
                    nstgid_l, nspid_l = [pid], [pid]
            args: list[str] = []
            if cmdline:
                try:
                    args = p_cmdline(read(f"{d}/cmdline"))
                except PermissionError:
                    pass
            if single:
                yield make(pid, pid, st, euid, nstgid_l, nspid_l, args)
            else:
                yield from _tasks_of(pid, args, ids, uid)
        except (*_GONE, NoSuchProcess, AccessDenied):
            continue


def iter_processes(*, status: bool = False, cmdline: bool = False) -> Iterator[Process]:
    """A :class:`Process` for every process; those that exit during the scan are skipped.

    ``stat`` is always read; ``status``/``cmdline`` preload those reads too, while the process
    is certainly there, so later attribute access cannot fail for them.
    """
    for pid in iter_pids():
        try:
            proc = Process(pid)
            if status:
                proc._read_status()
            if cmdline:
                proc.cmdline  # noqa: B018 - preload
        except (NoSuchProcess, AccessDenied):
            continue
        yield proc


def process_snapshot(*, status: bool = True, cmdline: bool = True) -> dict[int, Process]:
    """``{pid: Process}`` of every process, with ``stat``, ``status`` and ``cmdline`` read once.

    Processes that exit while the snapshot is taken are left out.
    """
    return {p.pid: p for p in iter_processes(status=status, cmdline=cmdline)}
