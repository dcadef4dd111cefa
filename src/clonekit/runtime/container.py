"""The container lifecycle: create, start, state, kill, delete, run, list.

``create`` makes the init with one clone3 carrying every new-namespace flag (and
CLONE_INTO_CGROUP where a cgroup2 group exists), writes its id maps, runs the runtime-side
hooks when the init says its mounts are ready, and leaves it blocked on the exec fifo.
``start`` opens the fifo, which releases the init into execve.  Every step that fails in the
container comes back with its step, path and errno; every failure of ``create`` removes what
was made (init, cgroup, state dir).
"""

from __future__ import annotations

import errno
import os
import select
import time
from _signal import SIGKILL, pidfd_send_signal  # `signal` would import enum

from .. import _bits
from .._record import record
from ..errors import KernelError, UsageError
from ..task import Task
from .errors import ContainerStateError, NoSuchContainer
from .hooks import HookFailed, run_hook, run_hooks
from .plan import Hook, IdMapping, NamespacePlan, Plan
from .state import FIFO, ContainerState, StateDir, process_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..cgroups import Cgroup
    from ..security.seccomp import Filter
    from .channel import Channel
    from .netdevices import MovedDevice

__all__ = ["CreateOptions", "create", "delete", "kill", "list_states", "pause", "pids", "resume", "start",
           "state"]

# the order namespaces given by path are tried in (_join_all may move some after "user")
_JOIN_ORDER = ("user", "mount", "uts", "ipc", "network", "pid", "cgroup", "time")


@record(frozen=True)
class CreateOptions:
    pid_file: str | None = None
    preserve_fds: int = 0
    listen_fds: int = 0        # systemd socket activation: fds 3 .. 3+N-1, before the preserved ones
    absent_fds: tuple[int, ...] = ()  # of those numbers, the ones the caller had not opened: skipped
    no_pivot: bool = False
    no_new_keyring: bool = False
    rootless: bool = False
    cgroups: bool = True       # --cgroup-manager disabled turns placement off
    console_fd: int = -1       # process.terminal: a connected socket for the pty master (console.py)


def create(states: StateDir, container_id: str, bundle: str, plan: Plan,
           opts: CreateOptions | None = None) -> Task:
    """Create the container; returns the init (our child) for callers that wait (``run``)."""
    opts = opts or CreateOptions()
    # no `process`: created all the same (the runtime-spec requires it only at `start`)
    terminal = plan.process is not None and plan.process.terminal
    if terminal != (opts.console_fd >= 0):
        raise UsageError("process.terminal is true but no console socket was given (CreateOptions."
                         "console_fd)" if terminal else "a console socket was given but "
                         "process.terminal is false (or there is no process): set it to true, or pass "
                         "no socket")
    if terminal:
        from . import console  # noqa: F401  (the init uses it after pivot_root: import it now)
    if not opts.cgroups and plan.resources is not None:
        raise UsageError(f"{plan.resources.where()}: cgroups are off (--cgroup-manager disabled), so "
                         "these limits cannot be applied; remove them or manage cgroups")
    path = states.create(container_id)
    cgroup: Cgroup | None = None
    task: Task | None = None
    try:
        with states.lock(container_id):
            st = ContainerState(id=container_id, bundle=os.path.abspath(bundle), rootfs=plan.root,
                                created=_now(), annotations=dict(plan.annotations),
                                owner=os.geteuid(), rootless=opts.rootless,
                                hooks={"poststart": [_hook_doc(h) for h in plan.hooks.poststart],
                                       "poststop": [_hook_doc(h) for h in plan.hooks.poststop]},
                                oci_version=plan.oci_version, no_process=plan.process is None)
            if plan.resources is not None:  # what `update` merges its changes into
                from .update import saved_form

                st.resources = saved_form(plan.resources)
            fifo = os.path.join(path, FIFO)
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # not umask's 0600: a user-namespaced init writes it as another uid
            if opts.cgroups:
                cgroup = _make_cgroup(plan, container_id, opts.rootless)
                st.cgroup = cgroup.to_state() if cgroup.enabled else {}
            # before the init exists: no process runs without them
            _apply_device_rules(plan, cgroup, opts.rootless)
            # saved as "creating" (pid 0) before the init exists: if this process is killed now,
            # `delete` still finds what to remove (the flock tells it the creator is gone)
            states.save(st)
            task = _make_init(plan, st, path, cgroup, opts)
            st.pid = task.pid
            st.pid_start = process_start_time(task.pid) or 0
            states.save(st)
            if opts.pid_file:
                _write_pid_file(opts.pid_file, task.pid)
        return task
    except BaseException:
        if task is not None:
            task.kill()
            task.wait()
            task.close()
        if cgroup is not None:
            cgroup.remove()
        states.remove(container_id)
        raise


def _make_init(plan: Plan, st: ContainerState, path: str, cgroup: Cgroup | None,
               opts: CreateOptions) -> Task:
    from . import init
    from .channel import Channel

    # compiled here, once, before anything is made: a filter libseccomp refuses fails `create`
    # with nothing to undo, and the init only has to install the program
    seccomp = _compile_seccomp(plan)
    ours, theirs = Channel.pair()
    fifo_fd = os.open(os.path.join(path, FIFO), os.O_PATH | os.O_CLOEXEC)
    user_ns = plan.namespace("user")
    new_user = user_ns is not None and user_ns.path is None
    cg = cgroup if cgroup is not None and cgroup.enabled else None
    # born in its cgroup2 group (CLONE_INTO_CGROUP): no migration, no window outside it
    v2_fd = cg.v2_dir_fd() if cg is not None else None
    # and it joins the v1 hierarchies (hybrid/legacy hosts) itself, first thing: a task that
    # moves itself skips the kernel's global threadgroup lock, whose first taker waits for an
    # RCU grace period (~13 ms here when the runtime wrote the init's pid)
    join_fds: list[int] = []
    task: Task | None = None
    moved_devices: list[MovedDevice] = []
    trees: tuple[int, ...] = ()
    devices: tuple[int, ...] = ()
    try:
        try:
            # bind sources the init could not reach or idmap itself: copies made here, inherited
            trees = _detach_mount_sources(plan, opts.rootless)
            devices = _detach_devices(plan, opts.rootless)
            if cg is not None:
                join_fds = cg.join_fds(v2=v2_fd is None)
            # A cgroup namespace is rooted where its creator stands when it is made: in the v1
            # hierarchies the init is not in its groups yet at the clone, so it unshares its cgroup
            # namespace itself once it has joined them (else it would see, and could enter, the
            # runtime's groups above its own)
            cgroupns = plan.namespace("cgroup")
            late_cgroupns = bool(join_fds) and cgroupns is not None and cgroupns.path is None
            init_opts = init.InitOptions(
                container_id=st.id, bundle=st.bundle, fifo_fd=fifo_fd,
                preserve_fds=opts.listen_fds + opts.preserve_fds, listen_fds=opts.listen_fds,
                absent_fds=opts.absent_fds,
                no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring, rootless=opts.rootless,
                new_user_ns=new_user, cgroup_fds=tuple(join_fds),
                cgroup_dirs=cg.dirs_by_mount if cg is not None else None, unshare_cgroupns=late_cgroupns,
                seccomp=seccomp, console_fd=opts.console_fd, mount_trees=trees,
                device_trees=devices,
            )
            with _time_offsets(plan):
                task = _clone_init(plan, v2_fd, lambda: init.run(plan, theirs, init_opts),
                                   without=_bits.NEWCGROUP if late_cgroupns else 0)
        finally:  # the init has its copies (or there is no init): ours go now
            made = (t for t in devices if t >= 0)  # detached mounts: the init holds its own
            for fd in (*join_fds, *(() if v2_fd is None else (v2_fd,)), *made):
                os.close(fd)
        theirs.close()
        os.close(fifo_fd)
        if new_user:
            _write_id_maps(plan, task.pid, opts.rootless)
        if plan.net_devices:  # the init's network namespace exists: move them in before it goes on
            _move_net_devices(plan, task, moved_devices)
        if trees:  # idmapped with the init's own user namespace, now mapped; the init attaches them
            from ..rootfs.sources import idmap_own

            idmap_own(plan.mounts, trees, f"/proc/{task.pid}/ns/user")
            for fd in trees:
                if fd >= 0:
                    os.close(fd)
            trees = ()
        ours.send("maps")
        runtime_hooks = plan.hooks.prestart or plan.hooks.create_runtime
        if not runtime_hooks:  # nothing to wait for: spare the init a wake-up
            ours.send("hooks-done", pid=task.pid)
        ours.expect("mounted", task_fd=task.fileno())
        if runtime_hooks:
            oci = st.oci(path, "creating") | {"pid": task.pid}
            run_hooks("prestart", plan.hooks.prestart, oci)
            run_hooks("createRuntime", plan.hooks.create_runtime, oci)
            ours.send("hooks-done", pid=task.pid)
        if seccomp is not None and seccomp.notify:
            _relay_listener(plan, st, path, task, ours)
        ours.expect("created", task_fd=task.fileno())
        return task
    except BaseException as exc:
        status = 0
        if moved_devices and task is not None:  # before the namespace dies with the init
            _move_net_devices_back(task, moved_devices)
        if task is not None:  # whatever failed, the init is ours to end and reap
            task.kill()
            status = task.wait()
            task.close()
        if isinstance(exc, KernelError):
            if status == -31 and plan.seccomp is not None:  # SIGSYS: its own filter killed it
                raise KernelError(exc.errno or 0, "the container's init was killed by SIGSYS: the "
                                  "seccomp filter (linux.seccomp) kills a syscall the init makes "
                                  "between installing it and execve (open, write, close, execve, "
                                  "the fifo wait); allow those", step="create container") from None
            raise _in_container(exc) from None
        raise
    finally:
        ours.close()
        for fd in trees:  # our copies, when create failed before the init got going
            if fd >= 0:
                os.close(fd)


def _move_net_devices(plan: Plan, task: Task, moved: list[MovedDevice]) -> None:
    from .netdevices import move_all

    fd = os.open(f"/proc/{task.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # our child: not reaped
    try:
        move_all(plan.net_devices, fd, moved)
    except OSError as exc:
        raise KernelError(exc.errno or 0, exc.strerror or str(exc), step="move linux.netDevices") from None
    finally:
        os.close(fd)


def _move_net_devices_back(task: Task, moved: list[MovedDevice]) -> None:
    from .netdevices import move_back

    try:
        fd = os.open(f"/proc/{task.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        move_back(moved, fd)
    finally:
        os.close(fd)


def _detach_mount_sources(plan: Plan, rootless: bool) -> tuple[int, ...]:
    """Detached copies of the bind sources (rootfs.sources): idmapped ones always, the others
    when the container has a user namespace whose root may not reach them (crun does the same)."""
    user = plan.namespace("user")
    if not any(m.idmap for m in plan.mounts) and (user is None or rootless or os.geteuid() != 0):
        return ()
    from ..rootfs.sources import detach_sources

    return detach_sources(plan.mounts, user_ns=user is not None,
                          container_maps=(plan.uid_mappings, plan.gid_mappings),
                          container_userns=user.path if user is not None else None,
                          privileged=not rootless and os.geteuid() == 0,
                          defer_own=user is not None and user.path is None)


def _detach_devices(plan: Plan, rootless: bool) -> tuple[int, ...]:
    """linux.devices in a user namespace, where the init cannot mknod: made here on a private
    tmpfs and bound in by the init, as crun does (rootfs.sources.detach_devices)."""
    if not plan.devices or plan.namespace("user") is None or rootless or os.geteuid() != 0:
        return ()
    from ..rootfs.devices import needs_dev_setup
    from ..rootfs.sources import detach_devices

    if not needs_dev_setup(plan):
        return ()
    return detach_devices(plan.devices, (plan.uid_mappings, plan.gid_mappings))


def _compile_seccomp(plan: Plan) -> Filter | None:
    if plan.seccomp is None:
        return None
    from ..security.seccomp import compile_filter, default_cache_dir

    # libseccomp takes ~27 ms for podman's default profile; a cached program ~0.3 ms
    return compile_filter(plan.seccomp, cache_dir=default_cache_dir())


def _relay_listener(plan: Plan, st: ContainerState, path: str, task: Task, chan: Channel) -> None:
    """The init's seccomp NOTIFY fd goes to the listener at linux.seccomp.listenerPath, with the
    container's state (runtime-spec: "the runtime MUST send the container process state")."""
    from .. import _native
    from ..security.seccomp import send_to_listener

    assert plan.seccomp is not None and plan.seccomp.listener_path is not None
    remote = int(chan.expect("seccomp-listener", task_fd=task.fileno())["fd"])  # type: ignore[call-overload]
    fd = _native.pidfd_getfd(task.fileno(), remote)
    try:
        chan.send("seccomp-listener-taken")
        state = st.oci(path, "creating") | {"pid": task.pid}
        send_to_listener(plan.seccomp.listener_path, fd, state, plan.seccomp.listener_metadata)
    finally:
        os.close(fd)


def _clone_init(plan: Plan, v2_fd: int | None, body: Callable[[], None], *, without: int = 0) -> Task:
    """clone3 the init with every new-namespace flag (but ``without``, which it makes itself);
    join existing ones first if asked."""
    from ..process import clone

    flags = plan.new_namespace_flags & ~without
    if plan.time_offsets:
        flags &= ~_bits.NEWTIME  # the time namespace was unshared by _time_offsets
    joins = sorted((ns for ns in plan.namespaces if ns.path), key=lambda ns: _JOIN_ORDER.index(ns.kind))
    cgroup = v2_fd
    if not joins:
        task = clone(flags, cgroup=cgroup)
        if task == 0:
            body()  # never returns
            os._exit(127)
        assert isinstance(task, Task)
        return task
    # An intermediate joins the namespaces, then makes the init as our sibling's... our child:
    # CLONE_PARENT makes the init a child of the runtime, which can then wait for it.
    r, w = os.pipe()
    helper = clone(0)
    if helper == 0:
        try:
            os.close(r)
            from .. import _native

            _native.prctl(4, 0)  # PR_SET_DUMPABLE: before touching container namespaces
            _join_all(joins)
            init = clone(flags | _bits.PARENT, exit_signal=0, cgroup=cgroup)
            if init == 0:
                os.close(w)
                body()
                os._exit(127)
            assert isinstance(init, Task)
            os.write(w, str(init.pid).encode())
            os._exit(0)
        except BaseException as exc:
            err = getattr(exc, "errno", 0) or 0
            os.write(w, f"!{err}:{getattr(exc, 'strerror', None) or exc}".encode())
            os._exit(1)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode()
    assert isinstance(helper, Task)
    with helper:
        helper.wait()
    if not answer or answer.startswith("!"):
        err, _, text = answer[1:].partition(":")
        raise KernelError(int(err or 0), text or "the intermediate process died",
                          step="join the container's namespaces")
    return Task.from_pid(int(answer))


def _join_all(joins: list[NamespacePlan]) -> None:
    """Join the namespaces given by path, in runc's order: every file is opened first (once in
    another user namespace, the /proc/PID/ns files of the host's processes refuse to open:
    EACCES); then each namespace but the user one is joined, those refused with EPERM are put
    off; then the user namespace; then the put-off ones.  So a namespace owned by the initial
    user namespace (a host network namespace held by `ip netns`) is joined while the runtime
    still has its capabilities there, and a rootless runtime joins the namespaces of its user
    namespace from inside it."""
    opened: list[tuple[NamespacePlan, int]] = []
    try:
        for ns in joins:
            assert ns.path is not None
            try:
                opened.append((ns, os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as exc:
                raise OSError(exc.errno, f"cannot open the {ns.kind} namespace {ns.path}: "
                                         f"{exc.strerror}") from None
        later = []
        for ns, fd in opened:
            if ns.kind == "user":
                continue
            try:
                _join(ns.kind, ns.path or "", ns.flag, fd)
            except OSError as exc:
                if exc.errno != errno.EPERM or not any(n.kind == "user" for n, _ in opened):
                    raise
                later.append((ns, fd))
        for ns, fd in opened:
            if ns.kind == "user":
                _join(ns.kind, ns.path or "", ns.flag, fd)
        for ns, fd in later:
            _join(ns.kind, ns.path or "", ns.flag, fd)
    finally:
        for _, fd in opened:
            os.close(fd)


def _join(kind: str, path: str, flag: int, fd: int) -> None:
    from .. import _native

    try:
        _native.setns(fd, flag)
    except OSError as exc:
        why = {
            errno.EINVAL: f"{path} is not a {kind} namespace",
            errno.EPERM: "joining needs CAP_SYS_ADMIN in the user namespace that owns it and in the "
                         "runtime's own; a rootless runtime can join namespaces only from inside a "
                         "user namespace of its own (list that user namespace with a path first)",
        }.get(exc.errno or 0, exc.strerror)
        raise OSError(exc.errno, f"cannot join the {kind} namespace {path}: {why}") from None


class _time_offsets:
    """With timeOffsets, the time namespace is unshared by the runtime itself: offsets can only
    be written before the first task enters it.  clone3 then puts the init there, and the
    runtime returns to its own time namespace for the hooks it still runs."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.saved = -1

    def __enter__(self) -> None:
        if not self.plan.time_offsets:
            return
        from .. import _native

        self.saved = os.open("/proc/self/ns/time", os.O_RDONLY | os.O_CLOEXEC)
        _native.unshare(_bits.NEWTIME)
        with open("/proc/self/timens_offsets", "w") as f:
            for clock, secs, nsecs in self.plan.time_offsets:
                f.write(f"{clock} {secs} {nsecs}\n")
                f.flush()

    def __exit__(self, *exc: object) -> None:
        if self.saved >= 0:
            from .. import _native

            _native.setns(self.saved, _bits.NEWTIME)
            os.close(self.saved)


def _write_id_maps(plan: Plan, pid: int, rootless: bool) -> None:
    from ..ns.idmap import IdMap, write_maps

    def idmap(maps: tuple[IdMapping, ...]) -> IdMap:
        return IdMap((m.container_id, m.host_id, m.size) for m in maps)

    # a map not given is not written: the runtime-spec makes both optional, and the kernel then
    # maps nothing (every id shows as the overflow id and none can be switched to)
    write_maps(pid, idmap(plan.uid_mappings) if plan.uid_mappings else None,
               idmap(plan.gid_mappings) if plan.gid_mappings else None,
               setgroups="deny" if rootless and os.geteuid() != 0 and plan.gid_mappings else None)


def _make_cgroup(plan: Plan, container_id: str, rootless: bool) -> Cgroup:
    from ..cgroups import Cgroup

    cgroup = Cgroup.create(plan.cgroups_path, container_id=container_id, rootless=rootless)
    if not cgroup.enabled:
        if plan.resources is not None:  # never a limit that silently does not apply
            raise UsageError(f"{plan.resources.where()}: the container gets no cgroup ({cgroup.reason}), "
                             "so these limits cannot be applied; remove them")
        from .notices import notice

        notice(cgroup.reason or "the container gets no cgroup")
        return cgroup
    if plan.resources is not None:
        from ..cgroups.resources import apply

        try:
            apply(cgroup, plan.resources)
        except BaseException:
            cgroup.remove()
            raise
    return cgroup


def _apply_device_rules(plan: Plan, cgroup: Cgroup | None, rootless: bool = False) -> None:
    """linux.resources.devices, then an allow of each linux.devices entry, then runc's default
    devices (security.devices), enforced in the container's group: by the v1 devices controller
    where the host has one (as runc: on a hybrid host its devices.list is the one runc writes),
    else by a BPF_CGROUP_DEVICE program on the group's cgroup2 directory.  Where neither can
    be done (no cgroup, no devices controller, or rootless, which may not load BPF programs),
    only allow rules and the deny-all that `runc spec` and Docker write pass unenforced: a
    rootless container cannot make device nodes and reaches only those its user may open.
    Any other deny is an error naming the rule: a deny that does not apply is worse than none."""
    from ..security import devices

    rules = devices.effective_rules(plan.device_rules, [(d.type, d.major, d.minor) for d in plan.devices])
    try:
        if cgroup is None or not cgroup.enabled:
            why = cgroup.reason if cgroup is not None else None
            return _device_rules_unenforced(plan, why or "cgroups are off (--cgroup-manager disabled)",
                                            quiet=rootless)
        v1 = cgroup.controller_dir("devices")
        if v1 is not None:
            return devices.apply_v1(v1, rules)
        fd = cgroup.v2_dir_fd()
        if fd is None:
            return _device_rules_unenforced(plan, "this host has no devices cgroup controller and the "
                                                  "container has no cgroup2 group")
        try:
            devices.attach_v2(fd, rules)
        except KernelError as exc:
            if exc.errno != errno.EPERM or not rootless:
                raise
            return _device_rules_unenforced(plan, f"rootless: {exc.strerror}", quiet=True)
        finally:
            os.close(fd)
    except devices.DeviceRuleError as exc:
        from .jsonfields import SpecError

        n = len(plan.device_rules)
        where = f"$.linux.resources.devices[{exc.index}]" if exc.index < n else "$.linux.resources.devices"
        tail = "" if exc.index < n else (" (the rule is an allow clonekit appends after yours: of a "
                                         "linux.devices entry, or one of runc's default devices)")
        raise SpecError(where, f"{exc}{tail}") from None


def _device_rules_unenforced(plan: Plan, why: str, *, quiet: bool = False) -> None:
    """Refuse a deny rule nobody would enforce; a notice for runc's deny-all (``quiet``:
    rootless, where the cgroup notice said it already and no device node can be made)."""
    from .jsonfields import SpecError

    for i, rule in enumerate(plan.device_rules):
        if not rule.allow and str(rule) != "a *:* rwm":
            raise SpecError(f"$.linux.resources.devices[{i}]",
                            f"this deny rule cannot be enforced: {why}; remove it (or run where the "
                            "container gets a devices cgroup or a cgroup2 group, as root)")
    if not quiet and any(not rule.allow for rule in plan.device_rules):
        from .notices import notice

        notice(f"device rules not enforced ({why}): the container's device access is limited only "
               "by its capabilities and the device nodes it can reach")


def _load_cgroup(st: ContainerState) -> Cgroup | None:
    if not st.cgroup:
        return None
    from ..cgroups import Cgroup

    return Cgroup.load(st.cgroup)


def _in_container(exc: KernelError) -> KernelError:
    step = f"create container: {exc.step}" if exc.step else "create container"
    return KernelError(exc.errno or 0, exc.strerror or str(exc), step=step, filename=exc.filename)


# -- start ------------------------------------------------------------------------------------
# runc's words, first in each refusal: clients (podman, containerd's shim) look for them
_CANNOT_START = {
    "running": "cannot start an already running container",
    "paused": "cannot start a container in the paused state",
    "stopped": "cannot start a container that has stopped",
}


def start(states: StateDir, container_id: str) -> None:
    with states.lock(container_id):
        st = states.load(container_id)
        path = states.path(container_id)
        status = st.status(path)
        if status != "created":
            raise ContainerStateError(
                f"{_CANNOT_START.get(status, 'cannot start a container that is ' + status)}: only a "
                f"created container can be started ({container_id!r} is {status}; `clonekit run` "
                "creates and starts)")
        if st.no_process:
            from .jsonfields import SpecError

            raise SpecError("$.process", f"missing, and the runtime-spec requires it when start is "
                            f"called: container {container_id!r} was created with no program to run; "
                            "give config.json a process and create the container again (`delete "
                            "--force` ends one that is still created)")
        _release(path, st)
        st.started = True
        states.save(st)
    oci = st.oci(path, "running")
    _run_warning_hooks("poststart", st, oci)


def _release(path: str, st: ContainerState) -> None:
    """Open the exec fifo: the init, blocked opening its other end, writes one byte and goes on.

    The init is checked (pidfd + start time) *before* the fifo is opened: opening it is what
    releases the init, and a quick program may be gone a moment later."""
    pidfd = st.open_init()
    if pidfd is None:
        raise ContainerStateError(f"container {st.id!r} has stopped before it was started")
    fd = -1
    try:
        fifo = os.path.join(path, FIFO)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = dict(poller.poll(1000))
            if events.get(fd, 0) & select.POLLIN and os.read(fd, 1) == b"0":
                os.unlink(fifo)
                _wait_for_exec(fd)
                return
            if pidfd in events and not events.get(fd, 0) & select.POLLIN:
                raise ContainerStateError(f"container {st.id!r} stopped while starting")
        raise ContainerStateError(f"container {st.id!r}: its init did not take the start signal in 30 s")
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(pidfd)


def _wait_for_exec(fd: int) -> None:
    """The init holds its end of the fifo until execve (or death) closes it: wait for EOF.
    (No deadline of our own: the startContainer hooks in between have theirs.)"""
    os.set_blocking(fd, True)
    while os.read(fd, 1):
        pass


# -- state, kill, delete, list ------------------------------------------------------------------
def state(states: StateDir, container_id: str) -> dict[str, object]:
    st = states.load(container_id)
    return st.oci(states.path(container_id))


def list_states(states: StateDir) -> list[dict[str, object]]:
    out = []
    for cid in states.ids():
        try:
            out.append(state(states, cid))
        except Exception:
            continue
    return out


def pids(states: StateDir, container_id: str) -> list[int]:
    """The container's processes: its cgroup's members, else the init and its descendants."""
    st = states.load(container_id)
    if not st.init_alive():
        return []
    cgroup = _load_cgroup(st)
    if cgroup is not None:
        return sorted(cgroup.pids())
    found, todo = [], [st.pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return sorted(found)


def kill(states: StateDir, container_id: str, sig: int, *, all_processes: bool = False) -> None:
    """Signal the init (or, ``all_processes``, every process of the group), as runc does: a
    stopped container is refused with "container not running" (containerd's shim reads that as
    "already finished"), but ``--all`` of one is not an error; a paused container gets the
    signal when it is thawed, which SIGKILL and ``--all`` do (the v1 freezer holds even a
    killed task; runc's ``--all`` thaws after signalling)."""
    with states.lock(container_id):
        st = states.load(container_id)
        status = st.status(states.path(container_id))
        cgroup = _load_cgroup(st) if all_processes or status == "paused" else None
        if all_processes and cgroup is not None:
            cgroup.signal_all(sig)  # a stopped container's group may still hold processes
            if status == "paused":
                cgroup.thaw()
            return
        if all_processes and status == "stopped":
            return
        if status not in ("created", "running", "paused"):
            raise ContainerStateError(f"container not running: {container_id!r} is {status}, there is "
                                      f"nothing to signal (`clonekit delete {container_id}` removes it)")
        _signal_init(st, sig)
        if status == "paused" and sig == SIGKILL and cgroup is not None:
            cgroup.thaw()


def pause(states: StateDir, container_id: str) -> None:
    """Freeze every process of the container (runc's `pause`; created or running only)."""
    with states.lock(container_id):
        st = states.load(container_id)
        status = st.status(states.path(container_id))
        if status not in ("created", "running"):
            raise ContainerStateError(f"container not running: {container_id!r} is {status}; only a "
                                      "created or running container can be paused")
        _freezable(st, "pause").freeze()


def resume(states: StateDir, container_id: str) -> None:
    """Thaw a paused container (runc's `resume`)."""
    with states.lock(container_id):
        st = states.load(container_id)
        status = st.status(states.path(container_id))
        if status != "paused":
            raise ContainerStateError(f"container not paused: {container_id!r} is {status}; "
                                      f"`clonekit pause {container_id}` pauses it")
        _freezable(st, "resume").thaw()


def _freezable(st: ContainerState, verb: str) -> Cgroup:
    cgroup = _load_cgroup(st)
    if cgroup is None:
        raise ContainerStateError(f"cannot {verb} container {st.id!r}: it has no cgroup (it was created "
                                  "rootless without a delegated cgroup2 group, or with --cgroup-manager "
                                  "disabled), and the freezer works on cgroups; recreate it with one")
    return cgroup


def _signal_init(st: ContainerState, sig: int) -> None:
    """Signal the init through a pidfd, after checking the pidfd's process is still ours."""
    pidfd = st.open_init()
    if pidfd is None:
        return
    try:
        pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def delete(states: StateDir, container_id: str, *, force: bool = False) -> None:
    """Remove a stopped or created container; ``force``: a running or paused one too.  With
    ``force`` a missing container is not an error (runc's answer, which podman and containerd's
    shim rely on when they clean up)."""
    try:
        lock = states.lock(container_id)  # held by `create` while it works: ours means it is done
    except NoSuchContainer:
        if force:
            return
        raise
    with lock:
        try:
            st = states.load(container_id)
        except NoSuchContainer:
            if not states.exists(container_id):
                if force:
                    return
                raise
            states.remove(container_id)  # a create killed before it wrote anything
            return
        path = states.path(container_id)
        status = st.status(path)
        if status in ("running", "paused") and not force:
            raise ContainerStateError(f"cannot delete container {container_id} that is not stopped: "
                                      f"{status}; stop it (`clonekit kill`), or use --force")
        cgroup = _load_cgroup(st)
        if status in ("created", "running", "paused"):
            if cgroup is not None and force:
                cgroup.signal_all(SIGKILL)  # paused: killed while frozen, so nothing forks meanwhile
            _signal_init(st, SIGKILL)
        if cgroup is not None and cgroup.frozen():
            cgroup.thaw()  # a frozen task dies only once thawed; and no group is left frozen
        if status in ("created", "running", "paused"):
            _wait_gone(st)
        if cgroup is not None:
            cgroup.remove()
        oci = st.oci(path, "stopped")
        states.remove(container_id)
    _run_warning_hooks("poststop", st, oci)


def _wait_gone(st: ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while st.init_alive():
        if time.monotonic() > deadline:
            raise KernelError(errno.EBUSY, f"container {st.id!r}: its init (pid {st.pid}) did not "
                              "die after SIGKILL", step="delete")
        time.sleep(0.002)


def _run_warning_hooks(kind: str, st: ContainerState, oci: dict[str, object]) -> None:
    """poststart and poststop failures are warnings (runtime-spec): the lifecycle goes on."""
    for index, h in enumerate(st.hooks.get(kind, [])):
        env = h.get("env")
        hook = Hook(path=str(h["path"]), args=tuple(_strings(h.get("args"))),
                    env=None if env is None else tuple(_strings(env)), timeout=_seconds(h.get("timeout")))
        try:
            run_hook(f"{kind}[{index}]", hook, oci)
        except HookFailed as exc:
            from .notices import notice

            notice(str(exc))  # stderr, or --log: under conmon and the shim stderr is the container's


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _hook_doc(h: Hook) -> dict[str, object]:
    return {"path": h.path, "args": list(h.args), "env": None if h.env is None else list(h.env),
            "timeout": h.timeout}


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _now() -> str:
    """RFC 3339 in UTC with nanoseconds, as runc writes `created` (datetime costs an import)."""
    ns = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    return f"{stamp}.{ns % 1_000_000_000:09d}Z"
