"""Fork a child that sets itself up and execs, report its failures to the parent, wait for it.

Shared by ``clonekit unshare --fork`` and ``clonekit nsenter``.  The child is made with
:func:`clonekit.process.clone` and held by its :class:`clonekit.task.Task` (a pidfd).  A failure in
the child (a setup step or the exec) travels back over a CLOEXEC pipe as (class, errno, message,
step) and is raised again in the parent; a successful exec closes the pipe with nothing in it.
"""

from __future__ import annotations

import errno
import os
import warnings  # noqa: F401  os.execvp imports it lazily: maybe after setuid, when the

# interpreter's files are no longer readable (Python 3.13 no longer loads it at start-up)
from _signal import SIG_IGN, SIGINT, SIGTERM  # `signal` would import enum
from _signal import signal as _set_handler

from ..errors import KernelError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..task import Task


class ExecError(KernelError):
    """The program could not be executed (exit status 126, or 127 when not found)."""

    @property
    def exit_status(self) -> int:
        return 127 if self.errno == errno.ENOENT else 126


class _ChildError(KernelError):
    """A failure relayed from the child: its text is complete already."""

    def __init__(self, err: int, message: str, step: str) -> None:
        super().__init__(err, message, step=step)
        self._text = message

    def __str__(self) -> str:
        return self._text


class _ChildExecError(_ChildError, ExecError):
    pass


def exec_program(argv: Sequence[str]) -> None:
    """execvp, or ExecError naming the program."""
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        raise ExecError(exc.errno or 0, f"cannot execute {argv[0]}: {exc.strerror}", step="exec") from None


def default_command() -> list[str]:
    """util-linux's default program: $SHELL, else /bin/sh."""
    return [os.environ.get("SHELL") or "/bin/sh"]


def _report(fd: int, exc: BaseException) -> None:
    import marshal

    err = getattr(exc, "errno", 0) or 0
    data = marshal.dumps((type(exc).__name__, err, str(exc), getattr(exc, "step", "") or ""))
    try:
        os.write(fd, data)
    except OSError:
        pass


def _raise_report(data: bytes) -> None:
    import marshal

    cls, err, message, step = marshal.loads(data)
    if cls == "ExecError":
        raise _ChildExecError(err, message, step)
    if cls in ("UsageError", "NotANamespaceError", "WrongKindError"):
        raise UsageError(message)
    raise _ChildError(err, message, step)


def exit_status(returncode: int) -> int:
    """A Task returncode as a shell reports it: the exit code, or 128+n when signal n killed it."""
    return 128 - returncode if returncode < 0 else returncode


def preload() -> None:
    """Import now what :func:`fork_exec` needs later: after setns(mnt), chroot or setuid the
    Python library may be out of reach (another root, or a directory the new uid cannot read)."""
    from .. import process  # noqa: F401


def fork_exec(argv: Sequence[str], setup: Callable[[], None],
              after_fork: Callable[[int], None] | None = None) -> int:
    """Make a child that runs ``setup()`` then execs ``argv``; return its exit status.

    ``after_fork(pid)`` runs in the parent before the child's outcome is awaited; if it fails
    the child is killed and reaped.  SIGINT and SIGTERM are ignored by the parent while it
    waits (the child, in the foreground, gets them from the terminal), like util-linux."""
    from ..process import clone

    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        child = clone()
    except BaseException:
        os.close(rfd)
        os.close(wfd)
        raise
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(rfd)
            setup()
            exec_program(argv)
        except BaseException as exc:
            _report(wfd, exc)
            code = exc.exit_status if isinstance(exc, ExecError) else 1
        os._exit(code)
    task: Task = child  # type: ignore[assignment]
    os.close(wfd)
    old_int = _set_handler(SIGINT, SIG_IGN)
    old_term = _set_handler(SIGTERM, SIG_IGN)
    try:
        with task:
            if after_fork is not None:
                try:
                    after_fork(task.pid)
                except BaseException:
                    task.kill()  # our own child, not yet running the program: do not leave it
                    task.wait()
                    raise
            data = b""
            while chunk := os.read(rfd, 65536):
                data += chunk
            returncode = task.wait()
    finally:
        os.close(rfd)
        _set_handler(SIGINT, old_int)
        _set_handler(SIGTERM, old_term)
    if data:
        _raise_report(data)
    return exit_status(returncode)
