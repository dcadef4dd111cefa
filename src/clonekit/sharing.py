"""What a task made with a set of clone flags shares with its caller, copies, or gets anew.

:func:`explain` answers from the flags alone (the kernel's semantics, see copy_process()), one
row per resource, in the vocabulary below that :func:`clonekit.probe` observes in real tasks
(the two must never differ); it also names the glibc entry points that use exactly this set
(:data:`LIBC_SETS`) and whether the kernel would accept the call from here
(:func:`clonekit.rules.first_refusal`).

Row keys and their verdicts::

    memory, fd_table, fs_info   shared | copied
    signal_handlers             shared | copied | reset      (reset: CLONE_CLEAR_SIGHAND)
    thread_group                joined | new                 (joined: the caller's TGID)
    parent                      caller | callers_parent
    sysvsem_undo, io_context    shared | new
    tracing                     continued | untraced | default
    tls                         set | inherited
    parent_tid_write            written | none
    child_tid_write             written | none
    child_tid_clear             cleared | none               (cleared: zeroed + futex wake at exit)
    vfork_suspend               suspended | none
    exit_signal                 a signal name ("SIGCHLD", "SIGRTMIN+2") | none
    pidfd                       returned | none
    ns.mnt ns.uts ns.ipc ns.net ns.pid ns.user ns.cgroup ns.time     shared | new
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import errno_name
from .flags import CloneFlag
from .signals import signal_name

__all__ = ["LIBC_SETS", "NS_KINDS", "Explanation", "LibcSet", "Row", "explain", "signal_name"]

F = CloneFlag


@dataclass(frozen=True)
class LibcSet:
    """The exact clone call a glibc entry point makes."""

    name: str
    flags: CloneFlag
    exit_signal: int
    about: str


#: glibc's own clone calls (x86_64, glibc 2.34+).
LIBC_SETS: Mapping[str, LibcSet] = {
    s.name: s
    for s in (
        LibcSet("fork", F.CHILD_SETTID | F.CHILD_CLEARTID, signal.SIGCHLD,
                "fork()/_Fork(): clone with the child's tid word written in the child and cleared "
                "at its exit"),
        LibcSet("vfork", F.VM | F.VFORK, signal.SIGCHLD,
                "vfork(): shares memory, the caller sleeps until the child execs or exits"),
        LibcSet("posix_spawn", F.CLEAR_SIGHAND | F.VM | F.VFORK, signal.SIGCHLD,
                "posix_spawn() (and system(), popen()): vfork-like through clone3, handlers reset "
                "in the kernel; without clone3 it falls back to vfork's set"),
        LibcSet("pthread_create", F.VM | F.FS | F.FILES | F.SYSVSEM | F.SIGHAND | F.THREAD | F.SETTLS
                | F.PARENT_SETTID | F.CHILD_CLEARTID, 0,
                "pthread_create(): a thread of the caller's group, through clone3 (clone as a "
                "fallback)"),
    )
}

NS_KINDS: tuple[tuple[str, CloneFlag, str], ...] = (
    ("mnt", F.NEWNS, "mount namespace"),
    ("uts", F.NEWUTS, "UTS namespace (host and domain name)"),
    ("ipc", F.NEWIPC, "IPC namespace (SysV IPC, POSIX queues)"),
    ("net", F.NEWNET, "network namespace"),
    ("pid", F.NEWPID, "PID namespace"),
    ("user", F.NEWUSER, "user namespace"),
    ("cgroup", F.NEWCGROUP, "cgroup namespace"),
    ("time", F.NEWTIME, "time namespace"),
)


@dataclass(frozen=True)
class Row:
    key: str
    resource: str
    verdict: str
    detail: str


# key, resource, flag, verdict with the flag, without it, detail with, detail without
_SIMPLE: tuple[tuple[str, str, CloneFlag, str, str, str, str], ...] = (
    ("memory", "memory (address space)", F.VM, "shared", "copied",
     "one address space: a write by either task is seen by the other",
     "a copy-on-write copy: writes stay private to the task that makes them"),
    ("fd_table", "file descriptor table", F.FILES, "shared", "copied",
     "one table: an fd opened or closed by either task is opened or closed for both",
     "a copy: the same open files, but later opens and closes are private"),
    ("fs_info", "fs info (root, cwd, umask)", F.FS, "shared", "copied",
     "chdir, chroot and umask by either task apply to both",
     "a copy: chdir, chroot and umask are private"),
)
_SIMPLE_LATE: tuple[tuple[str, str, CloneFlag, str, str, str, str], ...] = (
    ("sysvsem_undo", "SysV semaphore undo list", F.SYSVSEM, "shared", "new",
     "one undo list: SEM_UNDO adjustments are applied when the last sharer exits",
     "an empty undo list of its own"),
    ("io_context", "I/O context (I/O scheduler state)", F.IO, "shared", "new",
     "one I/O context: the I/O scheduler treats both as one submitter",
     "an I/O context of its own"),
)
_WRITES: tuple[tuple[str, str, CloneFlag, str, str, str, str], ...] = (
    ("tls", "thread-local storage (FS base)", F.SETTLS, "set", "inherited",
     "the child starts with the TLS pointer given in the call",
     "the child keeps the caller's TLS pointer"),
    ("parent_tid_write", "parent_tid word", F.PARENT_SETTID, "written", "none",
     "the kernel writes the child's TID to parent_tid in the caller's memory before clone returns",
     "nothing written"),
    ("child_tid_write", "child_tid word (set)", F.CHILD_SETTID, "written", "none",
     "the kernel writes the child's TID to child_tid in the child's memory",
     "nothing written"),
    ("child_tid_clear", "child_tid word (clear at exit)", F.CHILD_CLEARTID, "cleared", "none",
     "when the child exits the kernel zeroes child_tid and wakes a futex waiter on it "
     "(how pthread_join works)",
     "nothing cleared"),
    ("vfork_suspend", "caller suspended (vfork)", F.VFORK, "suspended", "none",
     "the caller sleeps until the child calls execve or exits",
     "the caller runs on at once"),
)


@dataclass(frozen=True)
class Explanation:
    """The rows of :func:`explain`, as data (:meth:`to_dict`) or as a table (:meth:`render`)."""

    flags: CloneFlag
    via: str
    exit_signal: int
    rows: tuple[Row, ...]
    libc: tuple[str, ...]
    #: unshare: the flags with the kernel's implied additions; otherwise the flags
    effective_flags: CloneFlag
    #: None if the kernel would accept the call from this process, else "ERRNO: rule"
    refusal: str | None = None
    refusal_errno: int = 0
    _index: dict[str, Row] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({row.key: row for row in self.rows})

    def __getitem__(self, key: str) -> Row:
        return self._index[key]

    @property
    def verdicts(self) -> dict[str, str]:
        """key -> verdict."""
        return {row.key: row.verdict for row in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {
            "flags": str(self.flags),
            "flags_value": int(self.flags),
            "via": self.via,
            "exit_signal": self.exit_signal,
            "exit_signal_name": signal_name(self.exit_signal) if self.exit_signal else "none",
            "effective_flags": str(self.effective_flags),
            "rows": [
                {"key": r.key, "resource": r.resource, "verdict": r.verdict, "detail": r.detail}
                for r in self.rows
            ],
            "libc": list(self.libc),
            "kernel": {
                "accepted": self.refusal is None,
                "errno": errno_name(self.refusal_errno) if self.refusal_errno else None,
                "rule": self.refusal,
            },
        }

    def render(self) -> str:
        sig = signal_name(self.exit_signal) if self.exit_signal else "0"
        if self.via == "unshare":
            title = f"unshare({self.flags})"
            if self.effective_flags != self.flags:
                title += f"  -- the kernel works with {self.effective_flags}"
        else:
            title = f"{self.via}({self.flags}, exit signal {sig})"
        table = [("KEY", "RESOURCE", "VERDICT", "DETAIL")]
        table += [(r.key, r.resource, r.verdict, r.detail) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        lines = [title]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
                  for row in table]
        lines.append("libc: " + (", ".join(self.libc) if self.libc else "no glibc entry point uses this set"))
        lines.append("kernel: " + ("accepts this call here" if self.refusal is None
                                   else f"refuses it: {self.refusal}"))
        return "\n".join(line.rstrip() for line in lines)


def libc_users(flags: int, exit_signal: int) -> tuple[str, ...]:
    """The glibc entry points of :data:`LIBC_SETS` that make exactly this call."""
    return tuple(s.name for s in LIBC_SETS.values()
                 if s.flags.value == int(flags) and s.exit_signal == exit_signal)


def explain(
    flags: int | str | CloneFlag,
    *,
    via: str = "clone3",
    exit_signal: int | None = None,
) -> Explanation:
    """What a task made with ``flags`` shares with its caller, copies, or gets anew.

    ``exit_signal`` defaults to SIGCHLD; for legacy clone, to the flags' low byte when it is
    not zero (that byte is the exit signal there, whatever its bits are named).
    For ``via="unshare"`` the rows describe the caller itself after the call: what it stops
    sharing ("copied"/"new") and what it keeps ("shared"), with the flags unshare() implies.
    """
    from .rules import _check_args, _read_call, first_refusal, legacy_reading, unshare_effective_flags

    via, given = _check_args(via, exit_signal)
    # legacy clone: bits of the low byte are the exit signal, whatever their names say
    parsed, sig, low = _read_call(flags, via, given)
    if via == "unshare":
        sig = 0
        effective = CloneFlag(unshare_effective_flags(parsed.value))
        rows = _unshare_rows(effective)
        libc: tuple[str, ...] = ()
    else:
        effective = parsed
        rows = _clone_rows(parsed, sig, legacy_reading(low, sig) if via == "clone" else None)
        libc = libc_users(parsed, sig)
    found = first_refusal(parsed, via=via, exit_signal=sig)
    refusal, err = None, 0
    if found is not None:
        rule, call = found
        refusal, err = f"{errno_name(rule.errno)}: {rule.describe(call)}", rule.errno
    return Explanation(parsed, via, sig, tuple(rows), libc, effective, refusal, err)


def _clone_rows(f: CloneFlag, sig: int, low_byte: str | None = None) -> list[Row]:
    """``low_byte``: what legacy clone() made of bits in the flags' low byte (the exit signal)."""
    rows: list[Row] = []
    for key, resource, flag, yes, no, dyes, dno in _SIMPLE:
        rows.append(Row(key, resource, yes if f & flag else no, dyes if f & flag else dno))
    if f & F.CLEAR_SIGHAND:
        handlers = Row("signal_handlers", "signal handlers", "reset",
                       "a copy with every handled signal reset to SIG_DFL (ignored ones stay ignored)")
    elif f & F.SIGHAND:
        handlers = Row("signal_handlers", "signal handlers", "shared",
                       "one handler table: sigaction by either task changes it for both")
    else:
        handlers = Row("signal_handlers", "signal handlers", "copied",
                       "a copy: later sigaction calls are private")
    rows.append(handlers)
    rows.append(Row("thread_group", "thread group (TGID)", "joined" if f & F.THREAD else "new",
                    "a thread of the caller's group: same TGID (getpid), own TID"
                    if f & F.THREAD else "a process of its own: TGID = its TID"))
    if f & (F.PARENT | F.THREAD):
        why = "CLONE_THREAD" if f & F.THREAD else "CLONE_PARENT"
        rows.append(Row("parent", "parent process", "callers_parent",
                        f"{why}: the child's parent is the caller's parent (getppid gives the same)"))
    else:
        rows.append(Row("parent", "parent process", "caller", "the caller is the parent"))
    for key, resource, flag, yes, no, dyes, dno in _SIMPLE_LATE:
        rows.append(Row(key, resource, yes if f & flag else no, dyes if f & flag else dno))
    if f & F.PTRACE:
        rows.append(Row("tracing", "ptrace", "continued",
                        "if the caller is traced, the child is traced by the same tracer"))
    elif f & F.UNTRACED:
        rows.append(Row("tracing", "ptrace", "untraced",
                        "a tracer of the caller cannot force tracing onto the child"))
    else:
        rows.append(Row("tracing", "ptrace", "default",
                        "traced only if the caller's tracer asked to follow forks/clones"))
    for key, resource, flag, yes, no, dyes, dno in _WRITES:
        rows.append(Row(key, resource, yes if f & flag else no, dyes if f & flag else dno))
    if f & F.THREAD:
        rows.append(Row("exit_signal", "exit signal", "none",
                        "a thread sends no signal at exit (its group leader's signal counts)"))
    elif f & F.PARENT:
        rows.append(Row("exit_signal", "exit signal", "none",
                        "none to the caller: the child inherits the caller's own exit signal and "
                        "sends it to the caller's parent"))
    elif sig == 0:
        rows.append(Row("exit_signal", "exit signal", "none",
                        "no signal at exit: wait for it with __WALL (or a pidfd)"))
    elif low_byte is not None:
        rows.append(Row("exit_signal", "exit signal", signal_name(sig) if sig <= 64 else "none", low_byte))
    else:
        name = signal_name(sig)
        extra = "" if sig == signal.SIGCHLD else " (not SIGCHLD: waitpid needs __WALL or __WCLONE)"
        rows.append(Row("exit_signal", "exit signal", name,
                        f"the caller receives {name} when the child exits{extra}"))
    rows.append(Row("pidfd", "pidfd", "returned" if f & F.PIDFD else "none",
                    "the caller gets a pidfd for the child (no PID-reuse race)"
                    if f & F.PIDFD else "no pidfd"))
    for kind, flag, name in NS_KINDS:
        rows.append(_ns_row(kind, flag, name, f, child=True))
    return rows


def _ns_row(kind: str, flag: CloneFlag, name: str, f: CloneFlag, *, child: bool) -> Row:
    key = f"ns.{kind}"
    if not f & flag:
        return Row(key, name, "shared", "the caller's" if child else "unchanged")
    if kind == "pid":
        detail = ("the child is pid 1 of a new PID namespace: its ns/pid (and pid_for_children) "
                  "differ from the caller's" if child else
                  "pid_for_children changes: the caller stays where it is, its next child is "
                  "pid 1 of the new namespace")
    elif kind == "time":
        detail = ("the child is in a new time namespace: its ns/time (and time_for_children) "
                  "differ from the caller's" if child else
                  "time_for_children changes: the caller stays, its children get the new "
                  "namespace (offsets can be set until the first one)")
    elif kind == "user":
        detail = ("a new user namespace owned by the caller's euid; the child has all "
                  "capabilities inside it" if child else
                  "the caller enters a new user namespace with all capabilities inside it "
                  "(write uid_map/gid_map next)")
    else:
        detail = f"a new {name}" + ("" if child else " for the caller")
    return Row(key, name, "new", detail)


def _unshare_rows(f: CloneFlag) -> list[Row]:
    def own(flag: CloneFlag, key: str, name: str, verdict: str, yes: str) -> Row:
        if f & flag:
            return Row(key, name, verdict, yes)
        return Row(key, name, "shared", "unchanged: still shared with whoever shared it")

    rows = [
        own(F.VM, "memory", "memory (address space)", "copied",
            "accepted only if no other task shares it, so nothing changes"),
        own(F.FILES, "fd_table", "file descriptor table", "copied",
            "the caller gets a private copy of its fd table"),
        own(F.FS, "fs_info", "fs info (root, cwd, umask)", "copied",
            "the caller gets a private copy of root, cwd and umask"),
        own(F.SIGHAND, "signal_handlers", "signal handlers", "copied",
            "accepted only if no other task shares them, so nothing changes"),
        own(F.SYSVSEM | F.NEWIPC, "sysvsem_undo", "SysV semaphore undo list", "new",
            "the caller's undo list is applied and dropped (as at exit)"),
    ]
    for kind, flag, name in NS_KINDS:
        rows.append(_ns_row(kind, flag, name, f, child=False))
    return rows
