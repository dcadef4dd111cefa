"""Make tasks: ``clone()`` (fork-like, the child keeps running Python) and ``spawn()`` (clone
straight to execve, nothing of Python in the child).

Python prepares and validates; ``_native`` executes.  The kernel is asked first and explained
after: a refused call is explained by :func:`clonekit.check` only when it fails, so the hot path
pays for no /proc reads.
"""

from __future__ import annotations

import os
from _signal import SIGCHLD, SIGPIPE, SIGXFSZ  # `signal` would import enum (see _bits)

from . import _bits, _native
from .errors import UsageError
from .task import Task

__all__ = ["CloneRefused", "clone", "spawn"]

TYPE_CHECKING = False
if TYPE_CHECKING:  # the typing module costs more to import than all of clonekit's core
    from collections.abc import Iterable, Mapping, Sequence
    from typing import IO

    from .flags import CloneFlag

    FlagsLike = int | str | CloneFlag
    FdLike = int | IO[bytes] | IO[str] | None

# A Python child cannot live in its parent's address space or thread group: the interpreter's
# state (GIL, thread states, allocator) would be shared by two tasks without a thread state.
_NOT_FOR_PYTHON = _bits.VM | _bits.VFORK | _bits.THREAD | _bits.SETTLS | _bits.SIGHAND
# clone-to-exec shares memory with the suspended parent until execve: whatever the child changes
# before that (cwd, fd table, handlers) must not be shared with the parent.
_NOT_FOR_SPAWN = (
    _bits.THREAD | _bits.SETTLS | _bits.SIGHAND | _bits.FS | _bits.FILES
    | _bits.PARENT_SETTID | _bits.CHILD_SETTID | _bits.CHILD_CLEARTID | _bits.DETACHED
)
# subprocess's restore_signals: Python ignores these, a new program should not
_RESTORED_SIGNALS = (SIGPIPE, SIGXFSZ)
_EXEC_STEPS = {
    _native.STEP_CHDIR: "chdir",
    _native.STEP_DUP: "dup2",
    _native.STEP_SETSID: "setsid",
}


class CloneRefused(UsageError):
    """clonekit will not make this task from Python (not a kernel refusal)."""


def clone(
    flags: FlagsLike = 0,
    *,
    exit_signal: int = SIGCHLD,
    cgroup: int | str | os.PathLike[str] | None = None,
) -> int | Task:
    """Like :func:`os.fork`, with any clone flags that leave the child its own address space.

    Returns 0 in the child, which keeps running Python, and a :class:`Task` in the parent.
    ``cgroup`` (an fd or a path of a cgroup2 directory) places the child there from birth
    (``CLONE_INTO_CGROUP``).
    """
    value = _flag_bits(flags)
    bad = value & _NOT_FOR_PYTHON
    if bad:
        raise CloneRefused(
            f"clone() cannot make a Python child with {_named(bad)}: a child that shares the address "
            "space or thread group would run the interpreter without a thread state of its own. "
            "Use clonekit.spawn() to run a program that way, or clonekit.probe() to watch what "
            "these flags do in a native child"
        )
    exit_signal = _signal_number(exit_signal)
    # Everything is decided before the clone: until the child is gone, each page the parent
    # writes is a copy-on-write fault, so the parent's path after it stays as short as os.fork's.
    is_child = not value & _bits.PARENT
    if cgroup is None:
        try:
            pid, pidfd = _native.clone(value, exit_signal, -1)
        except OSError as exc:
            raise _explained(exc, value, exit_signal, "clone3") from None
    else:
        with _cgroup_fd(cgroup) as cgroup_fd:
            try:
                pid, pidfd = _native.clone(value | _bits.INTO_CGROUP, exit_signal, cgroup_fd)
            except OSError as exc:
                raise _explained(exc, value, exit_signal, "clone3") from None
    if pid == 0:
        return 0
    return Task(pid, pidfd, is_child=is_child)


def spawn(
    argv: Sequence[str | bytes | os.PathLike[str]],
    *,
    flags: FlagsLike = 0,
    env: Mapping[str, str] | None = None,
    cwd: str | bytes | os.PathLike[str] | None = None,
    executable: str | bytes | os.PathLike[str] | None = None,
    stdin: FdLike = None,
    stdout: FdLike = None,
    stderr: FdLike = None,
    pass_fds: Iterable[int] = (),
    close_fds: bool = True,
    start_new_session: bool = False,
    exit_signal: int = SIGCHLD,
    cgroup: int | str | os.PathLike[str] | None = None,
) -> Task:
    """Run a program in a new task made by ``clone3(CLONE_VM|CLONE_VFORK|flags)`` + execve.

    ``flags`` adds namespace flags (and PARENT, IO, SYSVSEM, PTRACE, UNTRACED).  Arguments
    mirror :class:`subprocess.Popen`; a failed execve or chdir raises the right ``OSError``
    here, in the parent, with the path named.
    """
    value = _flag_bits(flags)
    if value & _NOT_FOR_SPAWN:
        raise CloneRefused(
            f"spawn() does not take {_named(value & _NOT_FOR_SPAWN)}: until execve the child runs on the "
            "parent's memory, so it must not share cwd, fd table, signal handlers or thread group "
            "with it (spawn adds VM, VFORK, PIDFD and CLEAR_SIGHAND itself)"
        )
    if isinstance(argv, (str, bytes)) or not argv:
        raise UsageError("argv must be a non-empty list of arguments, e.g. ['ls', '-l']")
    args = [os.fsencode(a) for a in argv]
    envb = None if env is None else [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
    program = os.fsencode(executable) if executable is not None else args[0]
    exec_paths = _exec_candidates(program, env)
    fd_map = [] if stdin is stdout is stderr is None else [
        x for target, source in enumerate((stdin, stdout, stderr)) for x in (target, _fd(source))]
    keep = sorted({int(fd) for fd in pass_fds if int(fd) > 2}) if pass_fds else []
    exit_signal = _signal_number(exit_signal)
    with _cgroup_fd(cgroup) as cgroup_fd:
        try:
            pid, pidfd, err, step = _native.spawn(
                exec_paths, args, envb, None if cwd is None else os.fsencode(cwd),
                value | (_bits.INTO_CGROUP if cgroup_fd >= 0 else 0),
                exit_signal, fd_map, keep, close_fds, start_new_session, _RESTORED_SIGNALS,
                cgroup_fd,
            )
        except OSError as exc:
            raise _explained(exc, value | _bits.VM | _bits.VFORK, exit_signal, "clone3") from None
    if err:
        if step == _native.STEP_EXEC:
            raise OSError(err, os.strerror(err), os.fsdecode(program))
        if step == _native.STEP_CHDIR:
            raise OSError(err, os.strerror(err), os.fsdecode(os.fsencode(cwd or "")))
        raise OSError(err, f"{os.strerror(err)} (in the child, at {_EXEC_STEPS.get(step, step)})")
    return Task(pid, pidfd, is_child=not value & _bits.PARENT)


def _flag_bits(flags: object) -> int:
    """The flags as an int; a plain int of known bits skips the parser (and its enum import)."""
    if type(flags) is int and flags >= 0 and not flags & ~_bits.ALL:
        return flags
    from .flags import parse_flags

    return parse_flags(flags).value


def _named(bits: int) -> str:
    from .flags import CloneFlag

    return str(CloneFlag(bits))


def _exec_candidates(program: bytes, env: Mapping[str, str] | None) -> list[bytes]:
    if b"/" in program:
        return [program]
    dirs = os.get_exec_path(env)
    return [os.path.join(os.fsencode(d), program) for d in dirs] or [program]


def _fd(value: FdLike) -> int:
    if value is None:
        return -1
    if isinstance(value, int):
        return value
    return value.fileno()


def _signal_number(sig: object) -> int:
    if isinstance(sig, bool) or not isinstance(sig, int):
        raise UsageError(f"exit_signal must be a signal number such as signal.SIGCHLD, not {sig!r}")
    return int(sig)


class _cgroup_fd:
    """An fd for CLONE_INTO_CGROUP from an fd or a path (opened and closed here); -1 if none."""

    def __init__(self, cgroup: int | str | os.PathLike[str] | None) -> None:
        self._cgroup = cgroup
        self._opened = -1

    def __enter__(self) -> int:
        if self._cgroup is None:
            return -1
        if isinstance(self._cgroup, int):
            return self._cgroup
        try:
            self._opened = os.open(self._cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UsageError(
                f"cgroup {os.fspath(self._cgroup)!r} cannot be opened ({exc.strerror}): "
                "CLONE_INTO_CGROUP needs a cgroup2 directory, e.g. under /sys/fs/cgroup/unified"
            ) from None
        return self._opened

    def __exit__(self, *exc: object) -> None:
        if self._opened >= 0:
            os.close(self._opened)


def _explained(exc: OSError, flags: int, exit_signal: int, via: str) -> OSError:
    """The kernel refused: name the rule when clonekit.check knows it."""
    from .errors import from_errno

    try:
        from .rules import CloneFlagsError, check

        shown = _named(flags)
    except ImportError:  # e.g. in a container's init, past the point where imports work
        return from_errno(exc.errno or 0, via, f"the kernel refused clone flags {flags:#x}")
    try:
        check(flags, via=via, exit_signal=exit_signal)
    except CloneFlagsError as explained:
        if explained.errno == exc.errno:
            return explained
    return from_errno(exc.errno or 0, via, f"the kernel refused {shown}")
