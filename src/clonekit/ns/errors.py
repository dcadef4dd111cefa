"""Namespace errors that say what failed, why, and what to do.

The kernel answers unshare/setns/uid_map writes with a bare errno; the functions here turn one
into a sentence by looking at what can be looked at: sysctl limits, capabilities, thread count,
the helper binaries of the uidmap package.
"""

from __future__ import annotations

import errno
import os

from ..errors import Error, KernelError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "NamespaceError",
    "NoSuchProcessError",
    "NotANamespaceError",
    "WrongKindError",
    "namespace_file_error",
    "setns_error",
    "thread_count",
    "unshare_error",
]


class NamespaceError(KernelError):
    """The kernel refused a namespace operation (keeps the errno)."""


class NoSuchProcessError(Error, LookupError):
    """The target pid does not exist (any more)."""

    errno = errno.ESRCH


class NotANamespaceError(UsageError):
    """A file or descriptor that should be a namespace (nsfs) is something else."""


class WrongKindError(UsageError):
    """A namespace file of another kind than the one asked for."""


def thread_count() -> int:
    """Threads of the calling process (from /proc/self/status)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except OSError:  # pragma: no cover
        pass
    return 1


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def has_cap(cap: int, which: str = "CapEff") -> bool:
    """Whether the calling process has capability number ``cap`` in its own user namespace."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(which + ":"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except OSError:  # pragma: no cover
        pass
    return False


CAP_SETGID = 6
CAP_SETUID = 7
CAP_SYS_CHROOT = 18
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21


def _names(kinds: Iterable[object]) -> str:
    return ",".join(str(k) for k in kinds)


def userns_unavailable_reason() -> str | None:
    """Why unprivileged user namespaces cannot be made here, if a reason can be seen."""
    value = _read_int("/proc/sys/kernel/unprivileged_userns_clone")
    if value == 0:
        return "the sysctl kernel.unprivileged_userns_clone is 0 (Debian/Ubuntu switch); set it to 1"
    value = _read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if value == 1:
        return ("AppArmor restricts unprivileged user namespaces "
                "(kernel.apparmor_restrict_unprivileged_userns=1); use a profile that allows 'userns,' "
                "or set the sysctl to 0")
    if _read_int("/proc/sys/user/max_user_namespaces") == 0:
        return "user namespaces are disabled: /proc/sys/user/max_user_namespaces is 0"
    return None


def _in_chroot() -> bool:
    try:
        return os.stat("/").st_ino != os.stat("/proc/1/root/.").st_ino
    except OSError:
        return False


def unshare_error(err: int, kinds: Iterable[object], step: str = "unshare") -> NamespaceError:
    """Explain a failed unshare(2)/clone of new namespaces of ``kinds``."""
    kinds = [str(k) for k in kinds]
    what = f"cannot create new {_names(kinds)} namespace{'s' if len(kinds) > 1 else ''}"
    why = os.strerror(err)
    hint = ""
    if err == errno.ENOSPC:
        full = []
        for kind in kinds:
            limit = _read_int(f"/proc/sys/user/max_{kind}_namespaces")
            if limit is not None:
                full.append(f"{kind}: /proc/sys/user/max_{kind}_namespaces = {limit}")
        why = "a namespace limit is reached"
        hint = ("; ".join(full) + " (per user, counted in every ancestor user namespace)" if full else "")
        hint += ("; or nesting is deeper than 32 levels (pid/user). Raise the sysctl "
                 "(e.g. sysctl user.max_user_namespaces=15000) or end processes holding namespaces")
        if any(_read_int(f"/proc/sys/user/max_{k}_namespaces") == 0 for k in kinds):
            why = "that kind of namespace is disabled"
    elif err == errno.EPERM:
        if "user" in kinds:
            reason = userns_unavailable_reason()
            if reason:
                hint = reason
            elif _in_chroot():
                hint = "the process is in a chroot: the kernel refuses new user namespaces there"
            elif os.geteuid() != 0 and kinds != ["user"]:
                hint = "the other namespaces need CAP_SYS_ADMIN in the new user namespace"
            else:
                hint = ("the caller's uid/gid may have no mapping in its user namespace, or a security "
                        "module refused it")
        elif not has_cap(CAP_SYS_ADMIN):
            hint = ("creating these namespaces needs CAP_SYS_ADMIN; unprivileged, create a user "
                    "namespace too (add -U, or -r to map yourself to root)")
    elif err == errno.EINVAL:
        n = thread_count()
        if "user" in kinds and n > 1:
            why = "a multithreaded process cannot create or enter a user namespace"
            hint = f"this process has {n} threads; unshare before starting threads, or fork first"
        elif "pid" in kinds:
            hint = ("a second new pid namespace cannot be made before a child entered the first; "
                    "fork first")
        else:
            hint = "this kernel does not support one of these kinds"
    elif err == errno.EUSERS and "user" in kinds:
        why = "user namespaces nest at most 32 deep"
    msg = f"{what}: {why}"
    if hint:
        msg += f" ({hint})"
    return NamespaceError(err, msg, step=step)


def setns_error(err: int, kinds: Iterable[object], target: str) -> NamespaceError:
    """Explain a failed setns(2) into ``kinds`` of ``target`` (a description)."""
    kinds = [str(k) for k in kinds]
    what = f"cannot enter the {_names(kinds)} namespace{'s' if len(kinds) > 1 else ''} of {target}"
    why = os.strerror(err)
    hint = ""
    if err == errno.EINVAL:
        n = thread_count()
        if "user" in kinds and n > 1:
            why = "a multithreaded process cannot enter a user namespace"
            hint = f"this process has {n} threads; enter before starting threads, or fork first"
        elif "time" in kinds and n > 1:
            why = "a multithreaded process cannot enter a time namespace"
        elif "user" in kinds:
            hint = ("the caller is already in that user namespace, or shares its filesystem "
                    "information (CLONE_FS) with another process")
        elif "mnt" in kinds:
            hint = "the caller shares its filesystem information (CLONE_FS) with another process"
        else:
            hint = "the file is of another kind, or a pid namespace that is not a descendant of ours"
    elif err == errno.EUSERS:
        why = "a multithreaded process cannot enter a time namespace"
        hint = f"this process has {thread_count()} threads"
    elif err == errno.EPERM:
        hint = ("entering needs CAP_SYS_ADMIN in the target's user namespace (and CAP_SYS_CHROOT "
                "for mnt); unprivileged, enter the owning user namespace too (-U) or run as root")
    elif err == errno.ESRCH:
        why = "the process exited"
    msg = f"{what}: {why}"
    if hint:
        msg += f" ({hint})"
    return NamespaceError(err, msg, step="setns")


def namespace_file_error(exc: OSError, path: str) -> Exception:
    """Explain failing to open a namespace file."""
    err = exc.errno or 0
    if err == errno.ENOENT:
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and not os.path.exists(
                f"/proc/{parts[2]}"):
            return NoSuchProcessError(f"no process with pid {parts[2]} (it exited, or never existed)")
        return KernelError(err, "no such namespace file", step="open namespace", filename=path)
    if err == errno.EACCES or err == errno.EPERM:
        return KernelError(err, f"{os.strerror(err)}: reading another user's namespaces needs "
                           "ptrace access (same uid, or CAP_SYS_PTRACE)", step="open namespace",
                           filename=path)
    return KernelError(err, os.strerror(err), step="open namespace", filename=path)


def idmap_error(err: int, which: str, pid: int, lines: str, *, via: str) -> KernelError:
    """Explain a refused uid_map/gid_map write (``which`` is "uid_map" or "gid_map")."""
    ids = "uid" if which == "uid_map" else "gid"
    shown = lines.strip().replace("\n", "; ")
    why = os.strerror(err)
    hint = ""
    if err == errno.EPERM:
        if via == "self":
            hint = (f"without CAP_SET{ids.upper()} in the parent user namespace a process may only map "
                    f"its own {ids}" + (" and only after writing 'deny' to /proc/PID/setgroups"
                                        if ids == "gid" else ""))
        elif via == "direct":
            hint = (f"writing {which} needs CAP_SET{ids.upper()} in the parent user namespace; "
                    f"unprivileged, list the ranges in /etc/sub{ids} for your user and install "
                    f"new{ids}map (Debian: apt install uidmap)")
        else:
            hint = f"new{ids}map refused: check /etc/sub{ids} for your user"
    elif err == errno.EINVAL:
        hint = "the ranges overlap, are empty, or exceed 340 lines; or the map was already written"
    msg = f"cannot write {which} of process {pid} ({shown}): {why}"
    if hint:
        msg += f" ({hint})"
    return KernelError(err, msg, step=f"write {which}", filename=f"/proc/{pid}/{which}")


def missing_helper(helper: str, ids: str) -> UsageError:
    import shutil

    where = shutil.which(helper)
    if where:  # pragma: no cover
        return UsageError(f"{helper} is at {where} but could not be run")
    return UsageError(
        f"mapping several {ids}s without CAP_SET{ids.upper()} needs {helper} (setuid helper from "
        f"the shadow suite): install it (Debian: apt install uidmap) and list your ranges in /etc/sub{ids}")
