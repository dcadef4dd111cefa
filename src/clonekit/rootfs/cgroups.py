"""The ``cgroup`` mount type: the host's cgroup layout, as seen from the container.

On a cgroup v2 host it is one cgroup2 mount.  On v1 and hybrid hosts (this one) it is what runc
builds: a tmpfs at the destination, one mount per host hierarchy below it (a fresh cgroup mount
of the same controllers when the container has its own cgroup namespace; otherwise, or when the
kernel refuses, a bind of the container's own group), the host's controller symlinks
(``cpu -> cpu,cpuacct``), then the tmpfs remounted read-only if asked.
"""

from __future__ import annotations

import errno
import os

from .errors import RootfsError
from .mountinfo import MS, MountInfo, read_mountinfo
from .paths import Root, ensure_path, fd_path, reopen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..runtime.plan import MountPlan

__all__ = ["host_cgroup2", "host_hierarchies", "mount_cgroup_v1"]

HOST_CGROUP = "/sys/fs/cgroup"


def host_hierarchies() -> list[MountInfo]:
    """The cgroup/cgroup2 mounts of this mount namespace directly below /sys/fs/cgroup, or the
    cgroup2 mount at /sys/fs/cgroup itself on a v2 host."""
    found = [mi for mi in read_mountinfo() if mi.fstype in ("cgroup", "cgroup2")
             and (mi.mountpoint == HOST_CGROUP or os.path.dirname(mi.mountpoint) == HOST_CGROUP)]
    return found


def host_cgroup2() -> str | None:
    return next((mi.mountpoint for mi in host_hierarchies() if mi.fstype == "cgroup2"), None)


def _controllers(mi: MountInfo) -> list[str]:
    return [o for o in mi.super_options if o not in ("rw", "ro") and not o.startswith("release_agent=")]


def _own_paths() -> dict[frozenset[str], str]:
    """/proc/self/cgroup: controllers of a hierarchy -> this process's group in it."""
    paths: dict[frozenset[str], str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            paths[frozenset(ctrls.split(",")) if ctrls else frozenset()] = path
    return paths


def mount_cgroup_v1(root: Root, m: MountPlan, *, rootless: bool, cgroupns: bool) -> None:
    from .mounts import mount_on, remount

    step = f"mount cgroup on {m.destination}"
    hierarchies = host_hierarchies()
    per_mount = m.flags & MS.PER_MOUNT
    dst = ensure_path(root, m.destination, step=step)
    try:
        if not any(mi.fstype == "cgroup" for mi in hierarchies):  # a cgroup v2 host
            _mount_hierarchy(root, m.destination, dst, None, per_mount, rootless=rootless,
                             cgroupns=cgroupns, step=step)
            return
        mount_on(dst, "tmpfs", "tmpfs", (m.flags & ~MS.RDONLY & MS.PER_MOUNT), "mode=755",
                 step=step, path=m.destination)
        top = reopen(root, m.destination, dst, step=step)
        try:
            own = _own_paths()
            for mi in hierarchies:
                if mi.mountpoint == HOST_CGROUP:
                    continue
                name = os.path.basename(mi.mountpoint)
                sub_path = f"{m.destination.rstrip('/')}/{name}"
                sub = ensure_path(root, sub_path, step=step)
                try:
                    _mount_hierarchy(root, sub_path, sub, mi, per_mount, rootless=rootless,
                                     cgroupns=cgroupns, step=step, own=own)
                finally:
                    os.close(sub)
            _copy_symlinks(top, {os.path.basename(mi.mountpoint) for mi in hierarchies}, step, m.destination)
            if m.flags & MS.RDONLY:
                remount(top, MS.RDONLY | per_mount, step=step, path=m.destination)
        finally:
            os.close(top)
    finally:
        os.close(dst)


def _mount_hierarchy(root: Root, path: str, dst: int, mi: MountInfo | None, per_mount: int, *,
                     rootless: bool, cgroupns: bool, step: str,
                     own: dict[frozenset[str], str] | None = None) -> None:
    from .mounts import mount_on, remount

    fstype = "cgroup2" if mi is None or mi.fstype == "cgroup2" else "cgroup"
    data = None if fstype == "cgroup2" else ",".join(_controllers(mi)) if mi else None
    err = 0
    if cgroupns:
        try:
            mount_on(dst, "cgroup", fstype, per_mount, data, step=step, path=path)
            return
        except RootfsError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY) and not rootless:
                raise
            err = exc.errno or 0
    # no cgroup namespace of our own (or refused): bind the host's view of our own group
    host = mi.mountpoint if mi else (host_cgroup2() or HOST_CGROUP)
    ctrls = frozenset() if mi is None or fstype == "cgroup2" else frozenset(_controllers(mi))
    group = (own or _own_paths()).get(ctrls, "/")
    source = os.path.normpath(host + "/" + group.lstrip("/"))
    if not os.path.isdir(source):
        source = host
    try:
        sfd = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(exc.errno or err, step, path, f"cannot open the host's {source}") from None
    try:
        mount_on(dst, fd_path(sfd), None, MS.BIND | MS.REC, None, step=step, path=path)
    finally:
        os.close(sfd)
    new = reopen(root, path, dst, step=step)
    try:
        remount(new, per_mount, step=step, path=path)
    finally:
        os.close(new)


def _copy_symlinks(top: int, names: set[str], step: str, dest: str) -> None:
    """The host's ``cpu -> cpu,cpuacct`` links, made in the new tmpfs (fd-relative)."""
    try:
        entries = os.listdir(HOST_CGROUP)
    except OSError:
        return
    for entry in entries:
        host = os.path.join(HOST_CGROUP, entry)
        if not os.path.islink(host):
            continue
        target = os.readlink(host)
        if target not in names:
            continue
        try:
            os.symlink(target, entry, dir_fd=top)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RootfsError(exc.errno or 0, step, f"{dest.rstrip('/')}/{entry}") from None
