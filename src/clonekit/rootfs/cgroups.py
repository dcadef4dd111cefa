"""The ``cgroup`` mount type: the host's cgroup layout, as seen from the container.

On a cgroup v2 host it is one cgroup2 mount.  On v1 and hybrid hosts (this one) it is what runc
builds: a tmpfs at the destination, one mount per host hierarchy below it (a fresh cgroup mount
of the same controllers when the container has its own cgroup namespace; otherwise, or when the
kernel refuses, a bind of the container's own group), the host's controller symlinks
(``cpu -> cpu,cpuacct``), then the flags of the mount (``ro``, ``nosuid``, ...) set on the tmpfs
and every hierarchy below it at once (one mount_setattr(AT_RECURSIVE)).

The hierarchies are directories made in the new, empty tmpfs, relative to its fd; the binds are
open_tree + move_mount (their fds name the new mounts: nothing is looked up twice).  The
group bound is the container's own: ``cgroup_dirs`` (hierarchy mount point -> group directory)
from the runtime, else what /proc/self/cgroup shows.
"""

from __future__ import annotations

import errno
import os

from .. import _native
from ..mountflags import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MS_ATIME,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PER_MOUNT,
    MS_RDONLY,
    MS_REC,
    MS_STRICTATIME,
)
from .errors import RootfsError
from .mountinfo import MountInfo, parse_line, unescape
from .paths import (
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    Root,
    ensure_path,
    fd_path,
    reopen,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..runtime.plan import MountPlan

__all__ = ["host_cgroup2", "host_hierarchies", "mount_cgroup_v1"]

HOST_CGROUP = "/sys/fs/cgroup"
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
# MS_* per-mount bits -> MOUNT_ATTR_* (the atime field apart)
_MS_TO_ATTR = ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID), (MS_NODEV, MOUNT_ATTR_NODEV),
               (MS_NOEXEC, MOUNT_ATTR_NOEXEC), (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
               (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW))


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def _cgroup_lines() -> list[str]:
    """The lines of /proc/self/mountinfo for cgroup/cgroup2 mounts directly below /sys/fs/cgroup
    (or at it, on a v2 host): one read, only those lines looked at twice."""
    found = []
    for line in _read("/proc/self/mountinfo").splitlines():
        if " - cgroup" not in line:
            continue
        fields = line.split()
        point = unescape(fields[4])
        if point == HOST_CGROUP or os.path.dirname(point) == HOST_CGROUP:
            found.append(line)
    return found


def _scan() -> list[_Hierarchy]:
    out = []
    for line in _cgroup_lines():
        fields = line.split()
        dash = fields.index("-", 6)
        if fields[dash + 1] in ("cgroup", "cgroup2"):
            opts = fields[dash + 3].split(",") if len(fields) > dash + 3 else []
            out.append(_Hierarchy(unescape(fields[4]), fields[dash + 1], opts))
    return out


class _Hierarchy:
    """What the cgroup mount needs of a host hierarchy (a MountInfo costs more to build)."""

    __slots__ = ("fstype", "mountpoint", "super_options")

    def __init__(self, mountpoint: str, fstype: str, super_options: list[str]) -> None:
        self.mountpoint, self.fstype, self.super_options = mountpoint, fstype, super_options


def host_hierarchies() -> list[MountInfo]:
    """The cgroup/cgroup2 mounts of this mount namespace directly below /sys/fs/cgroup, or the
    cgroup2 mount at /sys/fs/cgroup itself on a v2 host."""
    return [mi for mi in map(parse_line, _cgroup_lines()) if mi.fstype in ("cgroup", "cgroup2")]


def host_cgroup2() -> str | None:
    return next((h.mountpoint for h in _scan() if h.fstype == "cgroup2"), None)


def _controllers(mi: _Hierarchy | MountInfo) -> list[str]:
    return [o for o in mi.super_options if o not in ("rw", "ro") and not o.startswith("release_agent=")]


def _own_paths() -> dict[frozenset[str], str]:
    """/proc/self/cgroup: controllers of a hierarchy -> this process's group in it."""
    paths: dict[frozenset[str], str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        paths[frozenset(ctrls.split(",")) if ctrls else frozenset()] = path
    return paths


def _attrs(per_mount: int) -> tuple[int, int]:
    """MS_* per-mount bits -> (attr_set, attr_clr) of mount_setattr; the atime field is set only
    when the bits name an atime (else every mount keeps its own)."""
    attr_set = 0
    for ms, attr in _MS_TO_ATTR:
        if per_mount & ms:
            attr_set |= attr
    if not per_mount & MS_ATIME:
        return attr_set, 0
    atime = (MOUNT_ATTR_NOATIME if per_mount & MS_NOATIME
             else MOUNT_ATTR_STRICTATIME if per_mount & MS_STRICTATIME else MOUNT_ATTR_RELATIME)
    return attr_set | atime, MOUNT_ATTR__ATIME


def mount_cgroup_v1(root: Root, m: MountPlan, *, rootless: bool, cgroupns: bool,
                    cgroup_dirs: Mapping[str, str] | None = None) -> None:
    """The ``cgroup`` mount ``m`` (see the module's docstring).  ``cgroup_dirs``: host hierarchy
    mount point -> the container's group directory in it, bound when the container has no
    cgroup namespace of its own (default: this process's groups, from /proc/self/cgroup)."""
    from .mounts import mount_on, remount, set_tree_attributes

    step = f"mount cgroup on {m.destination}"
    hierarchies = _scan()
    per_mount = m.flags & MS_PER_MOUNT
    dst = ensure_path(root, m.destination, step=step)
    try:
        if not any(mi.fstype == "cgroup" for mi in hierarchies):  # a cgroup v2 host
            new = _mount_hierarchy(root, m.destination, dst, None, per_mount, rootless=rootless,
                                   cgroupns=cgroupns, step=step, cgroup_dirs=cgroup_dirs)
            if new >= 0:
                try:
                    remount(new, per_mount, step=step, path=m.destination)
                finally:
                    os.close(new)
            return
        mount_on(dst, "tmpfs", "tmpfs", (m.flags & ~MS_RDONLY & MS_PER_MOUNT), "mode=755",
                 step=step, path=m.destination)
        top = reopen(root, m.destination, dst, step=step)
        made: list[tuple[int, str]] = []  # the binds' fds (remounted when there is no mount_setattr)
        try:
            own: dict[frozenset[str], str] = {}
            for mi in hierarchies:
                if mi.mountpoint == HOST_CGROUP:
                    continue
                name = os.path.basename(mi.mountpoint)
                sub_path = f"{m.destination.rstrip('/')}/{name}"
                sub = _subdir(top, name, sub_path, step)
                try:
                    new = _mount_hierarchy(root, sub_path, sub, mi, per_mount, rootless=rootless,
                                           cgroupns=cgroupns, step=step, own=own, cgroup_dirs=cgroup_dirs)
                    if new >= 0:
                        made.append((new, sub_path))
                finally:
                    os.close(sub)
            _copy_symlinks(top, {os.path.basename(mi.mountpoint) for mi in hierarchies}, step, m.destination)
            attr_set, attr_clr = _attrs(per_mount)
            if not set_tree_attributes(top, attr_set, attr_clr, step=step, path=m.destination):
                for fd, sub_path in made:  # Linux < 5.12: one remount per mount
                    remount(fd, per_mount, step=step, path=sub_path)
                if m.flags & MS_RDONLY:
                    remount(top, MS_RDONLY | per_mount, step=step, path=m.destination)
        finally:
            for fd, _ in made:
                os.close(fd)
            os.close(top)
    finally:
        os.close(dst)


def _subdir(top: int, name: str, path: str, step: str) -> int:
    """``name`` made in the new (empty, ours) tmpfs ``top`` and opened beneath it."""
    try:
        os.mkdir(name, 0o755, dir_fd=top)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RootfsError(exc.errno or 0, step, path) from None
    try:
        return int(_native.openat2(top, name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, _BENEATH))
    except OSError as exc:
        raise RootfsError(exc.errno or 0, step, path) from None


def _mount_hierarchy(root: Root, path: str, dst: int, mi: _Hierarchy | None, per_mount: int, *,
                     rootless: bool, cgroupns: bool, step: str,
                     own: dict[frozenset[str], str] | None = None,
                     cgroup_dirs: Mapping[str, str] | None = None) -> int:
    """Mount one hierarchy on ``dst``: a fresh cgroup mount with the container's cgroup
    namespace (flags set already: -1 is returned), else a bind of the container's group, whose
    new mount's fd is returned (the caller sets its flags and closes it)."""
    from .mounts import mount_on

    fstype = "cgroup2" if mi is None or mi.fstype == "cgroup2" else "cgroup"
    data = None if fstype == "cgroup2" else ",".join(_controllers(mi)) if mi else None
    err = 0
    if cgroupns:
        try:
            mount_on(dst, "cgroup", fstype, per_mount, data, step=step, path=path)
            return -1
        except RootfsError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY) and not rootless:
                raise
            err = exc.errno or 0
    # no cgroup namespace of our own (or refused): bind the host's view of our own group
    host = mi.mountpoint if mi else (host_cgroup2() or HOST_CGROUP)
    source = cgroup_dirs.get(host) if cgroup_dirs else None
    if source is None:
        ctrls = frozenset() if mi is None or fstype == "cgroup2" else frozenset(_controllers(mi))
        if own is None:
            own = {}
        if not own:
            own.update(_own_paths())
        group = own.get(ctrls, "/")
        if "/.." in group or group.startswith(".."):
            # our group lies outside our cgroup namespace's root: it cannot be named from here,
            # and normalising the ".." would climb out of the cgroup filesystem
            raise RootfsError(errno.EPERM, step, path, f"this process's group {group} is outside its "
                              "cgroup namespace: run the container from the host's cgroup namespace")
        source = os.path.normpath(host + "/" + group.lstrip("/"))
    try:
        return _bind_host_dir(root, source, dst, step=step, path=path)
    except RootfsError:
        raise
    except OSError as exc:
        if source == host or exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise RootfsError(exc.errno or err, step, path, f"cannot bind the host's {source}") from None
    try:  # the group is gone (or not there yet): the whole hierarchy
        return _bind_host_dir(root, host, dst, step=step, path=path)
    except RootfsError:
        raise
    except OSError as exc:
        raise RootfsError(exc.errno or err, step, path, f"cannot bind the host's {host}") from None


def _bind_host_dir(root: Root, source: str, dst: int, *, step: str, path: str) -> int:
    """Bind the host directory ``source`` (recursively) onto ``dst``; the new mount's fd.
    open_tree + move_mount; before Linux 5.2 mount(2) through an fd of the source, and the path
    re-resolved to reach the new mount.  Raises OSError when ``source`` cannot be opened."""
    from .mounts import bind_host_path, mount_on

    new = bind_host_path(source, dst, recursive=True, step=step, path=path)
    if new >= 0:
        return new
    sfd = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mount_on(dst, fd_path(sfd), None, MS_BIND | MS_REC, None, step=step, path=path)
    finally:
        os.close(sfd)
    return reopen(root, path, dst, step=step)


def _copy_symlinks(top: int, names: set[str], step: str, dest: str) -> None:
    """The host's ``cpu -> cpu,cpuacct`` links, made in the new tmpfs (fd-relative)."""
    try:
        with os.scandir(HOST_CGROUP) as entries:
            links = [e.name for e in entries if e.is_symlink()]
    except OSError:
        return
    for entry in links:
        try:
            target = os.readlink(os.path.join(HOST_CGROUP, entry))
        except OSError:
            continue
        if target not in names:
            continue
        try:
            os.symlink(target, entry, dir_fd=top)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RootfsError(exc.errno or 0, step, f"{dest.rstrip('/')}/{entry}") from None
