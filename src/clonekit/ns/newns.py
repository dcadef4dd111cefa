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

import errno
import os

from ..errors import KernelError, UsageError
from ._child import ExecError
from .kinds import Kind, kinds_to_flags, parse_kinds

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..task import Task
    from .helper import OutsideHelper
    from .idmap import IdMap

__all__ = ["ExecError", "UnshareSpec", "fork", "run", "unshare"]


class UnshareSpec:
    """Everything ``clonekit unshare`` can be asked; see util-linux unshare(1).

    (A plain class, not a dataclass: ``dataclasses`` costs the CLI several milliseconds.)"""

    def __init__(self, *, kinds: tuple[Kind, ...] = (), persist: dict[Kind, str] | None = None,
                 uid_map: IdMap | None = None, gid_map: IdMap | None = None,
                 setgroups: str | None = None, propagation: str = "private",
                 monotonic: float | None = None, boottime: float | None = None, fork: bool = False,
                 mount_proc: str | None = None, kill_child: int | None = None, root: str | None = None,
                 wd: str | None = None, uid: int | None = None, gid: int | None = None,
                 keep_caps: bool = False) -> None:
        self.kinds = kinds
        self.persist: dict[Kind, str] = dict(persist or {})
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.setgroups = setgroups
        self.propagation = propagation
        self.monotonic = monotonic
        self.boottime = boottime
        self.fork = fork
        self.mount_proc = mount_proc
        self.kill_child = kill_child
        self.root = root
        self.wd = wd
        self.uid = uid
        self.gid = gid
        self.keep_caps = keep_caps

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"UnshareSpec({fields})"


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
        self.own = (os.geteuid(), os.getegid())  # inside, before the maps, these read as 65534
        self.setgroups = spec.setgroups
        self.maps_outside = False
        if Kind.USER in spec.kinds and (spec.uid_map is not None or spec.gid_map is not None):
            self._plan_maps()

    def _plan_maps(self) -> None:
        """Can this process write its own maps once inside (just its own ids, setgroups denied),
        or must the helper outside do it (directly with CAP_SETUID/CAP_SETGID, or through
        newuidmap/newgidmap)?"""
        from .idmap import writer_for

        spec = self.spec
        setgroups = spec.setgroups
        if setgroups is None and spec.gid_map is not None and writer_for(
                "gid_map", spec.gid_map, setgroups="deny", in_ns=True, own=self.own[1]) == "direct":
            setgroups = "deny"
        for which, idmap, own in (("uid_map", spec.uid_map, self.own[0]),
                                  ("gid_map", spec.gid_map, self.own[1])):
            if idmap is not None and writer_for(which, idmap, setgroups=setgroups, in_ns=True,
                                                own=own) != "direct":
                self.maps_outside = True
        # from outside, "deny" is only needed where newgidmap/the kernel want it: write_maps decides
        self.setgroups = spec.setgroups if self.maps_outside else setgroups

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
    from .idmap import IdMap

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


def fork(kinds: object = (), *, uid_map: IdMap | Sequence[tuple[int, int, int]] | None = None,
         gid_map: IdMap | Sequence[tuple[int, int, int]] | None = None, setgroups: str | None = None,
         propagation: str = "private") -> int | Task:
    """Like :func:`os.fork`, with the child born in new namespaces of ``kinds``.

    The child is made by ``clone()`` with the CLONE_NEW* flags, so it is pid 1 of a new pid
    namespace at once.  It then waits on a pipe while the parent writes its id maps (directly, or
    through newuidmap/newgidmap — ``uid_map``/``gid_map`` imply a user namespace), and continues
    once they are in place: returns 0 in the child, a :class:`clonekit.task.Task` in the parent.
    If the maps cannot be written the child is killed and reaped and the error is raised.
    A new mount namespace gets ``propagation`` (default "private") in the child.  Time
    namespaces are not accepted here (their offsets must be set before the first process
    enters): use :func:`unshare` with ``monotonic``/``boottime`` in the child instead."""
    from ..process import clone
    from .idmap import IdMap, write_maps
    from .propagation import check_propagation

    chosen = set(parse_kinds(kinds))
    umap = None if uid_map is None else IdMap(uid_map)
    gmap = None if gid_map is None else IdMap(gid_map)
    if umap is not None or gmap is not None or setgroups is not None:
        chosen.add(Kind.USER)
    if Kind.TIME in chosen:
        raise UsageError("ns.fork() cannot make a time namespace (offsets must be set before any "
                         "process enters it): call ns.unshare('time', monotonic=...) in the child")
    check_propagation(propagation)
    order = parse_kinds(chosen)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    try:
        from .errors import unshare_error

        try:
            child = clone(kinds_to_flags(order))
        except OSError as exc:
            raise unshare_error(exc.errno or 0, order, step="clone") from None
    except BaseException:
        os.close(go_r)
        os.close(go_w)
        raise
    if child == 0:  # pragma: no cover - runs in the child (covered through the tests' pipes)
        os.close(go_w)
        ok = os.read(go_r, 1)
        os.close(go_r)
        if ok != b"1":
            os._exit(1)  # the parent failed to set us up and will raise
        if Kind.MNT in order and propagation != "unchanged":
            from .propagation import set_propagation

            set_propagation(propagation)
        return 0
    os.close(go_r)
    task: Task = child  # type: ignore[assignment]
    try:
        if Kind.USER in order and (umap is not None or gmap is not None or setgroups is not None):
            write_maps(task.pid, umap, gmap, setgroups=setgroups)
        os.write(go_w, b"1")
    except BaseException:
        os.close(go_w)
        task.kill()
        task.wait()
        task.close()
        raise
    os.close(go_w)
    return task


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
            try:
                os.setgroups([])
            except PermissionError:
                pass
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


def run(argv: Sequence[str] | None, spec: UnshareSpec) -> int:
    """Do what ``clonekit unshare`` does: make the namespaces, then run ``argv`` (default: the
    user's shell).  Without ``spec.fork`` the calling process becomes the program (no return on
    success).  With it, returns the child's exit status (128+n when killed by signal n)."""
    from ._child import default_command, exec_program, fork_exec, preload

    argv = list(argv) if argv else default_command()
    spec = _normalise(spec)
    if spec.fork:
        preload()
    if spec.keep_caps:
        import ctypes  # noqa: F401  (used after chroot/setuid, where the library may be unreachable)
    if Kind.PID in spec.persist and not spec.fork:
        raise UsageError("persisting a new pid namespace (--pid=FILE) needs --fork: the namespace "
                         "exists once its first process does")
    job = _Unsharer(spec)
    job.start()
    try:
        if not spec.fork:
            job.close()
            _child_setup(spec)
            exec_program(argv)
            raise AssertionError("unreachable")  # pragma: no cover
        return fork_exec(argv, lambda: _child_setup(spec), job.after_fork)
    finally:
        job.close()
