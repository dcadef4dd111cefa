"""The container's init: what runs inside the new namespaces before the user's program.

It is a Python process made by :func:`clonekit.clone` with the container's namespace flags.
It follows the runtime's lead over the channel, prepares the filesystem, waits on the exec
fifo until ``start``, then becomes the user's program with execve.  It never returns into
the runtime's code: every path ends in execve or ``os._exit``.

Everything it runs is imported here, before the clone: once inside (a user namespace whose root
cannot read the interpreter's files, or after pivot_root) an import may find nothing.
"""

from __future__ import annotations

import os
import sys
from _signal import SIGKILL  # `signal` would import enum

from .. import _bits, _native
from .._record import record
from ..cgroups.group import join_self
from ..rootfs import cgroups as _rootfs_cgroups  # noqa: F401  (rootfs.mounts imports it lazily)
from ..rootfs.prepare import finish_rootfs, mount_rootfs
from ..security import attrs, caps, confine, lsm, rlimits  # noqa: F401  (all used after pivot_root)
from .channel import Channel
from .hooks import run_hooks
from .plan import Plan, env_dict
from .program import (
    chown_stdio,
    close_all_but,
    find_program,
    hand_over_fds,
    join_keyring,
    restore_default_signals,
    with_activation,
    with_home,
)
from .spec import sysctl_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..security.seccomp import Filter

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


@record(frozen=True)
class InitOptions:
    container_id: str
    bundle: str
    fifo_fd: int             # O_PATH fd of the state dir's exec fifo
    preserve_fds: int = 0    # fds 3 .. 3+N-1 go to the container (runc's --preserve-fds)
    listen_fds: int = 0      # the first of them are socket activation's: LISTEN_FDS/LISTEN_PID set
    absent_fds: tuple[int, ...] = ()  # numbers in that range the caller had not opened: closed
    no_pivot: bool = False
    no_new_keyring: bool = False
    rootless: bool = False
    new_user_ns: bool = False  # the runtime writes our id maps; then we take root of the ns
    cgroup_fds: tuple[int, ...] = ()  # our group's v1 `tasks` files (Cgroup.join_fds): joined first
    cgroup_dirs: dict[str, str] | None = None  # hierarchy mount -> our group (Cgroup.dirs_by_mount)
    unshare_cgroupns: bool = False  # make our cgroup namespace once in our v1 groups (not at the clone)
    seccomp: Filter | None = None  # compiled by the runtime; installed by confine.apply
    console_fd: int = -1     # process.terminal: the socket the pty master is sent on (console.py)
    mount_trees: tuple[int, ...] = ()  # per mount: the runtime's detached bind source or -1 (rootfs.sources)
    device_trees: tuple[int, ...] = ()  # per linux.devices entry: a node the runtime made, or -1


def run(plan: Plan, chan: Channel, opts: InitOptions) -> None:
    """The init's whole life. Never returns."""
    step = "init"
    # None: a config without process can be created (runtime-spec: it is needed only by
    # `start`, which refuses it); we then prepare everything but the program and wait
    process = plan.process
    try:
        _native.prctl(PR_SET_PDEATHSIG, SIGKILL)  # die with the runtime during setup
        # our own session, without a controlling terminal: nothing in the container can reach
        # the caller's terminal (TIOCSTI pushes keystrokes only into one's controlling tty)
        step = "start a new session"
        os.setsid()
        affinity = process.confinement.cpu_affinity.initial if process is not None else None
        if affinity is not None:  # execCPUAffinity.initial: before the move into the cgroups
            step = "set the initial CPU affinity"
            attrs.apply_affinity(affinity, "initial")
        step = "join the container's cgroup"
        join_self(list(opts.cgroup_fds))  # before anything else runs (and closes them)
        if opts.unshare_cgroupns:
            step = "make the cgroup namespace"
            _native.unshare(_bits.NEWCGROUP)  # rooted at the groups we now stand in
        # we hold copies of every fd of the runtime, among them its flock on the state dir
        # (which would keep `start` waiting) and its cgroup fd: keep only what we need
        close_all_but({0, 1, 2, *chan.fds, opts.fifo_fd,
                       *(set(range(3, 3 + opts.preserve_fds)) - set(opts.absent_fds)),
                       *((opts.console_fd,) if opts.console_fd >= 0 else ()),
                       *(fd for fd in (*opts.mount_trees, *opts.device_trees) if fd >= 0)})
        step = "wait for the runtime"  # cgroup placement and id maps come first
        chan.expect("maps")
        # From here nothing of the host may be read through our /proc entries (CVE-2019-5736
        # class); execve of the user's program makes it dumpable again.  Not before the maps:
        # a non-dumpable task's /proc files are root's, and a rootless runtime (or newuidmap
        # on its behalf) could no longer write them -- runc waits for its maps the same way.
        _native.prctl(PR_SET_DUMPABLE, 0)
        if opts.new_user_ns:
            _become_root(plan)
        net = plan.namespace("network")
        if net is not None and net.path is None:
            step = "bring up the loopback interface"
            _native.link_up("lo")  # a new network namespace's lo is down; runc brings it up too
        step = "set hostname"
        if plan.hostname is not None:
            _native.sethostname(plan.hostname)
        if plan.domainname is not None:
            _native.setdomainname(plan.domainname)
        if not opts.no_new_keyring:
            step = "join a new session keyring"
            join_keyring(opts.container_id)
        step = "prepare the rootfs"
        # inside any user namespace mknod is refused: devices are bound in, nodes the runtime
        # made (opts.device_trees, as crun) or else the host's of the same path (as runc)
        unprivileged = opts.rootless or plan.namespace("user") is not None
        # without a mount namespace we share the runtime's mount table: no mount at all (the
        # plan has none to make), only a chroot below
        own_mounts = plan.namespace("mount") is not None
        if own_mounts:
            mount_rootfs(plan, rootless=unprivileged, cgroup_dirs=opts.cgroup_dirs, trees=opts.mount_trees,
                         device_trees=opts.device_trees)
        # sysctl files act on the writer's namespaces, and readonlyPaths will make /proc/sys
        # read-only: write them now, as runc does before its readonly paths
        step = "write sysctls"
        _write_sysctls(plan)
        chan.send("mounted")
        host_pid = int(chan.expect("hooks-done")["pid"])  # type: ignore[call-overload]
        step = "createContainer hooks"
        # "creating": `create` has not returned (runc's status; a hook without env gets the
        # container process's, as runc's init has it set by now); in the rootfs, as runc runs it
        run_hooks("createContainer", plan.hooks.create_container,
                  _state(plan, opts, "creating", host_pid), env_dict(process.env) if process else {},
                  cwd=plan.root)
        if process is not None and process.terminal:  # as runc: after the mounts and hooks,
            # before the rootfs is sealed
            step = "set up the console"
            _setup_console(plan, opts)
        confinement = process.confinement if process is not None else None
        if confinement is not None and confinement.oom_score_adj is not None:
            # written through our /proc while it is the runtime's, as runc does it first thing:
            # after pivot_root the container may have no /proc (confine.apply would need one)
            step = "set oomScoreAdj"
            attrs.apply_oom_score_adj(confinement.oom_score_adj)
            confinement = type(confinement)(**{**vars(confinement), "oom_score_adj": None})
        step = "pivot into the rootfs"
        # the exec fifo is reopened through our fd directory of the runtime's /proc, held across
        # pivot_root: the container need not mount a /proc of its own (nor can it fake one)
        fds_dir = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if own_mounts:
            finish_rootfs(plan, rootless=unprivileged, no_pivot=opts.no_pivot)
        else:  # runc and crun chroot there too
            step = f"chroot into the rootfs {plan.root}"
            os.chroot(plan.root)
            os.chdir("/")
        if process is None:
            _created_without_process(chan, opts, fds_dir)
        step = f"process.cwd {process.cwd}"
        _prepare_cwd(process.cwd)
        env = with_home(env_dict(process.env), process.user.uid)  # /etc/passwd: read it as root
        env = with_activation(env, opts.listen_fds)
        if plan.namespace("user") is not None:
            step = "give stdio to the process's user"
            chown_stdio(process.user.uid, process.user.gid)
        if plan.memory_policy is not None:  # kept across execve, as runc sets it in its init
            step = "set the memory policy"
            attrs.apply_memory_policy(plan.memory_policy)
        where = [step]
        try:
            assert confinement is not None
            confine.apply(confinement, _switchable(plan, process.user), opts.seccomp,
                          lambda fd: _hand_over_listener(chan, fd), cwd=process.cwd, step=where)
        except BaseException as exc:
            _report_and_die(chan, exc, where[0])
        step = "find the program"
        program = find_program(process.args[0], env)
        step = "close fds"
        hand_over_fds(opts.preserve_fds, opts.absent_fds)
        # `create` ends as soon as it reads "created": stop dying with it before saying so
        _native.prctl(PR_SET_PDEATHSIG, 0)
        chan.send("created")
        chan.close()
    except BaseException as exc:
        _report_and_die(chan, exc, step)

    # the second half: from here on nobody listens on the channel; errors go to stderr
    assert process is not None  # without one we wait in _created_without_process
    try:
        step = "wait for start"
        fifo = os.open(str(opts.fifo_fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=fds_dir)
        os.write(fifo, b"0")
        os.close(opts.fifo_fd)
        os.close(fds_dir)
        # `fifo` stays open until execve closes it (O_CLOEXEC): `start` waits for that EOF,
        # so its poststart hooks run only once the user's program has started
        step = "startContainer hooks"
        # "created": the program is not executed yet (runc's status); env: what it will get
        run_hooks("startContainer", plan.hooks.start_container,
                  _state(plan, opts, "created", host_pid), env)
        step = f"exec {process.args[0]}"
        restore_default_signals()
        os.execve(program, list(process.args), env)
    except BaseException as exc:
        _die(f"clonekit init: {step}: {exc}")


def _created_without_process(chan: Channel, opts: InitOptions, fds_dir: int) -> NoReturn:
    """A container without process is created like any other and waits on the exec fifo; `start`
    refuses it (naming $.process) and never opens the fifo, so only kill/delete end us."""
    hand_over_fds(opts.preserve_fds, opts.absent_fds)
    _native.prctl(PR_SET_PDEATHSIG, 0)
    chan.send("created")
    chan.close()
    try:
        os.open(str(opts.fifo_fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=fds_dir)  # blocks
    finally:
        _die("clonekit init: start: config.json has no process ($.process): there is nothing to run")


def _setup_console(plan: Plan, opts: InitOptions) -> None:
    """The pty of the container's devpts becomes /dev/console and our stdio and controlling
    terminal; its master goes to the runtime's console socket (console.py, imported by the
    runtime before the clone)."""
    from ..rootfs.paths import Root
    from . import console

    process = plan.process
    assert process is not None
    with Root(plan.root) as root:
        console.setup(opts.console_fd, root=root, size=process.console_size, uid=process.user.uid)


def _become_root(plan: Plan) -> None:
    # our ids were unmapped when the namespace was made; now that the maps exist, take root
    # of the namespace (we already hold its capabilities).  A map the config did not give was
    # not written: no id of that kind exists to take
    if plan.gid_mappings:
        os.setresgid(0, 0, 0)
    if plan.uid_mappings:
        os.setresuid(0, 0, 0)


def _switchable(plan: Plan, user: confine.User) -> confine.User:
    """``user``, but in a new user namespace without uid (gid) mappings the uid (gid) -1: no id
    exists there to switch to (EINVAL), so the process keeps the one it was made with (the
    spec parser let only the default 0 through)."""
    ns = plan.namespace("user")
    if ns is None or ns.path is not None or (plan.uid_mappings and plan.gid_mappings):
        return user
    return confine.User(uid=user.uid if plan.uid_mappings else -1,
                        gid=user.gid if plan.gid_mappings else -1,
                        umask=user.umask, additional_gids=user.additional_gids)


def _write_sysctls(plan: Plan) -> None:
    for key, value in plan.sysctl:
        path = sysctl_file(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise OSError(exc.errno, f"sysctl {key}: {exc.strerror}", path) from None
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"sysctl {key}={value}: {exc.strerror}", path) from None
        finally:
            os.close(fd)


def _prepare_cwd(cwd: str) -> None:
    """Make a missing process.cwd (as runc does) and make sure it can be entered, so a bad one
    fails `create` rather than the container after `start`.  We are inside the root already:
    symlinks resolve within it."""
    try:
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chdir(cwd)
        os.chdir("/")
    except OSError as exc:
        raise OSError(exc.errno, f"process.cwd {cwd!r} cannot be made or entered in the container: "
                      f"{exc.strerror}") from None


def _hand_over_listener(chan: Channel, fd: int) -> None:
    """The seccomp NOTIFY fd: the runtime takes a copy (pidfd_getfd) for the listener."""
    chan.send("seccomp-listener", fd=fd)
    chan.expect("seccomp-listener-taken")
    os.close(fd)


def _state(plan: Plan, opts: InitOptions, status: str, host_pid: int) -> dict[str, object]:
    doc: dict[str, object] = {"ociVersion": plan.oci_version, "id": opts.container_id,
                              "status": status, "pid": host_pid, "bundle": opts.bundle}
    if plan.annotations:
        doc["annotations"] = dict(plan.annotations)
    return doc


def _report_and_die(chan: Channel, exc: BaseException, step: str) -> None:
    try:
        chan.send_error(exc, step)
    except OSError:
        _die(f"clonekit init: {step}: {exc}")
    os._exit(1)


def _die(message: str) -> NoReturn:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    finally:
        os._exit(127)
