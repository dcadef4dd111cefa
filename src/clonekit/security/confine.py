"""Every confinement of a container's process, applied in runc's order.

The container init calls :func:`apply` once its filesystem is ready (``exec`` and the sandbox
will do the same), then execs: a fix here reaches every path that starts a container process.

Order, and why:
1. ``oomScoreAdj``, rlimits, I/O priority, scheduler, personality, CPU affinity: some need
   privileges the process is about to give up (CAP_SYS_RESOURCE, CAP_SYS_NICE).
2. AppArmor/SELinux exec labels: take effect at execve.
3. ``noNewPrivileges``; then the seccomp filter if no-new-privs is off (installing a filter then
   needs CAP_SYS_ADMIN, about to be dropped).
4. The bounding set is cut, KEEPCAPS holds the permitted set across the change of uid, groups,
   gid and uid change, then effective/permitted/inheritable are set and ambient raised; umask.
5. The seccomp filter if no-new-privs is on: as late as possible, so the fewest syscalls of ours
   run under it.
"""

from __future__ import annotations

import os

from .._record import field, record
from . import attrs, caps, lsm, rlimits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .seccomp import Filter

__all__ = ["Confinement", "User", "apply", "set_user"]

PR_SET_NO_NEW_PRIVS = 38


@record(frozen=True)
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@record(frozen=True)
class Confinement:
    """What the process may do; None/empty: left as inherited (as runc leaves it)."""

    capabilities: caps.Capabilities | None = None
    no_new_privileges: bool = False
    rlimits: tuple[rlimits.Rlimit, ...] = ()
    oom_score_adj: int | None = None
    io_priority: attrs.IoPriority | None = None
    scheduler: attrs.Scheduler | None = None
    personality: attrs.Personality | None = None
    cpu_affinity: attrs.CpuAffinity = field(default_factory=attrs.CpuAffinity)
    apparmor_profile: str | None = None
    selinux_label: str | None = None


def apply(c: Confinement, user: User, seccomp: Filter | None = None,
          on_listener: Callable[[int], None] | None = None, *, cwd: str | None = None,
          step: list[str] | None = None) -> None:
    """Confine the calling process (single-threaded, about to execve) and enter ``cwd`` as the
    process's user.  ``on_listener`` gets the seccomp NOTIFY fd when the filter has one.
    ``step`` (a one-item list) tracks the step for error messages."""
    where = step if step is not None else [""]
    where[0] = "apply process attributes"
    # the scheduler, I/O priority and limits are inherited by what the process starts: runc
    # sets them here too, before the privileges to do so are gone
    if c.oom_score_adj is not None:
        attrs.apply_oom_score_adj(c.oom_score_adj)
    rlimits.apply(c.rlimits)
    if c.io_priority is not None:
        attrs.apply_io_priority(c.io_priority)
    if c.scheduler is not None:
        attrs.apply_scheduler(c.scheduler)
    if c.personality is not None:
        attrs.apply_personality(c.personality)
    if c.cpu_affinity.final is not None:
        attrs.apply_affinity(c.cpu_affinity.final, "final")
    where[0] = "apply the security labels"
    if c.apparmor_profile:
        lsm.apply_apparmor(c.apparmor_profile)
    if c.selinux_label:
        lsm.apply_selinux(c.selinux_label)
    from .. import _native

    if c.no_new_privileges:
        _native.prctl(PR_SET_NO_NEW_PRIVS, 1)
    elif seccomp is not None:
        where[0] = "install the seccomp filter"
        _install(seccomp, on_listener)
    where[0] = "drop capabilities"
    if c.capabilities is not None:
        caps.drop_bounding(c.capabilities)
        caps.keep_across_setuid(True)
    where[0] = f"set the process's user {user.uid}:{user.gid}"
    set_user(user)
    if c.capabilities is not None:
        caps.keep_across_setuid(False)
        where[0] = "set capabilities"
        caps.apply(c.capabilities)
    if cwd is not None:
        where[0] = f"chdir {cwd}"
        os.chdir(cwd)
        if not os.getcwd().startswith("/"):  # getcwd raises, or says "(unreachable)", outside root
            raise OSError(1, f"cwd {cwd!r} is outside the container's root")
    if c.no_new_privileges and seccomp is not None:
        where[0] = "install the seccomp filter"
        _install(seccomp, on_listener)


def _install(seccomp: Filter, on_listener: Callable[[int], None] | None) -> None:
    from . import seccomp as _seccomp

    fd = _seccomp.install(seccomp)
    if fd >= 0:
        if on_listener is None:
            os.close(fd)
            raise OSError(22, "the seccomp filter has a NOTIFY rule but nobody takes the listener")
        on_listener(fd)


def set_user(user: User) -> None:
    """Groups, gid, uid (in that order: setgroups needs the privileges setuid gives up), umask."""
    try:
        os.setgroups(list(user.additional_gids))
    except PermissionError:
        if user.additional_gids:
            raise  # setgroups is denied in this user namespace and groups were asked for
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    if user.umask is not None:
        os.umask(user.umask)
