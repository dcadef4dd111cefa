"""exec: start another process in a container, as runc's ``exec`` does.

The process is the container's in every way the kernel can see:

- **namespaces**: all of the init's, joined in one ``setns(pidfd, mask)`` (the kernel enters
  the user namespace first).  A pid namespace applies to children only, so the runtime joins
  that one *itself* and then clones the process straight into it -- no intermediate process.
  Where the runtime may not (no CAP_SYS_ADMIN in its own user namespace: unprivileged), an
  intermediate joins everything and clones the process with CLONE_PARENT, as runc's nsexec.
- **cgroups**: born in the container's cgroup2 group (``CLONE_INTO_CGROUP``), then the process
  writes itself into each v1 hierarchy's group (no global lock: see ``Cgroup.join_fds``) --
  before entering the cgroup namespace, whose root would hide the groups.
- **root**: the init's (``/proc/PID/root``), whether it pivoted or not.
- **confinement**: ``security.confine.apply`` with config.json's process (re-read from the
  bundle at exec, as runc does) or ``--process FILE``, plus the flags' overrides, and the
  container's seccomp filter (the compile cache ``create`` filled).

Every failure before execve comes back over a CLOEXEC pipe with its step and errno; the
runtime raises it as a KernelError.  The process never runs our code after execve.
"""

from __future__ import annotations

import os

from .. import _bits, _native
from .._record import record
from ..errors import KernelError, UsageError
from .errors import ContainerStateError
from .program import close_all_but, join_keyring

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..cgroups import Cgroup
    from ..security.seccomp import Filter
    from ..task import Task
    from .plan import ProcessPlan
    from .state import ContainerState, StateDir

__all__ = ["ExecRequest", "exec_process", "exec_target"]

PR_SET_DUMPABLE = 4
MAX_PROCESS_BYTES = 1 << 20
# /proc/PID/ns entry -> clone flag; setns(pidfd, mask) orders them itself (user first)
_NAMESPACES = (("user", _bits.NEWUSER), ("mnt", _bits.NEWNS), ("uts", _bits.NEWUTS),
               ("ipc", _bits.NEWIPC), ("net", _bits.NEWNET), ("pid", _bits.NEWPID),
               ("cgroup", _bits.NEWCGROUP), ("time", _bits.NEWTIME))
_CAP_SETS = ("bounding", "effective", "permitted")


@record(frozen=True)
class ExecRequest:
    """What ``exec`` is asked, with runc's flags.  Without ``process_file`` the process is
    config.json's with these overrides (runc's getProcess); with it, the file alone."""

    args: tuple[str, ...] = ()
    process_file: str | None = None
    cwd: str | None = None
    env: tuple[str, ...] = ()              # appended to the config's
    uid: int | None = None
    gid: int | None = None
    additional_gids: tuple[int, ...] = ()  # appended to the config's
    caps: tuple[str, ...] = ()             # added to every set
    no_new_privs: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    tty: bool = False
    detach: bool = False
    pid_file: str | None = None
    preserve_fds: int = 0
    absent_fds: tuple[int, ...] = ()       # of 3 .. 3+preserve_fds-1: not the caller's, skipped
    ignore_paused: bool = False


@record(frozen=True)
class _Target:
    """Everything the process needs, decided before it is made."""

    state: ContainerState
    process: ProcessPlan
    seccomp: Filter | None
    # the container's user namespace maps no uid / no gid: none can be switched to (EINVAL),
    # the process keeps the one it is made with, as the container's own process did
    unmapped: tuple[bool, bool] = (False, False)


def exec_target(states: StateDir, container_id: str, req: ExecRequest) -> _Target:
    """Check the container can take a process, and build that process (no side effects)."""
    st = states.load(container_id)
    status = st.status(states.path(container_id))
    if status == "stopped":
        raise ContainerStateError("cannot exec in a stopped container")
    if status == "paused" and not req.ignore_paused:
        raise ContainerStateError("cannot exec in a paused container (use --ignore-paused to override)")
    if status == "creating":
        raise ContainerStateError(f"cannot exec in container {container_id!r}: it is still being "
                                  "created; wait for `create` to finish")
    process, seccomp = _process(st, req)
    if seccomp is not None and seccomp.notify:
        raise UsageError("the container's seccomp filter has SCMP_ACT_NOTIFY rules: exec does not hand "
                         "their listener to linux.seccomp.listenerPath yet; exec needs a filter without them")
    unmapped = _unmapped_ids(st.pid)
    for which, none_mapped, value in (("uid", unmapped[0], process.user.uid),
                                      ("gid", unmapped[1], process.user.gid)):
        if none_mapped and value:
            raise UsageError(f"{which} {value} cannot be switched to in container {container_id!r}: its "
                             f"user namespace maps no {which} (the kernel refuses set{which}, EINVAL); "
                             f"exec as {which} 0 (the process keeps the id it is made with)")
    return _Target(st, process, seccomp, unmapped)


def _unmapped_ids(pid: int) -> tuple[bool, bool]:
    """Whether the init's user namespace has an empty uid_map / gid_map (a config without
    uidMappings/gidMappings: spec.py)."""
    empty = []
    for kind in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/{pid}/{kind}") as f:
                empty.append(not f.read().strip())
        except OSError:
            empty.append(False)
    return empty[0], empty[1]


def _process(st: ContainerState, req: ExecRequest) -> tuple[ProcessPlan, Filter | None]:
    from .spec import load_config, process_from_dict

    config = load_config(st.bundle)  # runc too re-reads the bundle's config.json
    linux = config.get("linux") if isinstance(config, dict) else None
    linux = linux if isinstance(linux, dict) else {}
    personality = None
    if linux.get("personality") is not None:
        from .spec_confine import parse_personality

        personality = parse_personality(linux["personality"])
    if req.process_file is not None:
        doc: Any = _read_process_file(req.process_file)
    else:
        doc = config.get("process") if isinstance(config, dict) else None
        if not isinstance(doc, dict):
            raise UsageError(f"{st.bundle}/config.json has no process object to take the defaults from: "
                             "pass the whole process with --process FILE")
        _override(doc, req)
    process = process_from_dict(doc, personality)
    seccomp = None
    if linux.get("seccomp") is not None:
        from ..security.seccomp import compile_filter, default_cache_dir
        from .spec_seccomp import parse_seccomp

        spec = parse_seccomp(linux["seccomp"])
        if spec is not None:  # cached since `create` compiled it: ~0.3 ms
            seccomp = compile_filter(spec, cache_dir=default_cache_dir())
    return process, seccomp


def _read_process_file(path: str) -> Any:
    from .spec import parse_json

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROCESS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--process {path}: cannot read it: {exc.strerror}; give a runtime-spec "
                         "process object in a JSON file") from None
    if len(data) > MAX_PROCESS_BYTES:
        raise UsageError(f"--process {path} is larger than 1 MiB: no process object is; pass the "
                         "process JSON file")
    return parse_json(data, path)


def _override(doc: dict[str, Any], req: ExecRequest) -> None:
    """The flags applied to config.json's process object, as runc's getProcess applies them
    (the parser then checks the result like any config)."""
    doc["args"] = list(req.args)
    doc["terminal"] = req.tty
    if req.cwd:
        doc["cwd"] = req.cwd
    if req.apparmor:
        doc["apparmorProfile"] = req.apparmor
    if req.process_label:
        doc["selinuxLabel"] = req.process_label
    if req.no_new_privs:
        doc["noNewPrivileges"] = True
    if req.env:
        doc["env"] = [*(doc.get("env") or []), *req.env]
    if req.caps:
        caps = doc.get("capabilities")
        caps = dict(caps) if isinstance(caps, dict) else {}
        # runc 1.1: bounding, effective and permitted; ambient only where the config lists
        # inheritable (an ambient capability needs an inheritable one, and --cap adds none)
        for which in (*_CAP_SETS, *(("ambient",) if caps.get("inheritable") is not None else ())):
            caps[which] = [*(caps.get(which) or []), *req.caps]
        doc["capabilities"] = caps
    if req.uid is not None or req.gid is not None or req.additional_gids:
        user = doc.get("user")
        user = dict(user) if isinstance(user, dict) else {}
        if req.uid is not None:
            user["uid"] = req.uid
        if req.gid is not None:
            user["gid"] = req.gid
        if req.additional_gids:
            user["additionalGids"] = [*(user.get("additionalGids") or []), *req.additional_gids]
        doc["user"] = user


# -- making the process ---------------------------------------------------------------------


def exec_process(target: _Target, req: ExecRequest, console_fd: int = -1, *,
                 foreground: bool = False) -> Task:
    """Start the process; returns it once it has called execve (or raises why it could not).
    It is our child: wait for it, or let it go (``detach``).  ``console_fd``: with a terminal,
    the socket its pty master goes to (console.py; the caller keeps and closes it);
    ``foreground``: the caller connects its own terminal to that pty (console.Foreground)."""
    # what the child runs, imported now: inside the container's root an import finds nothing
    from ..cgroups.group import join_self  # noqa: F401
    from ..security import attrs, caps, confine, lsm, rlimits  # noqa: F401
    from . import plan, program  # noqa: F401

    if target.seccomp is not None:
        from ..security import seccomp  # noqa: F401
    if console_fd >= 0:
        import termios  # noqa: F401

        from . import console  # noqa: F401
    st = target.state
    pidfd = st.open_init()
    if pidfd is None:
        raise ContainerStateError("cannot exec in a stopped container")
    fds: list[int] = [pidfd]
    try:
        mask = _namespaces_to_join(st.pid)
        # the pid namespace: joined for our children only, so the process is born in it
        joined_pid = bool(mask & _bits.NEWPID) and _join_pid_namespace(pidfd)
        if joined_pid:
            mask &= ~_bits.NEWPID
        cgroup = _cgroup(st)
        v2_fd = cgroup.v2_dir_fd() if cgroup is not None else None
        if v2_fd is not None:
            fds.append(v2_fd)
        join_fds = cgroup.join_fds(v2=v2_fd is None) if cgroup is not None else []
        fds.extend(join_fds)
        root_fd = os.open(f"/proc/{st.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(root_fd)
        r, w = os.pipe2(os.O_CLOEXEC)
        fds.append(w)
        try:
            child = _Child(target, req, pidfd, mask, join_fds, root_fd, w, console_fd, fork=not joined_pid,
                           foreground=foreground)
            task = _clone(v2_fd, child)
        except BaseException:
            os.close(r)
            raise
        for fd in fds:  # the child has its copies
            os.close(fd)
        fds = []
        return _started(task, r, req, forked=not joined_pid)
    finally:
        for fd in fds:
            os.close(fd)


def _namespaces_to_join(pid: int) -> int:
    """The init's namespaces that are not ours (re-entering one's own user namespace is EINVAL)."""
    mask = 0
    for name, flag in _NAMESPACES:
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
        except FileNotFoundError:
            continue  # a kind this kernel lacks
        ours = os.stat(f"/proc/self/ns/{name}")
        if (theirs.st_ino, theirs.st_dev) != (ours.st_ino, ours.st_dev):
            mask |= flag
    return mask


def _join_pid_namespace(pidfd: int) -> bool:
    """setns into the init's pid namespace for our children; False where we lack the rights
    (CAP_SYS_ADMIN in our own user namespace): then an intermediate joins it with the rest."""
    try:
        _native.setns(pidfd, _bits.NEWPID)
    except PermissionError:
        return False
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"cannot join the container's pid namespace: {exc.strerror}",
                          step="exec") from None
    return True


def _cgroup(st: ContainerState) -> Cgroup | None:
    if not st.cgroup or st.cgroup.get("reason") is not None:
        return None
    from ..cgroups import Cgroup

    return Cgroup.load(st.cgroup)


class _Child:
    """What the new process does between clone and execve (Python, single-threaded, every
    module it needs already imported: after the setns and chroot, imports find nothing)."""

    def __init__(self, target: _Target, req: ExecRequest, pidfd: int, mask: int, join_fds: list[int],
                 root_fd: int, report_fd: int, console_fd: int, *, fork: bool, foreground: bool) -> None:
        self.target, self.req = target, req
        self.pidfd, self.mask, self.join_fds = pidfd, mask, join_fds
        self.root_fd, self.report_fd, self.console_fd, self.fork = root_fd, report_fd, console_fd, fork
        self.foreground = foreground
        self.confinement = target.process.confinement

    def __call__(self) -> None:
        """Never returns: execve, or a report and _exit."""
        step = ["join the container's cgroups"]
        try:
            # nothing of the container may look into us through /proc while we hold host fds
            _native.prctl(PR_SET_DUMPABLE, 0)
            from ..cgroups.group import join_self

            join_self(self.join_fds)  # before the cgroup namespace, whose root would hide them
            keep = {0, 1, 2, self.pidfd, self.root_fd, self.report_fd, self.console_fd,
                    *(set(range(3, 3 + self.req.preserve_fds)) - set(self.req.absent_fds))}
            close_all_but(keep)
            oom = self.confinement.oom_score_adj
            if oom is not None:  # through our /proc, as runc sets it: the container may have none
                step[0] = "set oomScoreAdj"
                from ..security import attrs

                attrs.apply_oom_score_adj(oom)
                self.confinement = type(self.confinement)(**{**vars(self.confinement), "oom_score_adj": None})
            step[0] = "join the container's namespaces"
            if self.mask:
                _native.setns(self.pidfd, self.mask)
            os.close(self.pidfd)
            if self.fork:  # the pid namespace was joined just now: only a child is in it
                self._fork_into_pid_namespace()
            self._become(step)
        except BaseException as exc:
            _report(self.report_fd, step[0], exc)
            os._exit(127)

    def _fork_into_pid_namespace(self) -> None:
        from ..process import clone

        task = clone(_bits.PARENT, exit_signal=0)  # our parent's child: the runtime waits for it
        if task == 0:
            return
        os.write(self.report_fd, b"P%d\n" % task.pid)  # type: ignore[union-attr]
        os._exit(0)

    def _become(self, step: list[str]) -> None:
        from ..security import confine
        from .plan import env_dict
        from .program import (
            chown_stdio,
            find_program,
            hand_over_fds,
            restore_default_signals,
            with_home,
        )

        process, st = self.target.process, self.target.state
        os.setsid()  # as runc: a session of its own, no controlling terminal of the caller's
        step[0] = "join the container's session keyring"
        join_keyring(st.id)
        step[0] = "enter the container's root"
        os.fchdir(self.root_fd)
        os.chroot(".")
        os.close(self.root_fd)
        if self.console_fd >= 0:  # as runc's exec: the pty before the confinement, no /dev/console
            step[0] = "set up the console"
            from . import console

            console.setup(self.console_fd, size=process.console_size, uid=process.user.uid)
            if self.foreground:  # the caller's terminal adds the "\r": none of ours from the start
                console._clear_onlcr(0)
        if self.mask & _bits.NEWUSER:  # as crun and runc: stdio to the process's user
            step[0] = "give stdio to the process's user"
            chown_stdio(process.user.uid, process.user.gid)
        step[0] = "find the program"
        env = with_home(env_dict(process.env), process.user.uid)
        program = find_program(process.args[0], env)
        user = process.user
        if any(self.target.unmapped):  # -1: keep the id (see _Target.unmapped)
            user = confine.User(uid=-1 if self.target.unmapped[0] else user.uid,
                                gid=-1 if self.target.unmapped[1] else user.gid,
                                umask=user.umask, additional_gids=user.additional_gids)
        confine.apply(self.confinement, user, self.target.seccomp, None,
                      cwd=process.cwd, step=step)
        step[0] = "close fds"
        hand_over_fds(self.req.preserve_fds, self.req.absent_fds)  # our report fd included
        restore_default_signals()
        step[0] = f"exec {process.args[0]}"
        os.execve(program, list(process.args), env)


def _clone(v2_fd: int | None, child: _Child) -> Task:
    from ..process import clone

    task = clone(0, cgroup=v2_fd)
    if task == 0:
        child()
        os._exit(127)  # pragma: no cover  (child() never returns)
    return task  # type: ignore[return-value]


def _started(task: Task, r: int, req: ExecRequest, *, forked: bool) -> Task:
    """Read the child's reports to EOF (its execve closes the pipe): the pid an intermediate
    made ("P"), or the step that failed ("E"), one line each."""
    from ..task import Task

    data = b""
    try:
        while chunk := os.read(r, 4096):
            data += chunk
    finally:
        os.close(r)
    lines = data.split(b"\n")
    made = next((line for line in lines if line[:1] == b"P"), None)
    failed = next((line for line in lines if line[:1] == b"E"), None)
    proc = task
    if made is not None:  # the intermediate's child (CLONE_PARENT): ours to wait for
        with task:
            task.wait()
        proc = Task.from_pid(int(made[1:]))
    if failed is not None:
        with proc:
            proc.wait()
        if proc is not task:
            task.close()
        step, err, text = [*failed[1:].decode(errors="replace").split("\0"), "", ""][:3]
        raise KernelError(int(err or 0), text or "failed", step=f"exec: {step}")
    if forked and made is None:  # the intermediate died without a word
        with task:
            status = task.wait()
        raise KernelError(0, f"the intermediate process ended before making the process (status "
                          f"{status})", step="exec: join the container's namespaces")
    if req.pid_file:
        _write_pid_file(req.pid_file, proc.pid)
    return proc


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _report(fd: int, step: str, exc: BaseException) -> None:
    err = getattr(exc, "errno", None) or 0
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    name = getattr(exc, "filename", None)
    if name is not None and str(name) not in text:
        text = f"{text}: {name}"
    try:
        line = f"E{step}\0{err}\0{text}".replace("\n", " ")
        os.write(fd, line.encode(errors="replace") + b"\n")
    except OSError:
        pass
