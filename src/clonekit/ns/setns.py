"""Join existing namespaces: :func:`enter` (setns), and :func:`run` — the engine of
``clonekit nsenter``.

With a process as target, ``setns(pidfd, mask)`` joins several namespaces in one all-or-nothing
step (Linux 5.8+); otherwise, and for namespace files, each file is opened first (while /proc is
still ours) and joined in the kernel's order: user, mnt, uts, ipc, pid, cgroup, net, time.
"""

from __future__ import annotations

import errno
import os

from ..errors import KernelError, UsageError
from .errors import NoSuchProcessError, setns_error
from .kinds import KERNEL_ORDER, Kind, kinds_to_flags, parse_kinds

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from .namespace import Namespace

__all__ = ["NsenterSpec", "enter", "run"]


def _pidfd_open(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise NoSuchProcessError(f"no process with pid {pid} (it exited, or never existed)") from None
        raise KernelError(exc.errno or 0, os.strerror(exc.errno or 0), step="pidfd_open") from None


def _same_as_mine(pid: int, kind: Kind) -> bool:
    try:
        a = os.stat(f"/proc/{pid}/ns/{kind.proc_name}")
        b = os.stat(f"/proc/self/ns/{kind.proc_name}")
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def _describe(target: object) -> str:
    if isinstance(target, int):
        return f"process {target}"
    pid = getattr(target, "pid", None)
    return f"process {pid}" if pid is not None else str(target)


def _setns_one(fd: int, kind: Kind, shown: str) -> None:
    from . import _sys

    try:
        _sys.setns(fd, kinds_to_flags((kind,)))
    except OSError as exc:
        raise setns_error(exc.errno or 0, [kind], shown) from None


def enter(target: Any = None, kinds: object = None, *, pidfd: int | None = None,
          files: Mapping[object, str | os.PathLike[str] | Namespace] | None = None) -> tuple[Kind, ...]:
    """Move the calling thread into namespaces; returns the kinds joined.

    ``target``: a pid (int), a :class:`clonekit.task.Task` (or anything with ``.pid`` and
    ``.fileno()`` giving a pidfd), a :class:`Namespace`, a path of a namespace file, or a sequence
    of Namespaces/paths.  ``pidfd=`` gives a raw pidfd.  ``files=`` maps kinds to namespace files.
    ``kinds`` limits which namespaces of a process are joined (default: all of them, without
    the user namespace when it is already ours — the kernel refuses to re-enter it).

    Joining a pid namespace changes only where the caller's *children* go; fork afterwards.
    """
    from .namespace import Namespace

    if files is not None or isinstance(target, (str, os.PathLike, Namespace)) or (
            isinstance(target, (list, tuple)) and target):
        return _enter_files(target, files, kinds)
    fd_owned = False
    if pidfd is not None:
        fd, pid = pidfd, _pid_of_pidfd(pidfd)
    elif isinstance(target, int) and not isinstance(target, bool):
        fd, pid, fd_owned = _pidfd_open(target), target, True
    elif hasattr(target, "fileno") and hasattr(target, "pid"):
        fd, pid = target.fileno(), int(target.pid)
    else:
        raise UsageError(f"cannot enter namespaces of {target!r}: give a pid, a Task, a pidfd=, "
                         "a namespace file or files={kind: path}")
    try:
        wanted = KERNEL_ORDER if kinds is None else parse_kinds(kinds)
        if kinds is None:
            wanted = tuple(k for k in wanted if not (k is Kind.USER and _same_as_mine(pid, k)))
        if not wanted:
            return ()
        from . import _sys

        try:
            _sys.setns(fd, kinds_to_flags(wanted))
            return wanted
        except OSError as exc:
            err = exc.errno or 0
            if err == errno.ESRCH:
                raise NoSuchProcessError(
                    f"process {pid} exited before its namespaces could be entered") from None
            if err != errno.EINVAL or _pidfd_setns_works():
                raise setns_error(err, wanted, _describe(target if target is not None else pid)) from None
        # kernels before 5.8: one nsfs file per kind
        return _enter_files(None, {k: f"/proc/{pid}/ns/{k.proc_name}" for k in wanted}, None)
    finally:
        if fd_owned:
            os.close(fd)


_pidfd_ok: bool | None = None


def _pidfd_setns_works() -> bool:
    """Whether setns() accepts pidfds here (5.8+): setns(pidfd of self, 0) says EINVAL for the
    mask either way, so look at the kernel version instead."""
    global _pidfd_ok
    if _pidfd_ok is None:
        release = os.uname().release.split("-")[0].split(".")
        try:
            major, minor = int(release[0]), int(release[1])
        except (ValueError, IndexError):  # pragma: no cover
            major, minor = 0, 0
        _pidfd_ok = (major, minor) >= (5, 8)
    return _pidfd_ok


def _pid_of_pidfd(fd: int) -> int:
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    pid = int(line.split()[1])
                    if pid <= 0:
                        raise NoSuchProcessError(f"the process of pidfd {fd} has exited")
                    return pid
    except FileNotFoundError:
        raise UsageError(f"descriptor {fd} is not open") from None
    raise UsageError(f"descriptor {fd} is not a pidfd")


def _enter_files(target: Any, files: Mapping[object, Any] | None, kinds: object) -> tuple[Kind, ...]:
    items: list[Any] = []
    if files:
        for key, value in files.items():
            items.append((parse_kinds(key)[0], value))
    if target is not None:
        for value in (target if isinstance(target, (list, tuple)) else [target]):
            items.append((None, value))
    from .namespace import Namespace

    wanted = None if kinds is None else set(parse_kinds(kinds))
    opened: dict[Kind, tuple[int, str]] = {}
    try:
        for kind, value in items:
            fd, shown = _open_ns(value)
            try:
                opened_kind = Namespace.from_fd(fd, kind, _shown=shown).kind
            except BaseException:
                os.close(fd)
                raise
            if opened_kind in opened:
                os.close(fd)
                raise UsageError(f"two {opened_kind} namespaces given ({opened[opened_kind][1]} and {shown})")
            opened[opened_kind] = (fd, shown)
        order = [k for k in KERNEL_ORDER if k in opened and (wanted is None or k in wanted)]
        for kind in order:
            fd, shown = opened[kind]
            _setns_one(fd, kind, shown)
        return tuple(order)
    finally:
        for fd, _ in opened.values():
            os.close(fd)


def _open_ns(value: Any) -> tuple[int, str]:
    from .namespace import Namespace

    if isinstance(value, Namespace):
        return value.open(), str(value.path or value)
    path = os.fspath(value)
    from .errors import namespace_file_error

    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), path
    except OSError as exc:
        raise namespace_file_error(exc, path) from None


# ------------------------------------------------------------------------------ run
class NsenterSpec:
    """Everything ``clonekit nsenter`` can be asked; see util-linux nsenter(1).

    ``kinds`` maps a kind to a namespace file, or to None for the target's; ``root``/``wd`` ""
    mean the target's root/cwd."""

    def __init__(self, *, target: int | None = None, all: bool = False,
                 kinds: dict[Kind, str | None] | None = None, preserve_credentials: bool = False,
                 root: str | None = None, wd: str | None = None, uid: int | None = None,
                 gid: int | None = None, fork: bool = True) -> None:
        self.target = target
        self.all = all
        self.kinds: dict[Kind, str | None] = dict(kinds or {})
        self.preserve_credentials = preserve_credentials
        self.root = root
        self.wd = wd
        self.uid = uid
        self.gid = gid
        self.fork = fork

    def __repr__(self) -> str:
        return "NsenterSpec(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def _plan(spec: NsenterSpec) -> dict[Kind, str]:
    if spec.target is not None and not os.path.exists(f"/proc/{spec.target}"):
        raise NoSuchProcessError(f"no process with pid {spec.target} (it exited, or never existed)")
    chosen = dict(spec.kinds)
    if spec.all:
        if spec.target is None:
            raise UsageError("--all needs a target process: add -t PID")
        for kind in KERNEL_ORDER:
            if kind in chosen:
                continue
            if not os.path.exists(f"/proc/{spec.target}/ns/{kind.proc_name}"):
                continue  # kinds this kernel lacks
            if _same_as_mine(spec.target, kind):
                continue  # nothing to do (and the kernel refuses to re-enter a user namespace)
            chosen[kind] = None
    paths: dict[Kind, str] = {}
    for kind, path in chosen.items():
        if path is None:
            if spec.target is None:
                raise UsageError(f"--{kind.long_name} without a file needs a target process: add -t PID "
                                 f"or give --{kind.long_name}=FILE")
            path = f"/proc/{spec.target}/ns/{kind.proc_name}"
        paths[kind] = path
    if not paths and spec.root is None and spec.wd is None:
        raise UsageError("no namespace to enter: give -a, or -m/-u/-i/-n/-p/-U/-C/-T")
    return paths


def _open_dir(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"cannot open the {what} {path}: {exc.strerror}",
                          step=f"open {what}", filename=path) from None


def run(argv: Sequence[str] | None, spec: NsenterSpec) -> int:
    """Do what ``clonekit nsenter`` does: enter, set credentials/root/cwd, fork if a pid
    namespace was entered (unless ``spec.fork`` is False), exec ``argv`` (default: the shell).
    Returns the child's exit status (128+n when killed by signal n)."""
    from ._child import default_command, exec_program, fork_exec, preload

    argv = list(argv) if argv else default_command()
    paths = _plan(spec)
    preload()  # entering a mount namespace, chroot and setuid may put our library out of reach
    root_fd = wd_fd = -1
    try:
        if spec.root is not None:
            root_fd = _open_dir(spec.root or f"/proc/{spec.target}/root", "root directory")
        if spec.wd is not None:
            wd_fd = _open_dir(spec.wd or f"/proc/{spec.target}/cwd", "working directory")
        entered: Iterable[Kind] = ()
        if paths:
            use_pidfd = spec.target is not None and all(
                p == f"/proc/{spec.target}/ns/{k.proc_name}" for k, p in paths.items())
            if use_pidfd:
                entered = enter(spec.target, tuple(paths))
            else:
                entered = _enter_files(None, {k: v for k, v in paths.items()}, None)
        # root and cwd first: a uid other than 0 could not chroot any more
        if root_fd >= 0:
            os.fchdir(root_fd)
            try:
                os.chroot(".")
            except OSError as exc:
                raise KernelError(exc.errno or 0, f"cannot change root to the target's: {exc.strerror} "
                                  "(needs CAP_SYS_CHROOT; enter the mount namespace too, with -m)",
                                  step="chroot") from None
            if wd_fd < 0:
                os.chdir("/")
        if wd_fd >= 0:
            os.fchdir(wd_fd)
        if Kind.USER in entered and not spec.preserve_credentials:
            try:
                os.setgroups([])
            except PermissionError:  # setgroups denied there: nothing to drop
                pass
            _set_ids(0 if spec.gid is None else spec.gid, 0 if spec.uid is None else spec.uid)
        elif spec.uid is not None or spec.gid is not None:
            _set_ids(spec.gid, spec.uid)
    finally:
        for fd in (root_fd, wd_fd):
            if fd >= 0:
                os.close(fd)
    if Kind.PID not in entered or not spec.fork:
        exec_program(argv)
        raise AssertionError("unreachable")  # pragma: no cover
    return fork_exec(argv, lambda: None)


def _set_ids(gid: int | None, uid: int | None) -> None:
    if gid is not None:
        try:
            os.setgid(gid)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot set gid {gid}: {exc.strerror} (is it mapped in "
                              "the entered user namespace?)", step="setgid") from None
    if uid is not None:
        try:
            os.setuid(uid)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot set uid {uid}: {exc.strerror} (is it mapped in "
                              "the entered user namespace?)", step="setuid") from None
