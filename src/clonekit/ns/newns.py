"""Make new namespaces: :func:`unshare` for the calling process, and :func:`run` — the engine of
``clonekit unshare`` (unshare, then optionally fork, set the child up, exec).

Order of steps (each failure names its step):
  1. fork the outside helper if something must be done from outside (maps that need privilege
     in the parent namespace or newuidmap; bind mounts that must stay visible outside);
  2. unshare(2);
  3. id maps (setgroups first) — by this process itself when the map is just its own id,
     otherwise by the helper;
  4. time namespace offsets (before any process enters it);
  5. mount propagation of the new mount namespace;
  6. persist namespaces onto files (pid: once pid 1 exists, i.e. after the fork);
  7. fork (the child is pid 1 of a new pid namespace and in the new time namespace);
  8. in the child: parent-death signal, root, cwd, /proc, gid/uid, capabilities, exec.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import Error, KernelError, UsageError
from .idmap import IdMap, writer_for
from .kinds import Kind, kinds_to_flags, parse_kinds

if TYPE_CHECKING:
    from .helper import OutsideHelper

__all__ = ["UnshareSpec", "run", "unshare"]


@dataclass
class UnshareSpec:
    """Everything ``clonekit unshare`` can be asked; see util-linux unshare(1)."""

    kinds: tuple[Kind, ...] = ()
    persist: dict[Kind, str] = field(default_factory=dict)
    uid_map: IdMap | None = None
    gid_map: IdMap | None = None
    setgroups: str | None = None
    propagation: str = "private"
    monotonic: float | None = None
    boottime: float | None = None
    fork: bool = False
    mount_proc: str | None = None
    kill_child: int | None = None
    root: str | None = None
    wd: str | None = None
    uid: int | None = None
    gid: int | None = None
    keep_caps: bool = False


def _normalise(spec: UnshareSpec) -> UnshareSpec:
    kinds = set(parse_kinds(spec.kinds))
    kinds |= set(spec.persist)
    if spec.uid_map is not None or spec.gid_map is not None or spec.setgroups is not None:
        kinds.add(Kind.USER)
    if spec.mount_proc is not None:
        kinds.add(Kind.MNT)
    if spec.monotonic is not None or spec.boottime is not None:
        kinds.add(Kind.TIME)
    if spec.kill_child is not None:
        spec.fork = True
    from .propagation import check_propagation

    check_propagation(spec.propagation)
    spec.kinds = parse_kinds(kinds)
    return spec


class _Unsharer:
    """Steps 1-6 for the calling process; keeps the helper for step 6 (pid) after the fork."""

    def __init__(self, spec: UnshareSpec) -> None:
        self.spec = spec
        self.helper: OutsideHelper | None = None
        self.maps_outside = False
        self.own = (os.geteuid(), os.getegid())
        if Kind.USER in spec.kinds and (spec.uid_map is not None or spec.gid_map is not None):
            setgroups = spec.setgroups
            if setgroups is None and spec.gid_map is not None and \
                    writer_for("gid_map", spec.gid_map, setgroups="deny", in_ns=True,
                                                  own=self.own[1]) == "direct":
                setgroups = "deny"
            self.setgroups = setgroups
            for which, idmap in (("uid_map", spec.uid_map), ("gid_map", spec.gid_map)):
                own = self.own[0] if which == "uid_map" else self.own[1]
                if idmap is not None and writer_for(which, idmap, setgroups=setgroups, in_ns=True,
                                                    own=own) != "direct":
                    self.maps_outside = True
            if self.maps_outside:
                self.setgroups = spec.setgroups
        else:
            self.setgroups = spec.setgroups

    def start(self) -> None:
        spec = self.spec
        if self.maps_outside or spec.persist:
            from .helper import OutsideHelper

            self.helper = OutsideHelper()
        try:
            self._unshare()
            self._after()
        except BaseException:
            self.close()
            raise

    def _unshare(self) -> None:
        from . import _sys
        from .errors import unshare_error

        try:
            _sys.unshare(kinds_to_flags(self.spec.kinds))
        except OSError as exc:
            raise unshare_error(exc.errno or 0, self.spec.kinds) from None

    def _after(self) -> None:
        spec = self.spec
        if Kind.USER in spec.kinds:
            if self.maps_outside:
                assert self.helper is not None
                self.helper.call("maps", spec.uid_map.text() if spec.uid_map is not None else None,
                                 spec.gid_map.text() if spec.gid_map is not None else None, self.setgroups)
            elif spec.uid_map is not None or spec.gid_map is not None or self.setgroups is not None:
                from .idmap import write_maps

                write_maps(os.getpid(), spec.uid_map, spec.gid_map, setgroups=self.setgroups, in_ns=True,
                           own=self.own)
        if spec.monotonic is not None or spec.boottime is not None:
            from .timens import set_offsets

            set_offsets(monotonic=spec.monotonic, boottime=spec.boottime)
        if Kind.MNT in spec.kinds and spec.propagation != "unchanged":
            from .propagation import set_propagation

            set_propagation(spec.propagation)
        me = os.getpid()
        for kind, path in spec.persist.items():
            if kind is not Kind.PID:
                self.bind(f"/proc/{me}/ns/{kind.proc_child_name}", path)

    def bind(self, source: str, path: str) -> None:
        assert self.helper is not None
        self.helper.call("bind", source, os.path.abspath(path))

    def after_fork(self, child: int) -> None:
        path = self.spec.persist.get(Kind.PID)
        if path is not None:
            self.bind(f"/proc/{child}/ns/pid", path)

    def close(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None


def unshare(kinds: object = (), *, uid_map: IdMap | Sequence[tuple[int, int, int]] | None = None,
            gid_map: IdMap | Sequence[tuple[int, int, int]] | None = None, setgroups: str | None = None,
            propagation: str = "private", persist: Mapping[object, str] | None = None,
            monotonic: float | None = None, boottime: float | None = None) -> None:
    """Move the calling process into new namespaces of ``kinds`` (``"net"``, ``["mnt", "uts"]``,
    CLONE_NEW* flags ...).

    ``uid_map``/``gid_map`` (IdMap or (inside, outside, count) tuples) imply a new user namespace
    and are written with proper synchronisation; ``setgroups`` is "allow" or "deny";
    ``propagation`` applies to a new mount namespace ("private" like util-linux, or slave,
    shared, unchanged); ``persist`` maps kinds to files to bind-mount the new namespaces on
    (not pid: use :func:`run`); ``monotonic``/``boottime`` are time namespace offsets in seconds.

    New pid and time namespaces apply to the children the caller makes afterwards.
    """
    spec = UnshareSpec(
        kinds=parse_kinds(kinds),
        persist={parse_kinds(k)[0]: os.fspath(v) for k, v in (persist or {}).items()},
        uid_map=None if uid_map is None else IdMap(uid_map),
        gid_map=None if gid_map is None else IdMap(gid_map),
        setgroups=setgroups, propagation=propagation, monotonic=monotonic, boottime=boottime)
    spec = _normalise(spec)
    if Kind.PID in spec.persist:
        raise UsageError("a new pid namespace can only be persisted once its pid 1 exists: use "
                         "clonekit.ns.run(..., fork=True) or persist() the child's /proc/PID/ns/pid")
    job = _Unsharer(spec)
    job.start()
    job.close()


# ------------------------------------------------------------------------------ run
def _child_setup(spec: UnshareSpec) -> None:
    """Step 8 in the process that will exec."""
    from . import _sys

    if spec.kill_child is not None:
        _sys.prctl(_sys.PR_SET_PDEATHSIG, spec.kill_child)
    if spec.root is not None:
        try:
            os.chroot(spec.root)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot change root to {spec.root}: {exc.strerror}",
                              step="chroot", filename=spec.root) from None
        if spec.wd is None:
            os.chdir("/")
    if spec.wd is not None:
        try:
            os.chdir(spec.wd)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot change directory to {spec.wd}: {exc.strerror}",
                              step="chdir", filename=spec.wd) from None
    if spec.mount_proc is not None:
        target = spec.mount_proc
        try:
            if spec.propagation != "private" or spec.root is not None:
                # keep the new /proc from propagating to the parent namespace
                _sys.mount(None, target, None, _sys.MS_PRIVATE | _sys.MS_REC)
            _sys.mount("proc", target, "proc", _sys.MS_NOSUID | _sys.MS_NOEXEC | _sys.MS_NODEV)
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EPERM:
                hint = (" (mounting proc needs a new pid namespace owned by your user namespace: add "
                        "-p -f, and -U when unprivileged)")
            raise KernelError(exc.errno or 0, f"cannot mount proc on {target}: {exc.strerror}{hint}",
                              step="mount proc", filename=target) from None
    if spec.gid is not None:
        if spec.setgroups != "deny":
            with contextlib.suppress(PermissionError):
                os.setgroups([])
        try:
            os.setgid(spec.gid)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot set gid {spec.gid}: {exc.strerror} (is it mapped "
                              "in the user namespace?)", step="setgid") from None
    if spec.uid is not None:
        try:
            os.setuid(spec.uid)
        except OSError as exc:
            raise KernelError(exc.errno or 0, f"cannot set uid {spec.uid}: {exc.strerror} (is it mapped "
                              "in the user namespace?)", step="setuid") from None
    if spec.keep_caps and Kind.USER in spec.kinds:
        _sys.raise_ambient_caps()


class ExecError(KernelError):
    """The program could not be executed (exit status 126, or 127 when not found)."""

    @property
    def exit_status(self) -> int:
        return 127 if self.errno == errno.ENOENT else 126


def _exec(argv: Sequence[str]) -> None:
    try:
        os.execvp(argv[0], list(argv))
    except OSError as exc:
        raise ExecError(exc.errno or 0, f"cannot execute {argv[0]}: {exc.strerror}",
                        step="exec") from None


def default_command() -> list[str]:
    return [os.environ.get("SHELL") or "/bin/sh"]


def _report(fd: int, exc: BaseException) -> None:
    import marshal

    err = getattr(exc, "errno", 0) or 0
    data = marshal.dumps((type(exc).__name__, err, str(exc), getattr(exc, "step", "") or ""))
    with contextlib.suppress(OSError):
        os.write(fd, data)


def _raise_report(data: bytes) -> None:
    import marshal

    cls, err, message, step = marshal.loads(data)
    if cls == "ExecError":
        raise _ChildExecError(err, message, step)
    if cls == "UsageError":
        raise UsageError(message)
    raise _ChildError(err, message, step)


class _ChildError(KernelError):
    def __init__(self, err: int, message: str, step: str) -> None:
        super().__init__(err, message, step=step)
        self._text = message

    def __str__(self) -> str:
        return self._text


class _ChildExecError(_ChildError, ExecError):
    pass


def status_to_exit(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128+signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def run(argv: Sequence[str] | None, spec: UnshareSpec) -> int:
    """Do what ``clonekit unshare`` does: make the namespaces, then run ``argv`` (default: the
    user's shell).  Without ``spec.fork`` the calling process becomes the program (no return on
    success).  With it, returns the child's exit status (128+n when killed by signal n)."""
    argv = list(argv) if argv else default_command()
    spec = _normalise(spec)
    if Kind.PID in spec.persist and not spec.fork:
        raise UsageError("persisting a new pid namespace (--pid=FILE) needs --fork: the namespace "
                         "exists once its first process does")
    job = _Unsharer(spec)
    job.start()
    if not spec.fork:
        job.close()
        _child_setup(spec)
        _exec(argv)
        raise AssertionError("unreachable")  # pragma: no cover
    try:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child; covered by the CLI tests
            try:
                os.close(rfd)
                _child_setup(spec)
                _exec(argv)
            except BaseException as exc:
                _report(wfd, exc)
                os._exit(127 if isinstance(exc, ExecError) and exc.errno == errno.ENOENT else 126
                         if isinstance(exc, ExecError) else 1)
            os._exit(1)
        os.close(wfd)
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            try:
                job.after_fork(pid)
            except BaseException:
                os.kill(pid, signal.SIGKILL)  # our own child, not yet useful: do not leave it
                os.waitpid(pid, 0)
                raise
            finally:
                job.close()
            data = b""
            while True:
                chunk = os.read(rfd, 65536)
                if not chunk:
                    break
                data += chunk
            os.close(rfd)
            _, status = os.waitpid(pid, 0)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
        if data:
            _raise_report(data)
        return status_to_exit(status)
    except Error:
        raise
    finally:
        job.close()
