"""``Sandbox``: run a command in a fresh, locked-down container, many times a second.

Everything that can be shared is prepared once, when the Sandbox is made: the options checked,
the seccomp program compiled (and cached on disk), the cgroup pool made, and the child's whole
program -- mount tree, id maps, confinement -- laid out as a list of raw syscalls
(:mod:`.ops`).  A run copies that list, puts its own pipes (and cgroup) in, and makes one
``clone3`` (``_native.sandbox_spawn``): the child runs the list and execs.  No interpreter and
no runtime binary start per run.

Each run gets new mount, PID, IPC, UTS and cgroup namespaces (and a network namespace unless
``network="host"``; a user namespace when the caller is not root).  The command is pid 1 of its
PID namespace: when it ends, the kernel ends everything it started.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import weakref

from .. import _bits, _native
from . import prebuilt
from .errors import SandboxError, SandboxUsageError
from .groups import GroupPool, Limits
from .netns import SpareNetns
from .nr import (
    AF_INET,
    F_SETFD,
    IFF_LOOPBACK,
    IFF_RUNNING,
    IFF_UP,
    NR,
    O_CLOEXEC,
    O_WRONLY,
    SIOCSIFFLAGS,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
)
from .ops import Ops
from .options import NETWORKS, Bind, Tmpfs, TreeOptions, host_entries, parse_size
from .result import Result, collect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ..security.rlimits import Rlimit
    from ..security.seccomp import Filter, Seccomp

    BindLike = str | tuple[str, str] | tuple[str, str, str] | Bind

__all__ = ["DEFAULT_PATH", "Sandbox"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534
# NEWNET and NEWUSER as asked; the cgroup namespace is made by the child once it is in its
# group, so that the group is its root
_NAMESPACES = _bits.NEWNS | _bits.NEWUTS | _bits.NEWIPC | _bits.NEWPID
CLONE_NEWNET, CLONE_NEWUSER, CLONE_INTO_CGROUP = _bits.NEWNET, _bits.NEWUSER, _bits.INTO_CGROUP
_SPARE_NETNS = 2  # network namespaces made ahead per Sandbox
_DEFAULT = object()  # "the Sandbox's setting" for run()'s timeout, "the default filter" for seccomp
_compiled: dict[Seccomp, Filter] = {}
_sandboxes: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def _forget_runs_after_fork() -> None:
    """In a fork's child the parent's runs in flight are not running: close() must not wait
    for them.  (The groups and spare network namespaces forget the parent's in their modules.)"""
    for sandbox in list(_sandboxes):
        sandbox._idle = threading.Condition()
        sandbox._in_flight = 0


os.register_at_fork(after_in_child=_forget_runs_after_fork)


class Sandbox:
    """A reusable sandbox configuration; :meth:`run` starts a fresh container from it.

    Filesystem: by default a read-only view of the host's /usr, /bin, /lib*, /etc on a tmpfs
    root; ``rootfs=DIR`` binds DIR read-only as ``/`` instead; ``image=`` unpacks an OCI image
    (``clonekit.images``) and puts a writable overlay, discarded after the run, over it.  Every
    run gets a fresh /tmp (``tmp_size``), /proc, /dev/shm and a minimal /dev.  ``binds``:
    ``"SRC:DST[:ro]"`` or ``(src, dst[, "ro"])`` read-write unless ``:ro``; ``ro_binds``: read-only;
    ``tmpfs``: paths, or ``{path: size}``.

    Process: ``env`` (added to PATH/HOME defaults or the image's), ``cwd`` (default /tmp, or
    the image's), ``uid``/``gid`` (default: nobody when the caller is root, so root-only host
    files stay closed; the caller's own ids, seen as 0, when it is not), ``hostname``,
    ``rlimits`` (default: no core dumps).  ``network``: ``"none"`` (an empty network
    namespace), ``"loopback"`` (with ``lo`` up), ``"host"``.

    Confinement: every capability dropped (bounding set included), no_new_privs, ``seccomp``
    (default: :data:`clonekit.sandbox.profile.DEFAULT`, container engines' default set without
    ptrace, mounts and new namespaces; a ``security.seccomp.Seccomp`` for another; ``None`` for
    none).  Limits (cgroups, as root): ``memory`` ("256m" or bytes), ``pids``, ``cpus``
    (fractions of a CPU); ``timeout`` seconds and ``output_limit`` bytes per stream.  Rootless
    (no cgroup is delegated on a hybrid host), ``pids`` and ``memory`` become RLIMIT_NPROC and
    RLIMIT_AS and ``cpus`` is not applied, said in one notice (also in ``notices``).

    Many threads may call :meth:`run` at once; a process forked after the Sandbox was made runs
    in network namespaces and cgroups of its own (the parent's spares and groups stay the
    parent's).  :meth:`close` waits for the runs in flight.  Use it as a context manager (or call
    :meth:`close`): that removes its cgroups.  Groups of a caller killed before that are removed
    by the next Sandbox made with the same ``cgroup_top``.
    """

    def __init__(self, *, rootfs: str | os.PathLike[str] | None = None, image: str | None = None,
                 binds: Iterable[BindLike] = (), ro_binds: Iterable[BindLike] = (),
                 tmpfs: Iterable[str] | Mapping[str, int | str] = (),
                 env: Mapping[str, str] | None = None, cwd: str | None = None,
                 hostname: str = "sandbox", network: str = "none", memory: int | str | None = None,
                 pids: int | None = None, cpus: float | None = None, timeout: float | None = None,
                 output_limit: int | str | None = None, uid: int | None = None, gid: int | None = None,
                 seccomp: object = _DEFAULT, rlimits: Iterable[Rlimit] | None = None,
                 tmp_size: int | str = "64m", cgroup_top: str = "/clonekit-sandbox") -> None:
        # what close() releases, set first: a failure below closes what was made before it
        self._closed = False
        self._in_flight = 0  # runs between their closed-check and their end: close() waits for them
        self._idle = threading.Condition()
        _sandboxes.add(self)
        self._pool: GroupPool | None = None
        self._netns: SpareNetns | None = None
        self._prebuilt: prebuilt.Prebuilt | None = None
        self._devnull = -1
        try:
            self._prepare(rootfs, image, binds, ro_binds, tmpfs, env, cwd, hostname, network, memory, pids,
                          cpus, timeout, output_limit, uid, gid, seccomp, rlimits, tmp_size, cgroup_top)
        except BaseException:
            self.close()
            raise

    def _prepare(self, rootfs: str | os.PathLike[str] | None, image: str | None, binds: Iterable[BindLike],
                 ro_binds: Iterable[BindLike], tmpfs: Iterable[str] | Mapping[str, int | str],
                 env: Mapping[str, str] | None, cwd: str | None, hostname: str, network: str,
                 memory: int | str | None, pids: int | None, cpus: float | None, timeout: float | None,
                 output_limit: int | str | None, uid: int | None, gid: int | None, seccomp: object,
                 rlimits: Iterable[Rlimit] | None, tmp_size: int | str, cgroup_top: str) -> None:
        self.rootless = os.geteuid() != 0
        self.notices: list[str] = []
        self.timeout = timeout
        self.output_limit = parse_size(output_limit, "output_limit")
        if network not in NETWORKS:
            raise SandboxUsageError(f"network={network!r}: one of {', '.join(NETWORKS)}")
        self.image = None
        lower = None
        image_env: list[str] = []
        default_cwd = "/tmp"
        if image is not None:
            if rootfs is not None:
                raise SandboxUsageError("give rootfs= or image=, not both")
            from ..images import unpack  # the images floor: only when an image is asked for

            self.image = unpack(image)
            lower = _checked_dir(str(self.image.rootfs), "the image's rootfs")
            if any(c in lower for c in ",:\\"):
                raise SandboxUsageError(f"the image's rootfs path {lower!r} has a character overlayfs "
                                        "options cannot carry (, : \\); unpack it into another cache_dir")
            config = self.image.config
            image_env = list(config.env or [])
            default_cwd = config.working_dir or "/"
        elif rootfs is not None:
            rootfs = _checked_dir(os.fspath(rootfs), "rootfs")
            default_cwd = "/"
        self.argv_default: list[str] = []
        if self.image is not None:
            self.argv_default = list(self.image.config.entrypoint or []) + list(self.image.config.cmd or [])
        self.env = self._environment(image_env, env)
        self.cwd = cwd or default_cwd
        if not self.cwd.startswith("/"):
            raise SandboxUsageError(f"cwd {self.cwd!r} must be an absolute path in the sandbox")
        uid, gid = self._ids(uid, gid)
        self.uid, self.gid = uid, gid
        tree = TreeOptions(
            rootfs=None if rootfs is None else str(rootfs), lower=lower,
            host_entries=host_entries() if rootfs is None and lower is None else (),
            binds=tuple(_binds(binds, readonly=False)) + tuple(_binds(ro_binds, readonly=True)),
            tmpfs=_tmpfs(tmpfs), tmp_size=parse_size(tmp_size, "tmp_size") or 0,
            rootless=self.rootless, protect_proc=not self.rootless and uid == 0)
        if tree.rootfs is not None:
            _check_mount_points(tree)
        limits = Limits(parse_size(memory, "memory"), pids, _positive(cpus, "cpus"))
        if pids is not None and pids <= 0:
            raise SandboxUsageError(f"pids must be positive, not {pids}")
        self._substitutes: tuple[Rlimit, ...] = ()
        if limits and self.rootless:
            self._substitutes = self._rootless_limits(limits)
        elif limits:
            self._pool = GroupPool(cgroup_top, limits)
        self._filter = _filter(seccomp)
        self._flags = _NAMESPACES | (CLONE_NEWNET if network != "host" else 0)
        self._flags |= CLONE_NEWUSER if self.rootless else 0
        # as root, each run's network namespace is made ahead, while the run before executes
        # (making one is ~0.6 ms of kernel work): a run takes a spare one when there is one
        self._netns = SpareNetns(_SPARE_NETNS) if network != "host" and not self.rootless else None
        self._devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        self._prebuilt = prebuilt.build(tree)
        self._ops = self._program(tree, hostname, network, tuple(rlimits) if rlimits is not None else None)

    # -- running --------------------------------------------------------------------------------

    def run(self, argv: Sequence[str | bytes] | None = None, *, input: bytes | None = b"",
            timeout: float | object | None = _DEFAULT, stdin: int | None = None,
            stdout: int | None = None, stderr: int | None = None) -> Result:
        """Run ``argv`` (default: the image's entrypoint + cmd) in a fresh sandbox and wait.

        ``input`` goes to its stdin (empty: /dev/null); ``stdin``/``stdout``/``stderr`` may
        name fds of the caller to use instead of pipes (that output is then not captured).
        Raises :class:`SandboxError` if the sandbox could not be made or the command not
        executed (errno ENOENT: not found in the sandbox)."""
        with self._idle:
            if self._closed:
                raise SandboxUsageError("this Sandbox is closed")
            self._in_flight += 1
        try:
            return self._run(argv, input, timeout, stdin, stdout, stderr)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _run(self, argv: Sequence[str | bytes] | None, input: bytes | None, timeout: float | object | None,
             stdin: int | None, stdout: int | None, stderr: int | None) -> Result:
        args = [os.fsencode(a) for a in (argv if argv else self.argv_default)]
        if not args:
            raise SandboxUsageError("run() needs a command (argv), and this sandbox has no image "
                                    "whose entrypoint or cmd could stand in")
        limit = self.timeout if timeout is _DEFAULT else timeout
        assert limit is None or isinstance(limit, (int, float))
        ops = list(self._ops.ops)
        slots = self._ops.slots
        mine: list[int] = []   # the parent's ends, and child ends to close after the clone
        theirs: list[int] = []
        try:
            in_w = out_r = err_r = None
            if stdin is None and input:
                in_r, in_w = os.pipe2(os.O_CLOEXEC)
                mine.append(in_w)
                theirs.append(in_r)
                stdin = in_r
            if stdout is None:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                mine.append(out_r)
                theirs.append(out_w)
                stdout = out_w
            if stderr is None:
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                mine.append(err_r)
                theirs.append(err_w)
                stderr = err_w
            for n, fd in enumerate((self._devnull if stdin is None else stdin, stdout, stderr)):
                if fd < 3 and fd != n and fd in (stdout, stderr)[n:]:
                    raise SandboxUsageError("stdin/stdout/stderr: an fd below 3 may only stand for "
                                            "itself (e.g. stdout=1), not for another stream")
                # the same fd: only inherited as it is (dup3 refuses oldfd == newfd)
                ops[slots[f"stdio{n}"]] = ((NR["fcntl"], 0, n, F_SETFD, 0) if fd == n else
                                           (NR["dup3"], 0, fd, n, 0))
            return self._spawn_and_wait(args, ops, in_w, out_r, err_r, input or b"", limit, mine, theirs)
        finally:
            for fd in mine + theirs:
                try:
                    os.close(fd)
                except OSError:
                    pass

    async def run_async(self, argv: Sequence[str | bytes] | None = None, *, input: bytes | None = b"",
                        timeout: float | object | None = _DEFAULT) -> Result:
        """:meth:`run` for asyncio: the run waits in the loop's default executor, so the loop
        keeps going (each run holds a thread while it lasts)."""
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.run(argv, input=input, timeout=timeout))

    def _spawn_and_wait(self, args: list[bytes], ops: list[tuple[object, ...]], in_w: int | None,
                        out_r: int | None, err_r: int | None, data: bytes, limit: float | None,
                        mine: list[int], theirs: list[int]) -> Result:
        group = self._pool.acquire() if self._pool is not None else None
        flags, cgroup_fd = self._flags, -1
        netns = self._netns.take() if self._netns is not None else -1
        if netns >= 0:
            flags &= ~CLONE_NEWNET
            ops[self._ops.slots["netns"]] = (NR["setns"], 0, netns, CLONE_NEWNET)
        try:
            oom_before = 0
            if group is not None:
                for n, fd in enumerate(group.join_fds):
                    ops[self._ops.slots[f"cgroup{n}"]] = (NR["write"], 0, fd, b"0", 1)
                if group.v2_fd >= 0:
                    flags |= CLONE_INTO_CGROUP
                    cgroup_fd = group.v2_fd
                oom_before = group.reset()
            started = time.monotonic()
            pid = pidfd = -1
            reaped = False
            try:  # from the clone on: whatever is raised (a signal's handler too), the child goes
                pid, pidfd, err, step = _native.sandbox_spawn(flags, ops, self._exec_paths(args[0]), args,
                                                              self._envp, cgroup_fd)
                for fd in theirs:
                    os.close(fd)
                theirs.clear()
                if netns >= 0:
                    os.close(netns)
                    netns = -1
                if err:  # the child that failed is reaped already (pid and pidfd are -1)
                    raise self._child_error(err, step, args[0])
                deadline = started + limit if limit is not None else None
                mine.clear()  # collect() closes them
                out, errout, timed_out, truncated = collect(pidfd, in_w, out_r, err_r, data, deadline,
                                                            self.output_limit)
                _, status, usage = os.wait4(pid, 0)
                reaped = True
                wall = time.monotonic() - started
            finally:
                if pidfd >= 0:
                    if not reaped:
                        _kill_and_reap(pidfd, pid)
                    os.close(pidfd)
            signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = -signal if signal is not None else os.WEXITSTATUS(status)
            cpu = usage.ru_utime + usage.ru_stime
            peak: int | None = usage.ru_maxrss * 1024
            oom = False
            if group is not None:
                cpu = group.cpu_time() or cpu
                peak = group.peak_memory() or peak
                oom = group.oom_kills() > oom_before
            return Result(stdout=out, stderr=errout, returncode=code, signal=signal, timed_out=timed_out,
                          oom_killed=oom, output_truncated=truncated, wall_time=wall, cpu_time=cpu,
                          peak_memory=peak)
        finally:
            if netns >= 0:
                os.close(netns)
            if group is not None:
                self._pool.release(group)  # type: ignore[union-attr]

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the cgroups and close the fds; the Sandbox runs nothing after.  Runs in flight
        in other threads end first (close() waits for them): their children still use the
        groups' and the tree's fds, whose numbers would otherwise be reused under them."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            while self._in_flight:
                self._idle.wait()
        if self._pool is not None:
            self._pool.close()
        if self._netns is not None:
            self._netns.close()
        if self._prebuilt is not None:
            self._prebuilt.close()
        if self._devnull >= 0:
            os.close(self._devnull)
            self._devnull = -1

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            self.close()

    # -- preparing ------------------------------------------------------------------------------

    def _program(self, tree: TreeOptions, hostname: str, network: str,
                 rlimits: tuple[Rlimit, ...] | None) -> Ops:
        from ..security.rlimits import Rlimit
        from . import confine
        from . import tree as mount_tree

        ops = Ops()
        confine.parent_death(ops)
        if self._pool is not None:
            for n in range(self._pool.join_count):
                ops.call("join the cgroup", "write", -1, b"0", 1, slot=f"cgroup{n}")
        if self.rootless:
            ops.write_file("deny setgroups (needed to map the gid)", "/proc/self/setgroups", b"deny",
                           O_WRONLY | O_CLOEXEC)
            ops.write_file("write the uid map", "/proc/self/uid_map",
                           f"{self.uid} {os.geteuid()} 1".encode(), O_WRONLY | O_CLOEXEC)
            ops.write_file("write the gid map", "/proc/self/gid_map",
                           f"{self.gid} {os.getegid()} 1".encode(), O_WRONLY | O_CLOEXEC)
        ops.call("make the cgroup namespace", "unshare", _bits.NEWCGROUP)
        ops.call("enter the run's network namespace", "getpid", slot="netns")  # a run's setns, or nothing
        for n in range(3):
            ops.call(f"set up fd {n}", "dup3", -1, n, 0, slot=f"stdio{n}")
        ops.call("setsid", "setsid")
        if self._prebuilt is not None:
            mount_tree.build_prebuilt(ops, tree, self._prebuilt)
        else:
            mount_tree.build(ops, tree)
        name = hostname.encode()
        if name:
            ops.call(f"set the hostname {hostname}", "sethostname", name, len(name))
        if network == "loopback":
            sock = ops.call("open a socket for lo", "socket", AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
            ifreq = struct.pack("=16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
            ops.call("bring lo up", "ioctl", sock, SIOCSIFFLAGS, ifreq)
            ops.call("close the socket for lo", "close", sock)
        mount_tree.enter(ops, prebuilt=self._prebuilt is not None)
        limits = rlimits if rlimits is not None else (Rlimit(type="RLIMIT_CORE", soft=0, hard=0),)
        limits += self._substitutes
        confine.build(ops, set_ids=None if self.rootless else (self.uid, self.gid), limits=limits,
                      cwd=self.cwd, seccomp=self._filter)
        self._envp = [f"{k}={v}".encode() for k, v in self.env.items()]
        return ops

    def _rootless_limits(self, limits: Limits) -> tuple[Rlimit, ...]:
        """Without a cgroup of its own (none is delegated to an unprivileged caller on this kind
        of host) the nearest rlimits stand in, and one notice says so."""
        from ..security.rlimits import Rlimit

        out = []
        said = []
        if limits.pids is not None:
            out.append(Rlimit(type="RLIMIT_NPROC", soft=int(limits.pids), hard=int(limits.pids)))
            said.append("pids as RLIMIT_NPROC (it counts every process of your user)")
        if limits.memory is not None:
            out.append(Rlimit(type="RLIMIT_AS", soft=limits.memory, hard=limits.memory))
            said.append("memory as RLIMIT_AS per process (allocations fail; no OOM kill, no peak)")
        if limits.cpus is not None:
            said.append("cpus not at all")
        self._notice("rootless: no cgroup is delegated to this user, so the limits are applied as "
                     f"follows: {'; '.join(said)}. Run as root for cgroup limits.")
        return tuple(out)

    def _environment(self, image_env: list[str], env: Mapping[str, str] | None) -> dict[str, str]:
        out = {"PATH": DEFAULT_PATH, "HOME": "/tmp"} if not image_env else {}
        for item in image_env:
            key, _, value = item.partition("=")
            out[key] = value
        out.setdefault("PATH", DEFAULT_PATH)
        out.update(env or {})
        return out

    def _ids(self, uid: int | None, gid: int | None) -> tuple[int, int]:
        if uid is None and self.image is not None:  # the image's User (none: its root)
            from ..images import resolve_user

            image_uid, image_gid, _ = resolve_user(self.image.rootfs, self.image.config.user)
            uid, gid = image_uid, image_gid if gid is None else gid
        if uid is None:
            uid = 0 if self.rootless else NOBODY
        if gid is None:
            gid = uid
        for value, what in ((uid, "uid"), (gid, "gid")):
            if not 0 <= value < 2**32 - 1:
                raise SandboxUsageError(f"{what} {value} is not a valid id")
        return uid, gid

    def _exec_paths(self, program: bytes) -> list[bytes]:
        if b"/" in program:
            return [program]
        path = self.env.get("PATH", DEFAULT_PATH)
        return [os.path.join(os.fsencode(d or "."), program) for d in path.split(":")]

    def _child_error(self, err: int, step: int, program: bytes) -> SandboxError:
        name = os.fsdecode(program)
        if step >= len(self._ops.steps):
            hint = ""
            if err == 2:
                hint = f": no {name} in the sandbox (PATH={self.env.get('PATH', '')})"
            elif err == 13:
                hint = f": {name} is not executable by uid {self.uid} in the sandbox"
            return SandboxError(err, os.strerror(err) + hint, step=f"exec {name}")
        what = self._ops.steps[step]
        hint = ""
        if err == 1 and self.rootless:
            hint = ": the kernel refused it in the sandbox's user namespace"
        elif err == 30:
            hint = ": the path is on a read-only part of the sandbox (the rootfs or a read-only bind)"
        elif err == 2:
            hint = ": a path it needs is missing (a mount point in a read-only rootfs, or a bind source)"
        return SandboxError(err, os.strerror(err) + hint, step=what)

    def _notice(self, message: str) -> None:
        from ..runtime.notices import notice

        self.notices.append(message)
        notice(message)


# -- helpers ------------------------------------------------------------------------------------

def _filter(seccomp: object) -> Filter | None:
    from ..security.seccomp import Seccomp, compile_filter, default_cache_dir

    if seccomp is None:
        return None
    if seccomp is _DEFAULT:
        from .profile import DEFAULT

        seccomp = DEFAULT
    if not isinstance(seccomp, Seccomp):
        raise SandboxUsageError("seccomp= takes a clonekit.security.seccomp.Seccomp, or None for no filter")
    if seccomp.notifies:
        raise SandboxUsageError("seccomp: NOTIFY rules need an agent; the sandbox has none")
    got = _compiled.get(seccomp)
    if got is None:
        try:
            got = compile_filter(seccomp, cache_dir=default_cache_dir())
        except OSError:  # an unwritable cache: compile without it
            got = compile_filter(seccomp)
        _compiled[seccomp] = got
    return got


def _kill_and_reap(pidfd: int, pid: int) -> None:
    import signal

    try:
        signal.pidfd_send_signal(pidfd, 9)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _checked_dir(path: str, what: str) -> str:
    full = os.path.realpath(path)
    if not os.path.isdir(full):
        raise SandboxUsageError(f"{what} {path!r} is not a directory")
    return full


def _binds(items: Iterable[BindLike], *, readonly: bool) -> Iterable[Bind]:
    for item in items:
        if isinstance(item, Bind):
            yield item
            continue
        parts = item.split(":") if isinstance(item, str) else list(item)
        if len(parts) == 1:
            parts.append(parts[0])
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise SandboxUsageError(f"bind {item!r}: SRC[:DST[:ro|rw]]")
        source, target = os.path.realpath(parts[0]), parts[1]
        if not os.path.exists(source):
            raise SandboxUsageError(f"bind {item!r}: the source {parts[0]} does not exist")
        if not target.startswith("/") or ".." in target.split("/"):
            raise SandboxUsageError(f"bind {item!r}: the target must be an absolute path without ..")
        ro = readonly if len(parts) == 2 else parts[2] == "ro"
        yield Bind(source=source, target=os.path.normpath(target), readonly=ro,
                   is_dir=os.path.isdir(source))


def _tmpfs(items: Iterable[str] | Mapping[str, int | str]) -> tuple[Tmpfs, ...]:
    pairs = items.items() if hasattr(items, "items") else ((p, "64m") for p in items)
    out = []
    for path, size in pairs:
        path, _, given = path.partition(":") if ":" in path else (path, "", "")
        if not path.startswith("/") or ".." in path.split("/"):
            raise SandboxUsageError(f"tmpfs {path!r}: an absolute path without ..")
        out.append(Tmpfs(target=os.path.normpath(path), size=parse_size(given or size, f"tmpfs {path}") or 0))
    return tuple(out)


def _positive(value: float | None, what: str) -> float | None:
    if value is not None and value <= 0:
        raise SandboxUsageError(f"{what} must be positive, not {value}")
    return value


def _check_mount_points(tree: TreeOptions) -> None:
    """A read-only rootfs gets no new directories: every mount point must be there already."""
    from .tree import fresh_paths, under

    assert tree.rootfs is not None
    fresh = fresh_paths(tree)
    wanted = ["/proc", "/dev", "/tmp"]
    wanted += [t.target for t in tree.tmpfs if not under(t.target, fresh, strict=True)]
    wanted += [b.target for b in tree.binds if not under(b.target, fresh)]
    missing = [p for p in wanted if not os.path.lexists(tree.rootfs + p)]
    if missing:
        raise SandboxUsageError(f"the rootfs {tree.rootfs} has no {', '.join(missing)}: the sandbox mounts "
                                "there and never writes into a rootfs; create them in it")
