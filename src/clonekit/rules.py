"""The kernel's rules for clone3(), clone() and unshare(), as data, and :func:`check`.

Every rule the kernel applies to the flags, the exit signal or the caller's situation is one row
of :data:`RULES`, in the order the kernel evaluates them (so the first row that applies names
the errno the kernel returns):

1. the entry point's own limits: legacy ``clone()`` carries only 32 bits, its low byte being the
   exit signal (bits there are read as the signal, never as flags: :func:`check` says what they
   became); ``clone3()`` needs Linux 5.3 (``copy_clone_args_from_user``/``clone3_args_valid``);
   ``unshare()`` adds implied flags and accepts a fixed set (``ksys_unshare``/``check_unshare_flags``);
2. ``kernel_clone()`` and ``copy_process()``: flag combinations, then the caller's situation
   (container init, pid_for_children, time_for_children);
3. ``copy_creds()``/``create_user_ns()`` for CLONE_NEWUSER: nesting, limits, chroot, id mapping;
4. ``copy_namespaces()``/``create_new_namespaces()``: CAP_SYS_ADMIN, then mnt, uts, ipc, pid,
   cgroup, net, time in that order (nesting depth and ``max_*_namespaces`` limits);
5. ``cgroup_can_fork()`` for CLONE_INTO_CGROUP.

Each rule carries the kernel versions where it exists (``since`` inclusive, ``until`` exclusive),
so the table answers for the running kernel and for others (``CallerState(kernel=(5, 4))``).
The running kernel is the oracle: tests/core/test_rules_oracle.py compares every answer here
with the real syscall.
"""

from __future__ import annotations

import errno as _errno
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import KernelError, UsageError, errno_name
from .flags import CSIGNAL, CloneFlag, parse_flags, split_legacy_word
from .signals import signal_name

__all__ = [
    "RULES",
    "VIAS",
    "Call",
    "CallerState",
    "CgroupTarget",
    "CloneFlagsError",
    "Rule",
    "check",
    "first_refusal",
    "legacy_reading",
    "unshare_effective_flags",
]

F = CloneFlag
VIAS = ("clone3", "clone", "unshare")
FlagsLike = int | str | CloneFlag
CgroupLike = int | str | os.PathLike[str] | None

#: CLONE_LEGACY_FLAGS: everything legacy clone() can carry (the low 32 bits).
LEGACY_MASK = 0xFFFFFFFF
#: What check_unshare_flags() accepts (after unshare's implied additions).
UNSHARE_ACCEPTED = (
    F.THREAD | F.FS | F.NEWNS | F.SIGHAND | F.VM | F.FILES | F.SYSVSEM | F.NEWUTS | F.NEWIPC
    | F.NEWNET | F.NEWUSER | F.NEWPID | F.NEWCGROUP | F.NEWTIME
)
#: Namespace flags that need CAP_SYS_ADMIN in the (new) user namespace.
PRIVILEGED_NS = F.NEWNS | F.NEWUTS | F.NEWIPC | F.NEWPID | F.NEWNET | F.NEWCGROUP | F.NEWTIME
#: _NSIG on Linux: valid_signal() accepts 0..64.
NSIG = 64
#: MAX_PID_NS_LEVEL (a caller at level 32 gets ENOSPC for CLONE_NEWPID); create_user_ns()
#: refuses a parent deeper than 32, so user namespaces reach level 33 (measured on 6.18).
MAX_PID_NS_LEVEL = 32
MAX_USER_NS_LEVEL = 32
#: cgroup v2 controllers that may be enabled in a thread root (cgrp_dfl_threaded_ss_mask).
_THREADED_CONTROLLERS = frozenset({"cpu", "cpuset", "perf_event", "pids"})
_NS_KINDS = ("user", "mnt", "uts", "ipc", "pid", "cgroup", "net", "time")


class CloneFlagsError(KernelError):
    """The kernel would refuse this clone3/clone/unshare call (or just did).

    ``errno`` is exactly the kernel's errno, ``rule`` the rule in plain words, ``rule_id`` the
    row of :data:`RULES`, ``flags``/``via``/``exit_signal`` the call that breaks it.
    """

    def __init__(
        self,
        err: int,
        rule: str,
        *,
        flags: CloneFlag,
        via: str,
        exit_signal: int = 0,
        rule_id: str = "",
    ) -> None:
        super().__init__(err, rule, step=via)
        self.rule = rule
        self.rule_id = rule_id
        self.flags = flags
        self.via = via
        self.exit_signal = exit_signal

    def __str__(self) -> str:
        return f"{errno_name(self.errno or 0)}: {self.rule}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild, (self.errno, self.rule, self.flags, self.via, self.exit_signal, self.rule_id))


def _rebuild(err: int, rule: str, flags: CloneFlag, via: str, sig: int, rid: str) -> CloneFlagsError:
    return CloneFlagsError(err, rule, flags=flags, via=via, exit_signal=sig, rule_id=rid)


# --------------------------------------------------------------------------------------------
# The caller's situation
# --------------------------------------------------------------------------------------------


def running_kernel() -> tuple[int, int]:
    """(major, minor) of the running kernel, from ``os.uname()``."""
    release = os.uname().release
    parts: list[int] = []
    for piece in release.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


@dataclass(frozen=True)
class CallerState:
    """What the kernel looks at besides the flags.  :meth:`current` reads it from /proc.

    The defaults describe a single-threaded root process in the initial namespaces of the
    running kernel, so ``CallerState(threads=2)`` is "the same, but multithreaded".
    """

    kernel: tuple[int, int] = field(default_factory=running_kernel)
    #: threads in the caller's thread group ("Threads:" in /proc/self/status)
    threads: int = 1
    #: pid 1 of its PID namespace (global or container init: SIGNAL_UNKILLABLE)
    is_init: bool = False
    #: /proc/thread-self/ns/pid_for_children differs from ns/pid (after unshare/setns of a pid ns)
    pid_for_children_differs: bool = False
    #: pid_for_children is a namespace whose init has exited: nothing more can be made in it
    #: (seen through the NS_GET_TGID_FROM_PIDNS ioctl, Linux 6.11+; earlier kernels: False)
    pid_for_children_dead: bool = False
    #: /proc/thread-self/ns/time_for_children differs from ns/time (after unshare(CLONE_NEWTIME))
    time_for_children_differs: bool = False
    #: nesting level of the caller's PID namespace (0 = initial), from NSpid
    pid_ns_depth: int = 0
    #: nesting level of the caller's user namespace (0 = initial); a lower bound when not exact
    user_ns_depth: int = 0
    user_ns_depth_exact: bool = True
    #: CAP_SYS_ADMIN in the caller's effective set (CapEff)
    cap_sys_admin: bool = True
    #: the caller's root is not the root of its mount namespace
    chrooted: bool = False
    #: the caller's euid and egid are mapped in its own user namespace
    ids_mapped: bool = True
    #: /proc/sys/user/max_<kind>_namespaces (missing kinds: no limit known)
    ns_limits: Mapping[str, int] = field(default_factory=dict)
    #: RLIMIT_NPROC: tasks of the caller's real uid, and the soft limit where it applies
    #: (None: unlimited, or exempt as uid 0 or with CAP_SYS_ADMIN/CAP_SYS_RESOURCE)
    nproc: int = 0
    nproc_limit: int | None = None
    #: tasks in the system and kernel.threads-max (the fork-bomb limit, EAGAIN)
    nr_threads: int = 0
    threads_max: int = 1 << 30
    #: shares its signal handlers / address space with another process (CLONE_SIGHAND/CLONE_VM
    #: children): unshare(CLONE_SIGHAND|CLONE_VM) refuses.  Not visible in /proc; set by hand.
    shares_signal_handlers: bool = False
    shares_memory: bool = False

    @classmethod
    def current(cls, for_flags: int | None = None) -> CallerState:
        """The calling thread's situation, read from /proc (and one ioctl).

        With ``for_flags`` (the flags about to be checked), what only CLONE_NEWUSER's rules read
        (chroot, user namespace depth, id mapping) is looked at only if that flag is among them,
        and is otherwise left at its default: it saves a helper thread (about 0.7 ms).
        """
        userns = for_flags is None or bool(for_flags & F.NEWUSER)
        status = _read_status()
        caps = int(status.get("CapEff", "0"), 16)
        nspid = status.get("NSpid", "").split()
        limits: dict[str, int] = {}
        for kind in _NS_KINDS:
            value = _read_int(f"/proc/sys/user/max_{kind}_namespaces")
            if value is not None:
                limits[kind] = value
        depth, exact = _user_ns_depth() if userns else (0, True)
        nr_threads = 0
        try:
            with open("/proc/loadavg") as f:
                nr_threads = int(f.read().split()[3].split("/")[1])
        except (OSError, IndexError, ValueError):
            pass
        pid_differs = _ns_differs("pid")
        nproc, nproc_limit = _nproc(status, caps, nr_threads)
        return cls(
            kernel=running_kernel(),
            threads=int(status.get("Threads", "1") or 1),
            is_init=bool(nspid) and nspid[-1] == "1",
            pid_for_children_differs=pid_differs,
            pid_for_children_dead=pid_differs and _pid_for_children_dead(),
            time_for_children_differs=_ns_differs("time"),
            pid_ns_depth=max(len(nspid) - 1, 0),
            user_ns_depth=depth,
            user_ns_depth_exact=exact,
            cap_sys_admin=bool(caps & (1 << 21)),
            chrooted=_chrooted() if userns else False,
            ids_mapped=_ids_mapped() if userns else True,
            ns_limits=limits,
            nproc=nproc,
            nproc_limit=nproc_limit,
            nr_threads=nr_threads,
            threads_max=_read_int("/proc/sys/kernel/threads-max") or (1 << 30),
        )


def _nproc(status: Mapping[str, str], caps: int, nr_threads: int) -> tuple[int, int | None]:
    """(tasks of our real uid, RLIMIT_NPROC) as copy_process() weighs them.

    The kernel exempts uid 0 of the initial user namespace and CAP_SYS_ADMIN/CAP_SYS_RESOURCE
    held there.  Tasks are only counted (a walk over /proc) when the whole system has at least
    as many as the limit; otherwise the count cannot reach it and 0 stands for "below".
    """
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if soft == resource.RLIM_INFINITY:
        return 0, None
    try:
        ruid = int(status["Uid"].split()[0])
        with open("/proc/self/uid_map") as f:
            lines = [line.split() for line in f if line.strip()]
    except (KeyError, ValueError, IndexError, OSError):
        return 0, None
    initial = lines == [["0", "0", "4294967295"]]
    if initial and (ruid == 0 or caps & ((1 << 21) | (1 << 24))):
        return 0, None
    if not initial and any(int(inside) <= ruid < int(inside) + int(count)
                           and int(outside) + ruid - int(inside) == 0
                           for inside, outside, count in lines):
        return 0, None  # (one level down) our real uid is the kernel's uid 0
    if nr_threads < soft:
        return 0, soft
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == ruid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return count, soft


def _read_status() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/proc/thread-self/status", "/proc/self/status"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    out[key] = value.strip()
            return out
        except OSError:
            continue
    return out


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ns_differs(kind: str) -> bool:
    """ns/<kind>_for_children differs from ns/<kind>.

    Right after unshare(CLONE_NEWPID) the new namespace has no init yet and the kernel shows no
    pid_for_children link at all (ENOENT): that, too, means it differs.
    """
    for base in ("/proc/thread-self/ns", "/proc/self/ns"):
        try:
            own = os.readlink(f"{base}/{kind}")
        except OSError:
            continue
        try:
            return own != os.readlink(f"{base}/{kind}_for_children")
        except FileNotFoundError:
            return True
        except OSError:
            continue
    return False


#: ioctl(NS_GET_TGID_FROM_PIDNS) = _IOR(0xb7, 0x7, int): a pid of that namespace, seen from ours
_NS_GET_TGID_FROM_PIDNS = 0x8004B707


def _pid_for_children_dead() -> bool:
    """Has the init of our pid_for_children namespace exited (ESRCH for its pid 1)?"""
    import fcntl

    try:
        fd = os.open("/proc/thread-self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no init yet (ENOENT), or no /proc
    try:
        fcntl.ioctl(fd, _NS_GET_TGID_FROM_PIDNS, 1)
    except OSError as exc:
        return exc.errno == _errno.ESRCH  # ENOTTY before 6.11: cannot tell
    finally:
        os.close(fd)
    return False


#: ioctl(NS_GET_PARENT) = _IO(0xb7, 0x2)
_NS_GET_PARENT = 0xB702


def _user_ns_depth() -> tuple[int, bool]:
    """Walk NS_GET_PARENT up from the caller's user namespace.

    The kernel only opens a parent that lies inside the caller's own user namespace, so from a
    nested namespace the first step already fails with EPERM: the walk is exact in the initial
    namespace only.  A nested namespace is recognised by its uid_map (the initial one maps all
    of 0..4294967294), and then the depth is a lower bound.
    """
    import fcntl

    depth = 0
    try:
        fd = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0, False
    try:
        while True:
            try:
                parent = fcntl.ioctl(fd, _NS_GET_PARENT)
            except OSError:
                break
            os.close(fd)
            fd = parent
            depth += 1
    finally:
        os.close(fd)
    try:
        with open("/proc/self/uid_map") as f:
            initial = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return depth, False
    if initial:
        return depth, True
    return max(depth, 1), False


def _ids_mapped() -> bool:
    """create_user_ns() wants the caller's euid and egid mapped in its own user namespace."""
    for path, ident in (("/proc/self/uid_map", os.geteuid()), ("/proc/self/gid_map", os.getegid())):
        try:
            with open(path) as f:
                lines = [line.split() for line in f if line.strip()]
        except OSError:
            continue
        if not any(int(inside) <= ident < int(inside) + int(count) for inside, _, count in lines):
            return False
    return True


def _chrooted() -> bool:
    """Is the caller's root directory other than the root of its mount namespace?

    This is the kernel's own test (current_chrooted()).  A helper thread leaves the shared
    fs_struct (unshare(CLONE_FS)) and setns()es into the caller's own mount namespace, which
    resets *its* root to the namespace root; if that differs from the caller's "/", the caller
    is chrooted.  Without the privilege for setns (CAP_SYS_ADMIN + CAP_SYS_CHROOT) it falls back
    to /proc/self/mountinfo, where a root that is no mount point has no "/" entry (and so
    does it where no thread can be started: after unshare(CLONE_NEWPID), before the first fork).
    """
    try:
        mine = os.stat("/")
    except OSError:
        return False
    answer: list[object] = []
    tids: list[int] = []

    def look() -> None:
        tids.append(threading.get_native_id())
        try:
            answer.append(_stat_namespace_root())
        except OSError as exc:
            answer.append(exc)

    import threading
    import time

    helper = threading.Thread(target=look, name="clonekit-chroot-probe", daemon=True)
    try:
        helper.start()  # fails while pid_for_children differs: CLONE_THREAD is refused then
    except RuntimeError:
        pass
    else:
        helper.join()
        # join() returns before the kernel has released the task; until then the process is
        # still multithreaded and unshare(CLONE_NEWUSER) right after check() would fail
        deadline = time.monotonic() + 2.0
        while tids and os.path.exists(f"/proc/self/task/{tids[0]}") and time.monotonic() < deadline:
            time.sleep(0.00005)
    ns_root = answer[0] if answer else None
    if isinstance(ns_root, os.stat_result):
        return (ns_root.st_dev, ns_root.st_ino) != (mine.st_dev, mine.st_ino)
    try:
        with open("/proc/self/mountinfo") as f:
            return not any(line.split()[4] == "/" for line in f if len(line.split()) > 4)
    except OSError:
        return False


def _stat_namespace_root() -> os.stat_result:
    """In a helper thread: take a private fs_struct, enter our own mount ns, stat its root."""
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare = getattr(os, "unshare", None)
        setns = getattr(os, "setns", None)
        if unshare is not None and setns is not None:  # Python >= 3.12
            unshare(F.FS.value)
            setns(fd, F.NEWNS.value)
        else:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(F.FS.value) != 0 or libc.setns(fd, F.NEWNS.value) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        return os.stat("/")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CgroupTarget:
    """What cgroup_can_fork() sees of the fd given with CLONE_INTO_CGROUP."""

    fd: int | None
    is_open: bool = True
    is_cgroup2_dir: bool = True
    removed: bool = False
    #: a non-root domain cgroup with domain controllers enabled for its children: the
    #: "no internal processes" rule refuses new members
    busy: bool = False
    #: the caller itself is a member (CLONE_THREAD may only stay in its own domain)
    is_callers: bool = False

    @classmethod
    def inspect(cls, cgroup: CgroupLike) -> CgroupTarget | None:
        """Look at an fd (int) or a path; ``None`` stays None (no fd given)."""
        if cgroup is None:
            return None
        if isinstance(cgroup, bool) or not isinstance(cgroup, (int, str, os.PathLike)):
            raise UsageError(
                f"cgroup must be the fd or the path of a cgroup2 directory, not {type(cgroup).__name__}"
            )
        if isinstance(cgroup, int):
            if cgroup < 0 or cgroup > 0x7FFFFFFF:
                return cls(fd=cgroup, is_open=False)
            return cls._inspect_fd(cgroup)
        try:
            fd = os.open(cgroup, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UsageError(f"cannot open cgroup directory {os.fspath(cgroup)!r}: {exc.strerror}") from None
        try:
            return cls._inspect_fd(fd)
        finally:
            os.close(fd)

    @classmethod
    def _inspect_fd(cls, fd: int) -> CgroupTarget:
        import stat as _stat

        try:
            st = os.fstat(fd)
        except OSError:
            return cls(fd=fd, is_open=False)
        if not _stat.S_ISDIR(st.st_mode) or st.st_dev not in _cgroup2_devices():
            return cls(fd=fd, is_cgroup2_dir=False)
        try:
            with open(os.open("cgroup.subtree_control", os.O_RDONLY | os.O_CLOEXEC, dir_fd=fd)) as f:
                controllers = set(f.read().split())
        except FileNotFoundError:
            return cls(fd=fd, removed=True)
        except OSError:
            controllers = set()
        try:
            os.stat("cgroup.type", dir_fd=fd)
            is_root = False
        except OSError:
            is_root = True
        busy = not is_root and bool(controllers - _THREADED_CONTROLLERS)
        return cls(fd=fd, busy=busy, is_callers=_is_callers_cgroup(st))


def _mounts() -> list[tuple[list[str], list[str]]]:
    """/proc/self/mountinfo as (fields before " - ", fields after)."""
    try:
        with open("/proc/self/mountinfo") as f:
            out = []
            for line in f:
                left, _, right = line.partition(" - ")
                out.append((left.split(), right.split()))
            return out
    except OSError:
        return []


def _cgroup2_devices() -> set[int]:
    devices = set()
    for left, right in _mounts():
        if right and right[0] == "cgroup2":
            major, _, minor = left[2].partition(":")
            devices.add(os.makedev(int(major), int(minor)))
    return devices


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _is_callers_cgroup(st: os.stat_result) -> bool:
    try:
        with open("/proc/self/cgroup") as f:
            rel = next((line.strip()[3:] for line in f if line.startswith("0::")), None)
    except OSError:
        return False
    if rel is None:
        return False
    for left, right in _mounts():
        if not right or right[0] != "cgroup2":
            continue
        root, point = _unescape(left[3]).rstrip("/"), _unescape(left[4]).rstrip("/")
        if not (rel + "/").startswith(root + "/"):
            continue
        try:
            mine = os.stat(point + "/" + rel[len(root):].lstrip("/"))
        except OSError:
            continue
        if (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call as a rule sees it."""

    via: str
    #: the flags as the caller gave them
    requested: CloneFlag
    #: the flags the kernel works with (unshare: with its implied additions)
    flags: int
    exit_signal: int
    state: CallerState
    cgroup: CgroupTarget | None = None

    def has(self, mask: int) -> bool:
        """Every bit of ``mask`` is set."""
        return self.flags & mask == mask

    def any(self, mask: int) -> bool:
        """Some bit of ``mask`` is set."""
        return bool(self.flags & mask)

    def limit(self, kind: str) -> bool:
        """max_<kind>_namespaces is 0: not one more namespace of that kind may be made."""
        return self.state.ns_limits.get(kind, 1) <= 0


@dataclass(frozen=True)
class Rule:
    """One refusal of the kernel: when ``applies`` holds for a call through one of ``vias``,
    on a kernel in [since, until), the call fails with ``errno``; ``text`` says why."""

    id: str
    vias: frozenset[str]
    applies: Callable[[Call], bool]
    errno: int
    text: str
    since: tuple[int, int] | None = None
    until: tuple[int, int] | None = None
    where: str = ""

    def exists_in(self, kernel: tuple[int, int]) -> bool:
        return (self.since is None or kernel >= self.since) and (self.until is None or kernel < self.until)

    def describe(self, call: Call) -> str:
        """The rule's text with the call's particulars filled in."""
        return self.text.format(
            threads=call.state.threads,
            implied=_implied_text(call),
            bad=str(CloneFlag(call.flags & ~UNSHARE_ACCEPTED & _ALL)),
            exit_signal=call.exit_signal,
            user_depth=call.state.user_ns_depth,
            pid_depth=call.state.pid_ns_depth,
            nproc=call.state.nproc,
            nproc_limit=call.state.nproc_limit,
            kernel="{}.{}".format(*call.state.kernel),
        )


_ALL = sum(f.value for f in CloneFlag)
EINVAL, EPERM, ENOSPC, EBADF, EAGAIN, ENOSYS, ENOENT, EBUSY, EOPNOTSUPP = (
    _errno.EINVAL, _errno.EPERM, _errno.ENOSPC, _errno.EBADF, _errno.EAGAIN, _errno.ENOSYS,
    _errno.ENOENT, _errno.EBUSY, _errno.EOPNOTSUPP,
)
_C3 = frozenset({"clone3"})
_CL = frozenset({"clone"})
_UN = frozenset({"unshare"})
_FORK = frozenset({"clone3", "clone"})
_ANY = frozenset(VIAS)


def _implied_text(call: Call) -> str:
    added = CloneFlag(call.flags & ~call.requested.value & _ALL)
    return f" (with {added} that unshare() implies)" if added else ""


def _ns_limit_rule(kind: str, flag: CloneFlag, vias: frozenset[str] = _ANY) -> Rule:
    return Rule(
        f"{kind}ns.limit", vias, lambda c: c.any(flag) and c.limit(kind), ENOSPC,
        f"CLONE_{flag.name} needs room for one more {kind} namespace: "
        f"/proc/sys/user/max_{kind}_namespaces is 0",
        where=f"create_new_namespaces / inc_{kind}_namespaces",
    )


RULES: tuple[Rule, ...] = (
    # -- legacy clone(): what its single 32-bit word cannot say ------------------------------
    Rule("clone.high_bits", _CL, lambda c: c.flags > LEGACY_MASK, EINVAL,
         "legacy clone() carries only the low 32 bits of the flags: CLONE_CLEAR_SIGHAND and "
         "CLONE_INTO_CGROUP exist only in clone3", where="clonekit (lower_32_bits(clone_flags))"),
    Rule("clone.exit_signal_byte", _CL, lambda c: not 0 <= c.exit_signal <= 0xFF, EINVAL,
         "legacy clone() carries the exit signal in the low byte of the flags: it must be 0..255, "
         "not {exit_signal}", where="clonekit (CSIGNAL)"),
    # -- clone3(): copy_clone_args_from_user() and clone3_args_valid() ----------------------
    Rule("clone3.missing", _C3, lambda c: True, ENOSYS,
         "clone3() exists since Linux 5.3 (this is {kernel}): use legacy clone()",
         until=(5, 3), where="sys_clone3"),
    Rule("clone3.exit_signal", _C3, lambda c: not 0 <= c.exit_signal <= NSIG, EINVAL,
         "clone3's exit_signal must be a valid signal number, 0..64, not {exit_signal}",
         where="copy_clone_args_from_user"),
    Rule("clone3.cgroup_fd", _C3,
         lambda c: c.any(F.INTO_CGROUP) and c.cgroup is not None
         and not 0 <= (c.cgroup.fd or 0) <= 0x7FFFFFFF,
         EINVAL, "CLONE_INTO_CGROUP's cgroup field must be a file descriptor (0..INT_MAX)",
         where="copy_clone_args_from_user"),
    Rule("clone3.clear_sighand_unknown", _C3, lambda c: c.any(F.CLEAR_SIGHAND), EINVAL,
         "CLONE_CLEAR_SIGHAND needs Linux 5.5 or newer (this is {kernel})",
         until=(5, 5), where="clone3_args_valid"),
    Rule("clone3.into_cgroup_unknown", _C3, lambda c: c.any(F.INTO_CGROUP), EINVAL,
         "CLONE_INTO_CGROUP needs Linux 5.7 or newer (this is {kernel})",
         until=(5, 7), where="clone3_args_valid"),
    Rule("clone3.detached", _C3, lambda c: c.any(F.DETACHED), EINVAL,
         "clone3 refuses CLONE_DETACHED: the bit is reserved for reuse (legacy clone() ignores it)",
         where="clone3_args_valid"),
    Rule("clone3.newtime_csignal", _C3, lambda c: c.any(F.NEWTIME), EINVAL,
         "clone3 accepts CLONE_NEWTIME only since Linux 6.3 (this is {kernel}; stable kernels "
         "from March 2023 on have the fix too): before that the bit counts as one of the reserved "
         "CSIGNAL bits; use unshare(CLONE_NEWTIME) and fork",
         until=(6, 3), where="clone3_args_valid (fixed by a402f1e35313)"),
    Rule("clone3.sighand_clear_sighand", _C3, lambda c: c.has(F.SIGHAND | F.CLEAR_SIGHAND), EINVAL,
         "CLONE_SIGHAND and CLONE_CLEAR_SIGHAND contradict each other: shared handlers cannot "
         "also be reset to their defaults", since=(5, 5), where="clone3_args_valid"),
    Rule("clone3.thread_exit_signal", _C3, lambda c: c.any(F.THREAD) and c.exit_signal != 0, EINVAL,
         "CLONE_THREAD needs exit_signal 0 in clone3: a thread sends no signal when it exits "
         "(asked for {exit_signal})", where="clone3_args_valid"),
    Rule("clone3.parent_exit_signal", _C3, lambda c: c.any(F.PARENT) and c.exit_signal != 0, EINVAL,
         "CLONE_PARENT needs exit_signal 0 in clone3: the new sibling inherits the caller's own "
         "exit signal (asked for {exit_signal})", where="clone3_args_valid"),
    # -- unshare(): ksys_unshare() and check_unshare_flags() --------------------------------
    Rule("unshare.not_accepted", _UN, lambda c: bool(c.flags & ~UNSHARE_ACCEPTED), EINVAL,
         "unshare() cannot take {bad}: it accepts only FS, FILES, NEWNS, SIGHAND, VM, THREAD, "
         "SYSVSEM and the namespace flags", where="check_unshare_flags"),
    Rule("unshare.newcgroup_unknown", _UN, lambda c: c.any(F.NEWCGROUP), EINVAL,
         "unshare(CLONE_NEWCGROUP) needs Linux 4.6 or newer (this is {kernel})",
         until=(4, 6), where="check_unshare_flags"),
    Rule("unshare.newtime_unknown", _UN, lambda c: c.any(F.NEWTIME), EINVAL,
         "unshare(CLONE_NEWTIME) needs Linux 5.6 or newer (this is {kernel})",
         until=(5, 6), where="check_unshare_flags"),
    Rule("unshare.multithreaded", _UN,
         lambda c: c.any(F.THREAD | F.SIGHAND | F.VM) and c.state.threads > 1, EINVAL,
         "unsharing CLONE_THREAD, CLONE_SIGHAND or CLONE_VM{implied} needs a single-threaded "
         "caller, and this process has {threads} threads", where="check_unshare_flags"),
    Rule("unshare.shared_sighand", _UN,
         lambda c: c.any(F.SIGHAND | F.VM) and c.state.shares_signal_handlers, EINVAL,
         "unsharing CLONE_SIGHAND or CLONE_VM{implied} is not implemented while another process "
         "shares this one's signal handlers", where="check_unshare_flags"),
    Rule("unshare.shared_vm", _UN, lambda c: c.any(F.VM) and c.state.shares_memory, EINVAL,
         "unsharing CLONE_VM is not implemented while another process shares this one's memory",
         where="check_unshare_flags"),
    # -- kernel_clone() and copy_process() --------------------------------------------------
    Rule("clone.pidfd_parent_settid", _CL, lambda c: c.has(F.PIDFD | F.PARENT_SETTID), EINVAL,
         "legacy clone() returns the pidfd through the parent_tid pointer, so CLONE_PIDFD and "
         "CLONE_PARENT_SETTID cannot be combined (clone3 has a separate pidfd field)",
         since=(5, 2), where="kernel_clone"),
    Rule("fork.newns_fs", _FORK, lambda c: c.has(F.NEWNS | F.FS), EINVAL,
         "CLONE_NEWNS cannot go with CLONE_FS: a root and cwd shared with the caller cannot live "
         "in another mount namespace", where="copy_process"),
    Rule("fork.newuser_fs", _FORK, lambda c: c.has(F.NEWUSER | F.FS), EINVAL,
         "CLONE_NEWUSER cannot go with CLONE_FS: a root and cwd cannot be shared across user "
         "namespaces", where="copy_process"),
    Rule("fork.thread_sighand", _FORK, lambda c: c.any(F.THREAD) and not c.any(F.SIGHAND), EINVAL,
         "CLONE_THREAD needs CLONE_SIGHAND: threads of one group must share signal handlers",
         where="copy_process"),
    Rule("fork.sighand_vm", _FORK, lambda c: c.any(F.SIGHAND) and not c.any(F.VM), EINVAL,
         "CLONE_SIGHAND needs CLONE_VM: shared signal handlers point into one shared address space",
         where="copy_process"),
    Rule("fork.parent_from_init", _FORK, lambda c: c.any(F.PARENT) and c.state.is_init, EINVAL,
         "CLONE_PARENT is refused to an init process (pid 1 of its PID namespace): its siblings "
         "would have no parent to reap them", where="copy_process"),
    Rule("fork.thread_newuser_newpid", _FORK, lambda c: c.any(F.THREAD) and c.any(F.NEWUSER | F.NEWPID),
         EINVAL, "CLONE_THREAD cannot go with CLONE_NEWUSER or CLONE_NEWPID: a thread stays in its "
         "group's user and PID namespaces", where="copy_process"),
    Rule("fork.thread_pid_for_children", _FORK,
         lambda c: c.any(F.THREAD) and c.state.pid_for_children_differs, EINVAL,
         "CLONE_THREAD is refused while pid_for_children differs from the caller's PID namespace "
         "(after unshare(CLONE_NEWPID) or setns): a thread cannot live in another PID namespace",
         where="copy_process"),
    Rule("fork.pidfd_detached", _FORK, lambda c: c.has(F.PIDFD | F.DETACHED), EINVAL,
         "CLONE_PIDFD cannot go with CLONE_DETACHED (the bit is reserved)", since=(5, 2),
         where="copy_process"),
    Rule("fork.pidfd_thread", _FORK, lambda c: c.has(F.PIDFD | F.THREAD), EINVAL,
         "CLONE_PIDFD cannot go with CLONE_THREAD before Linux 6.9 (this is {kernel}): thread "
         "pidfds came with PIDFD_THREAD", since=(5, 2), until=(6, 9), where="copy_process"),
    Rule("fork.time_for_children", _FORK,
         lambda c: c.any(F.THREAD | F.VM) and c.state.time_for_children_differs, EINVAL,
         "CLONE_VM or CLONE_THREAD is refused while time_for_children differs from the caller's "
         "time namespace (after unshare(CLONE_NEWTIME)) before Linux 6.1 (this is {kernel})",
         since=(5, 6), until=(6, 1), where="copy_process"),
    # -- copy_creds()/unshare_userns() -> create_user_ns() ----------------------------------
    Rule("userns.depth", _ANY,
         lambda c: c.any(F.NEWUSER) and c.state.user_ns_depth > MAX_USER_NS_LEVEL, ENOSPC,
         "CLONE_NEWUSER: user namespaces nest at most 33 levels below the initial one, and the "
         "caller is already at level {user_depth}", where="create_user_ns"),
    Rule("userns.limit", _ANY, lambda c: c.any(F.NEWUSER) and c.limit("user"), ENOSPC,
         "CLONE_NEWUSER needs room for one more user namespace: /proc/sys/user/max_user_namespaces "
         "is 0", where="create_user_ns / inc_user_namespaces"),
    Rule("userns.chrooted", _ANY, lambda c: c.any(F.NEWUSER) and c.state.chrooted, EPERM,
         "CLONE_NEWUSER is refused to a chrooted caller: a new user namespace would let it escape "
         "the chroot (its root must be the root of its mount namespace)", where="create_user_ns"),
    Rule("userns.unmapped", _ANY, lambda c: c.any(F.NEWUSER) and not c.state.ids_mapped, EPERM,
         "CLONE_NEWUSER needs the caller's euid and egid mapped in its own user namespace "
         "(write its uid_map and gid_map first)", where="create_user_ns"),
    # -- limits on tasks ---------------------------------------------------------------------
    Rule("fork.nproc", _FORK,
         lambda c: c.state.nproc_limit is not None and c.state.nproc >= c.state.nproc_limit, EAGAIN,
         "RLIMIT_NPROC: this user already has {nproc} tasks and the limit is {nproc_limit} (uid 0, "
         "CAP_SYS_ADMIN and CAP_SYS_RESOURCE are exempt)", where="copy_process"),
    Rule("fork.threads_max", _FORK, lambda c: c.state.nr_threads >= c.state.threads_max, EAGAIN,
         "the system has as many tasks as kernel.threads-max allows", where="copy_process"),
    # -- copy_namespaces()/unshare_nsproxy_namespaces() -> create_new_namespaces() ----------
    Rule("ns.cap_sys_admin", _ANY,
         lambda c: c.any(PRIVILEGED_NS) and not c.any(F.NEWUSER) and not c.state.cap_sys_admin, EPERM,
         "new mount, UTS, IPC, PID, network, cgroup or time namespaces need CAP_SYS_ADMIN in the "
         "user namespace that will own them: add CLONE_NEWUSER or run with CAP_SYS_ADMIN",
         where="copy_namespaces"),
    Rule("fork.newipc_sysvsem", _FORK, lambda c: c.has(F.NEWIPC | F.SYSVSEM), EINVAL,
         "CLONE_NEWIPC cannot go with CLONE_SYSVSEM: SysV semaphore undo lists cannot be shared "
         "across IPC namespaces", where="copy_namespaces"),
    _ns_limit_rule("mnt", F.NEWNS),
    _ns_limit_rule("uts", F.NEWUTS),
    _ns_limit_rule("ipc", F.NEWIPC),
    Rule("pidns.pid_for_children", _ANY,
         lambda c: c.any(F.NEWPID) and c.state.pid_for_children_differs, EINVAL,
         "CLONE_NEWPID is refused while pid_for_children already differs from the caller's PID "
         "namespace (after an earlier unshare(CLONE_NEWPID) or setns): fork once first",
         where="copy_pid_ns"),
    Rule("pidns.depth", _ANY,
         lambda c: c.any(F.NEWPID) and c.state.pid_ns_depth >= MAX_PID_NS_LEVEL, ENOSPC,
         "CLONE_NEWPID: PID namespaces nest at most 32 deep, and the caller is already at level "
         "{pid_depth}", where="create_pid_namespace"),
    _ns_limit_rule("pid", F.NEWPID),
    _ns_limit_rule("cgroup", F.NEWCGROUP),
    _ns_limit_rule("net", F.NEWNET),
    _ns_limit_rule("time", F.NEWTIME),
    # -- alloc_pid() ---------------------------------------------------------------------------
    Rule("pidns.dead", _FORK, lambda c: c.state.pid_for_children_dead, _errno.ENOMEM,
         "the PID namespace this process makes children in (from an earlier unshare(CLONE_NEWPID)) "
         "has lost its init: no new process can be made in it", where="alloc_pid"),
    # -- cgroup_can_fork() -> cgroup_css_set_fork() for CLONE_INTO_CGROUP -------------------
    Rule("cgroup.no_fd", _C3, lambda c: c.any(F.INTO_CGROUP) and c.cgroup is None, EBADF,
         "CLONE_INTO_CGROUP needs the fd of a cgroup2 directory, and none was given", since=(5, 7),
         where="cgroup_css_set_fork"),
    Rule("cgroup.bad_fd", _C3,
         lambda c: c.any(F.INTO_CGROUP) and c.cgroup is not None and not c.cgroup.is_open, EBADF,
         "CLONE_INTO_CGROUP needs the fd of a cgroup2 directory: this fd is not open",
         since=(5, 7), where="cgroup_css_set_fork"),
    Rule("cgroup.not_cgroup2", _C3,
         lambda c: c.any(F.INTO_CGROUP) and c.cgroup is not None and not c.cgroup.is_cgroup2_dir,
         EBADF, "CLONE_INTO_CGROUP needs the fd of a cgroup2 directory: this fd is something else "
         "(a file, a cgroup v1 directory, another file system)", since=(5, 7),
         where="cgroup_get_from_file"),
    Rule("cgroup.removed", _C3,
         lambda c: c.any(F.INTO_CGROUP) and c.cgroup is not None and c.cgroup.removed, ENOENT,
         "CLONE_INTO_CGROUP: that cgroup has been removed (its directory fd outlived it)",
         since=(5, 7), where="cgroup_get_from_file"),
    Rule("cgroup.busy", _C3,
         lambda c: c.any(F.INTO_CGROUP) and c.cgroup is not None and c.cgroup.busy, EBUSY,
         "CLONE_INTO_CGROUP: that cgroup enables controllers for its children, and cgroup v2 "
         "allows no processes in such an inner cgroup", since=(5, 7), where="cgroup_migrate_vet_dst"),
    Rule("cgroup.thread_elsewhere", _C3,
         lambda c: c.has(F.INTO_CGROUP | F.THREAD) and c.cgroup is not None and not c.cgroup.is_callers,
         EOPNOTSUPP, "CLONE_INTO_CGROUP with CLONE_THREAD: a thread cannot be put in another cgroup "
         "than its thread group's", since=(5, 7), where="cgroup_attach_permissions"),
)


def unshare_effective_flags(flags: int) -> int:
    """The flags ksys_unshare() really works with: NEWUSER adds THREAD|FS, then VM adds SIGHAND,
    then SIGHAND adds THREAD, then NEWNS adds FS."""
    if flags & F.NEWUSER:
        flags |= F.THREAD | F.FS
    if flags & F.VM:
        flags |= F.SIGHAND
    if flags & F.SIGHAND:
        flags |= F.THREAD
    if flags & F.NEWNS:
        flags |= F.FS
    return flags


def _check_args(via: object, exit_signal: object) -> tuple[str, int | None]:
    if via not in VIAS:
        raise UsageError(
            f"via must be 'clone3', 'clone' or 'unshare', not {via!r}: it names the system call "
            "whose rules apply"
        )
    if exit_signal is None:
        return str(via), None
    if isinstance(exit_signal, bool) or not isinstance(exit_signal, int):
        raise UsageError(
            f"exit_signal must be a signal number such as signal.SIGCHLD or 0, not "
            f"{type(exit_signal).__name__} {exit_signal!r}"
        )
    return str(via), int(exit_signal)


def _read_call(flags: FlagsLike, via: str, exit_signal: int | None) -> tuple[CloneFlag, int, int]:
    """(the flags, the exit signal the kernel takes, legacy clone's low byte from the flags).

    Legacy clone() passes one word, flags | exit signal: bits of the flags' low byte are part of
    the signal (``clone(0x40)`` asks for signal 64), and an explicit ``exit_signal`` is or-ed into
    that byte as the word would be; without either the signal is SIGCHLD."""
    if via != "clone":
        return parse_flags(flags), int(signal.SIGCHLD) if exit_signal is None else exit_signal, 0
    parsed, low = split_legacy_word(flags)
    if exit_signal is None:
        return parsed, low or int(signal.SIGCHLD), low
    if not 0 <= exit_signal <= CSIGNAL:  # refused by clone.exit_signal_byte, shown as given
        return parsed, exit_signal, low
    return parsed, exit_signal | low, low


def legacy_reading(low: int, exit_signal: int) -> str | None:
    """What legacy clone() makes of bits in its flags' low byte (``low``), which the kernel takes
    as the exit signal (``exit_signal``: the whole byte) and accepts whatever it is."""
    if not low:
        return None
    shown = f"low byte {low:#x}" if low == exit_signal else \
        f"low byte {low:#x} (with exit_signal or-ed in: {exit_signal:#x})"
    if exit_signal <= NSIG:
        words = f"{shown} is the exit signal: {exit_signal} ({signal_name(exit_signal)})"
    else:
        words = (f"{shown} is the exit signal: {exit_signal}, which is no signal (above _NSIG, "
                 f"{NSIG}): the kernel accepts it and signals nobody when the child exits (wait "
                 "for it with __WALL or a pidfd)")
    if low & F.NEWTIME:
        words += ("; CLONE_NEWTIME (0x80) cannot be said through legacy clone(), so no time "
                  "namespace is made: use clone3 or unshare(CLONE_NEWTIME)")
    return words


def first_refusal(
    flags: FlagsLike,
    *,
    via: str = "clone3",
    exit_signal: int | None = None,
    cgroup: CgroupLike = None,
    state: CallerState | None = None,
) -> tuple[Rule, Call] | None:
    """The first rule of :data:`RULES` that refuses the call, with the call as the rule saw it."""
    via, given = _check_args(via, exit_signal)
    parsed, sig, _ = _read_call(flags, via, given)
    if state is not None and not isinstance(state, CallerState):
        raise UsageError(f"state must be a CallerState or None, not {type(state).__name__}")
    kernel_flags = parsed.value
    if via == "unshare":
        kernel_flags = unshare_effective_flags(kernel_flags)
        sig = 0
    target = CgroupTarget.inspect(cgroup) if parsed & F.INTO_CGROUP else None
    call = Call(via, parsed, kernel_flags, sig, state or CallerState.current(kernel_flags), target)
    kernel = call.state.kernel
    for rule in RULES:
        if via in rule.vias and rule.exists_in(kernel) and rule.applies(call):
            return rule, call
    return None


def check(
    flags: FlagsLike,
    *,
    via: str = "clone3",
    exit_signal: int | None = None,
    cgroup: CgroupLike = None,
    state: CallerState | None = None,
) -> str | None:
    """Raise :class:`CloneFlagsError` where the kernel would refuse the call; where it accepts
    it, return None, or the words saying what the kernel made of bits that do not mean what
    their names say (legacy clone's low byte is the exit signal: ``check(0x40, via="clone")``
    gives "low byte 0x40 is the exit signal: 64 (SIGRTMAX)").

    ``via`` is the system call: ``"clone3"``, ``"clone"`` (legacy: the exit signal rides in the
    low byte of the flags) or ``"unshare"`` (the exit signal does not apply).  ``exit_signal``
    defaults to SIGCHLD (for legacy clone: to the flags' low byte when it is not zero).
    ``cgroup`` is the fd or path of the cgroup2 directory for CLONE_INTO_CGROUP.  ``state`` is
    the caller's situation; by default the calling thread's, read from /proc
    (:meth:`CallerState.current`).
    """
    found = first_refusal(flags, via=via, exit_signal=exit_signal, cgroup=cgroup, state=state)
    if found is not None:
        rule, call = found
        raise CloneFlagsError(
            rule.errno, rule.describe(call), flags=call.requested, via=call.via,
            exit_signal=call.exit_signal, rule_id=rule.id,
        )
    if via != "clone":
        return None
    _, sig, low = _read_call(flags, via, exit_signal)
    return legacy_reading(low, sig)
