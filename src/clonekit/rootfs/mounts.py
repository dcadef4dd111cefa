"""config.json ``mounts``: each MountPlan lands on an fd resolved inside the rootfs.

Every destination is an O_PATH fd that :mod:`.paths` resolved with RESOLVE_IN_ROOT and checked to
be inside the rootfs.  A bind *source* is opened on the host first (its fd is what gets bound, so
the checked file is the mounted file): open_tree(OPEN_TREE_CLONE) copies it, move_mount attaches
the copy onto the destination fd, and the copy's fd is what remount/propagation then act on.
Other mounts go through mount(2) onto ``/proc/self/fd/N`` of the destination fd, which is then
re-resolved to reach the new mount (an fd opened before a mount still names the covered dentry);
so are binds on kernels before 5.2.  Propagation and the recursive attributes (rro, rnosuid,
...) are set with mount_setattr(2) on that fd, for a whole subtree in one atomic call; on kernels
before 5.12 (ENOSYS) with mount(2), one submount at a time.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _native
from ..mountflags import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_RECURSIVE,
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_IDMAP,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_EMPTY_PATH,
    MS_ATIME,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PER_MOUNT,
    MS_PRIVATE,
    MS_PROPAGATION,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_UNBINDABLE,
    OPEN_TREE_CLONE,
)
from .errors import RootfsError
from .mountinfo import current_flags, read_mountinfo
from .paths import Root, ensure_path, fd_path, make_path, open_in_root, reopen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..runtime.plan import MountPlan

__all__ = ["PROC_ALLOWED", "apply_mount", "apply_recursive", "bind_fd", "bind_host_path", "mount_on",
           "remount", "remount_tree", "set_attributes", "set_propagation", "set_tree_attributes"]

# Files under /proc a container may get a mount on (lxcfs and friends), as runc allows.
PROC_ALLOWED = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid",
})
# Filesystems whose destination must be a real directory, not reached through a symlink
# (CVE-2019-16884: a /proc symlink made the runtime write LSM labels to a fake file).
_NO_SYMLINK_TYPES = frozenset({"proc", "sysfs"})
# Filesystems a rootless container cannot mount without its own namespace of that kind:
# bind the host's instead (as runc does).
_ROOTLESS_FALLBACK = {"sysfs": "/sys", "mqueue": "/dev/mqueue", "cgroup2": "/sys/fs/cgroup"}


def _kind(m: MountPlan) -> str:
    return "bind" if m.is_bind else (m.type or "none")


def _step(m: MountPlan) -> str:
    return f"mount {m.idmap or _kind(m)} on {m.destination}"


def mount_on(fd: int, source: str | None, fstype: str | None, flags: int, data: str | None, *,
             step: str, path: str, hint: str = "") -> None:
    """mount(2) onto the file ``fd`` refers to (through its /proc/self/fd magic link)."""
    try:
        _native.mount(source, fd_path(fd), fstype, flags, data or None)
    except OSError as exc:
        raise RootfsError(exc.errno or 0, step, path, hint or _hint(exc.errno or 0, fstype, data)) from None


def _hint(err: int, fstype: str | None, data: str | None) -> str:
    if err == errno.ENODEV:
        return f"the kernel does not know the filesystem type {fstype!r} (is its module loaded?)"
    if err == errno.EPERM:
        return ("not permitted in this user namespace: proc needs a new pid namespace, sysfs a "
                "new network namespace, and mounts locked by the host cannot be changed")
    if err == errno.EINVAL and data:
        return f"the kernel refused the options {data!r} (a uid=/gid= that is not mapped?)"
    if err == errno.ENOTDIR:
        return "the source is a directory and the destination a file, or the other way round"
    return ""


def remount(fd: int, set_flags: int, clear_flags: int = 0, *, step: str, path: str) -> None:
    """Change the per-mount flags of the mount at ``fd``, keeping those not named (so nosuid,
    nodev... inherited from the host stay: they are locked in a user namespace anyway)."""
    cur = current_flags(fd)
    new = ((cur & ~MS_ATIME) | (set_flags & MS_PER_MOUNT)) & ~clear_flags
    if set_flags & MS_ATIME:
        new = (new & ~MS_ATIME) | (set_flags & MS_ATIME)
    elif clear_flags & MS_RELATIME and cur & MS_RELATIME:
        new |= MS_STRICTATIME
    if new == cur & ~MS_ATIME and not set_flags & MS_ATIME and not clear_flags & MS_RELATIME:
        return  # nothing changes: spare the syscall
    try:
        _native.mount(None, fd_path(fd), None, MS_REMOUNT | MS_BIND | new, None)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EPERM:
            hint = ("a user namespace cannot clear flags the host set on the source mount "
                    "(ro, nosuid, nodev, noexec, atime): drop the clearing option")
        raise RootfsError(exc.errno or 0, step, path, hint) from None


# MOUNT_ATTR_* -> MS_* for the per-mount bits (the fallback without mount_setattr)
ATTR_TO_MS = {
    MOUNT_ATTR_RDONLY: MS_RDONLY, MOUNT_ATTR_NOSUID: MS_NOSUID, MOUNT_ATTR_NODEV: MS_NODEV,
    MOUNT_ATTR_NOEXEC: MS_NOEXEC, MOUNT_ATTR_NODIRATIME: MS_NODIRATIME,
    MOUNT_ATTR_NOSYMFOLLOW: MS_NOSYMFOLLOW,
}

# the kernel lacks mount_setattr (Linux < 5.12) / open_tree (< 5.2): set at the first ENOSYS
_no_setattr = False
_no_open_tree = False


def _setattr(fd: int, attr_set: int, attr_clr: int, propagation: int, *, recursive: bool,
             step: str, path: str) -> bool:
    """One mount_setattr(2) on the mount ``fd`` is on (and every mount below it when
    ``recursive``): atomic, nothing changes if any mount of the subtree refuses.  False when the
    kernel has no mount_setattr (the caller falls back to mount(2)); raises RootfsError else."""
    global _no_setattr
    if _no_setattr:
        return False
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    try:
        _native.mount_setattr(fd, "", flags, attr_set, attr_clr, propagation)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            _no_setattr = True
            return False
        hint = ""
        if exc.errno == errno.EPERM:
            hint = ("a user namespace cannot clear flags the host set on a mount of this tree "
                    "(ro, nosuid, nodev, noexec, atime): drop the clearing option")
        elif exc.errno == errno.EBUSY:
            hint = "a file below it is open for writing, so it cannot become read-only"
        elif exc.errno == errno.EINVAL:
            hint = (f"the kernel refused the attributes set={attr_set:#x} clear={attr_clr:#x} "
                    f"propagation={propagation:#x} (nosymfollow needs Linux 5.14)")
        raise RootfsError(exc.errno or 0, step, path, hint) from None
    return True


def set_attributes(fd: int, attr_set: int, attr_clr: int = 0, *, step: str, path: str) -> bool:
    """MOUNT_ATTR_* bits on the one mount ``fd`` is on (its other flags kept): one
    mount_setattr(2).  False when the kernel has none (< 5.12): the caller uses :func:`remount`."""
    return _setattr(fd, attr_set, attr_clr, 0, recursive=False, step=step, path=path)


def set_tree_attributes(fd: int, attr_set: int, attr_clr: int = 0, *, step: str, path: str) -> bool:
    """MOUNT_ATTR_* bits on the mount ``fd`` is on and every mount below it, atomically: one
    mount_setattr(AT_RECURSIVE).  False when the kernel has none (< 5.12)."""
    if not attr_set and not attr_clr:
        return True
    return _setattr(fd, attr_set, attr_clr, 0, recursive=True, step=step, path=path)


def set_propagation(fd: int, flags: int, *, step: str, path: str) -> None:
    """Make the mount at ``fd`` (and the mounts below it with MS_REC) shared, slave, private or
    unbindable: mount_setattr on the fd itself, mount(2) on its magic link before Linux 5.12."""
    if _setattr(fd, 0, 0, flags & MS_PROPAGATION, recursive=bool(flags & MS_REC), step=step, path=path):
        return
    try:
        _native.mount(None, fd_path(fd), None, flags, None)
    except OSError as exc:
        raise RootfsError(exc.errno or 0, step, path) from None


def apply_recursive(root: Root, fd: int, set_attr: int, clear_attr: int, *, step: str, path: str) -> None:
    """Apply MOUNT_ATTR_* bits to the mount at ``fd`` and every mount below it.

    One mount_setattr(AT_RECURSIVE) on ``fd``; on a kernel without it (< 5.12) each mount of the
    subtree is remounted in turn instead (parents first), found in /proc/self/mountinfo."""
    if set_attr & MOUNT_ATTR_IDMAP:
        raise RootfsError(errno.ENOSYS, step, path,
                          "idmapped mounts need a detached mount (open_tree), which clonekit "
                          "does not make yet")
    if (set_attr | clear_attr) & MOUNT_ATTR__ATIME:
        # the atime field is an enum: the kernel wants all of it cleared to select a value
        clear_attr |= MOUNT_ATTR__ATIME
    if _setattr(fd, set_attr, clear_attr, 0, recursive=True, step=step, path=path):
        return
    remount_tree(root, fd, set_attr, clear_attr, step=step, path=path)


def remount_tree(root: Root, fd: int, set_attr: int, clear_attr: int, *, step: str, path: str) -> None:
    """apply_recursive with mount(2) alone: MS_REMOUNT|MS_BIND of each mount of the subtree."""
    ms_set = ms_clear = 0
    for attr, ms in ATTR_TO_MS.items():
        if set_attr & attr:
            ms_set |= ms
        if clear_attr & attr:
            ms_clear |= ms
    if (set_attr | clear_attr) & MOUNT_ATTR__ATIME:
        atime = set_attr & MOUNT_ATTR__ATIME
        ms_set |= (MS_NOATIME if atime == MOUNT_ATTR_NOATIME
                   else MS_STRICTATIME if atime == MOUNT_ATTR_STRICTATIME else MS_RELATIME)
    top = os.readlink(fd_path(fd))
    remount(fd, ms_set, ms_clear, step=step, path=path)
    below = [mi for mi in read_mountinfo() if mi.mountpoint.startswith(top.rstrip("/") + "/")]
    for mi in below:
        sub = path.rstrip("/") + mi.mountpoint[len(top.rstrip("/")):]
        try:
            sub_fd = open_in_root(root, sub, step=step)
        except RootfsError as exc:
            if exc.errno == errno.ENOENT:
                continue  # covered by a later mount: not reachable, nothing to change
            raise
        try:
            remount(sub_fd, ms_set, ms_clear, step=step, path=sub)
        finally:
            os.close(sub_fd)


def bind_fd(src_fd: int, dst: int, *, recursive: bool, step: str, path: str) -> int:
    """Bind what ``src_fd`` names onto ``dst`` (both fds: no path is looked up again) and return
    an O_PATH-like fd of the new mount: open_tree(OPEN_TREE_CLONE) makes a detached copy,
    move_mount attaches it, and the fd keeps naming it, so remount, propagation and the
    recursive attributes reach this very mount.  -1 if the kernel lacks open_tree (< 5.2)."""
    global _no_open_tree
    if _no_open_tree:
        return -1
    try:
        tree = _native.open_tree(src_fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | (AT_RECURSIVE * recursive))
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            _no_open_tree = True
            return -1
        err = exc.errno or 0
        hint = _hint(err, None, None)
        if err == errno.EINVAL:
            hint = ("the source is an unbindable mount, or in a user namespace has mounts below "
                    "it that a plain bind would uncover (use rbind)")
        raise RootfsError(err, step, path, hint) from None
    try:
        _native.move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
    except OSError as exc:
        os.close(tree)  # the detached copy goes with its last fd
        raise RootfsError(exc.errno or 0, step, path, _hint(exc.errno or 0, None, None)) from None
    return tree


def bind_host_path(source: str, dst: int, *, recursive: bool, step: str, path: str) -> int:
    """:func:`bind_fd` for a host path: open_tree(OPEN_TREE_CLONE) straight from ``source`` (one
    syscall less than opening it first), move_mount onto ``dst``; the new mount's fd.  -1 if the
    kernel lacks open_tree.  A ``source`` that cannot be opened raises a plain OSError (the
    caller decides); a refused move_mount raises RootfsError."""
    global _no_open_tree
    if _no_open_tree:
        return -1
    try:
        tree = _native.open_tree(AT_FDCWD, source, OPEN_TREE_CLONE | (AT_RECURSIVE * recursive))
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
        _no_open_tree = True
        return -1
    try:
        _native.move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
    except OSError as exc:
        os.close(tree)
        raise RootfsError(exc.errno or 0, step, path, _hint(exc.errno or 0, None, None)) from None
    return tree


def _check_destination(m: MountPlan) -> None:
    dest = m.destination.rstrip("/") or "/"
    if dest == "/proc" or not dest.startswith("/proc/"):
        if dest == "/proc" and m.type not in (None, "proc") and not m.is_bind:
            raise RootfsError(errno.EPERM, _step(m), dest,
                              f"only procfs may be mounted on /proc, not {m.type}")
        return
    if dest in PROC_ALLOWED:
        return
    raise RootfsError(errno.EPERM, _step(m), dest,
                      "mounts below /proc are refused (they could hide the kernel's controls); "
                      "allowed: " + ", ".join(sorted(PROC_ALLOWED)))


def _open_source(m: MountPlan, *, unreachable_ok: bool = False) -> int:
    """O_PATH fd of the bind source; -1 if ``unreachable_ok`` and we may not reach it."""
    src = m.source or ""
    try:
        return os.open(src, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if unreachable_ok and exc.errno in (errno.EACCES, errno.EPERM):
            return -1
        hint = ""
        if exc.errno == errno.ENOENT:
            hint = f"the bind source {src} does not exist on the host"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            hint = f"the bind source {src} is not reachable by the container's user"
        raise RootfsError(exc.errno or 0, _step(m), m.destination, hint) from None


def apply_mount(root: Root, m: MountPlan, *, rootless: bool = False, cgroupns: bool = True,
                cgroup_dirs: Mapping[str, str] | None = None, tree: int = -1) -> None:
    """Perform one MountPlan inside ``root`` (before pivot_root).  ``cgroup_dirs``: for a
    ``cgroup`` mount without a cgroup namespace, host hierarchy mount point -> the container's
    group directory (see :func:`.cgroups.mount_cgroup_v1`).  ``tree``: the runtime's detached
    copy of the bind source (:func:`.sources.detach_sources`), always closed here: attached if
    the mount is idmapped or the source cannot be opened from here, else unused."""
    try:
        _check_destination(m)
        if m.type == "cgroup" and not m.is_bind:
            from .cgroups import mount_cgroup_v1

            mount_cgroup_v1(root, m, rootless=rootless, cgroupns=cgroupns, cgroup_dirs=cgroup_dirs)
            return
        src_fd = -1
        if not m.is_bind and tree >= 0:
            os.close(tree)
            tree = -1
        if m.is_bind:
            if m.idmap and tree < 0:
                raise RootfsError(errno.EINVAL, _step(m), m.destination,
                                  "an idmapped mount is attached from the detached copy the runtime "
                                  "makes (rootfs.sources.detach_sources), and none was given")
            if not m.idmap:
                # our own open first: our copy keeps the host's flags locked in a user namespace
                src_fd = _open_source(m, unreachable_ok=tree >= 0)
                if src_fd >= 0 and tree >= 0:
                    os.close(tree)
                    tree = -1
        # from here _mount_on_destination owns `tree`
        given, tree = tree, -1
        _mount_on_destination(root, m, src_fd, given, rootless=rootless)
    finally:
        if tree >= 0:
            os.close(tree)


def _mount_on_destination(root: Root, m: MountPlan, src_fd: int, tree: int, *, rootless: bool) -> None:
    step = _step(m)
    kind = "dir"
    data = m.data
    if m.is_bind and not stat.S_ISDIR(os.fstat(src_fd if src_fd >= 0 else tree).st_mode):
        kind = "file"
    try:
        if m.type in _NO_SYMLINK_TYPES:
            # the destination itself must be reached without symlinks (create it if missing)
            dst = open_in_root(root, m.destination, step=step, no_symlinks=True, missing_ok=True)
            if dst < 0:
                os.close(ensure_path(root, m.destination, step=step))
                dst = open_in_root(root, m.destination, step=step, no_symlinks=True)
        else:
            dst, created = make_path(root, m.destination, step=step, kind=kind)
            if m.type == "tmpfs" and not created:
                data = _tmpfs_mode(dst, data)
        try:
            owned, tree = tree, -1
            _mount_one(root, m, src_fd, dst, data, rootless=rootless, tree=owned)
        finally:
            os.close(dst)
    finally:
        if src_fd >= 0:
            os.close(src_fd)
        if tree >= 0:
            os.close(tree)


def _tmpfs_mode(dst: int, data: str) -> str:
    """A tmpfs over a directory of the image takes that directory's mode unless ``mode=`` is
    given (as runc does: /tmp of the image, 1777, stays 1777; a 0750 /srv stays 0750)."""
    if any(word.startswith("mode=") for word in data.split(",")):
        return data
    st = os.fstat(dst)
    if not stat.S_ISDIR(st.st_mode):
        return data
    mode = f"mode={stat.S_IMODE(st.st_mode):04o}"
    return f"{mode},{data}" if data else mode


def _mount_one(root: Root, m: MountPlan, src_fd: int, dst: int, data: str, *, rootless: bool,
               tree: int = -1) -> None:
    """Mount onto ``dst``; ``tree`` (a detached mount, attached instead of ``src_fd``) is closed
    here, whatever happens."""
    step, path = _step(m), m.destination
    flags = m.flags & ~(MS_PROPAGATION | MS_REMOUNT)
    new = -1
    if tree >= 0:
        try:
            _native.move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
        except OSError as exc:
            os.close(tree)
            raise RootfsError(exc.errno or 0, step, path, _hint(exc.errno or 0, None, None)) from None
        new = tree  # it names the attached mount now: remount and propagation act on it
        extra = flags & ~(MS_BIND | MS_REC)
    elif m.is_bind:
        new = bind_fd(src_fd, dst, recursive=bool(flags & MS_REC), step=step, path=path)
        if new < 0:  # no open_tree (Linux < 5.2)
            mount_on(dst, fd_path(src_fd), None, MS_BIND | (flags & MS_REC), None, step=step, path=path)
        extra = flags & ~(MS_BIND | MS_REC)
    else:
        try:
            mount_on(dst, m.source or m.type, m.type, flags, data, step=step, path=path)
            extra = 0
        except RootfsError as exc:
            host = _ROOTLESS_FALLBACK.get(m.type or "")
            if m.type == "cgroup2":
                from .cgroups import host_cgroup2

                host = host_cgroup2()
            if not (rootless and host and exc.errno == errno.EPERM):
                raise
            # not allowed here (no netns/ipcns/cgroupns of our own): bind the host's
            try:
                hfd = os.open(host, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                raise exc from None
            try:
                mount_on(dst, fd_path(hfd), None, MS_BIND | MS_REC, None, step=step, path=path)
            finally:
                os.close(hfd)
            extra = flags
    if new < 0:
        new = reopen(root, path, dst, step=step)
    try:
        if extra & MS_PER_MOUNT or m.clear_flags & MS_PER_MOUNT:
            remount(new, extra, m.clear_flags & MS_PER_MOUNT, step=step, path=path)
        if m.propagation:
            set_propagation(new, m.propagation, step=f"{step} ({_prop_name(m.propagation)})", path=path)
        if m.recursive_set or m.recursive_clear:
            apply_recursive(root, new, m.recursive_set, m.recursive_clear, step=step, path=path)
    finally:
        os.close(new)


def _prop_name(flags: int) -> str:
    names = {MS_SHARED: "shared", MS_SLAVE: "slave", MS_PRIVATE: "private", MS_UNBINDABLE: "unbindable"}
    name = next((n for bit, n in names.items() if flags & bit), "?")
    return ("r" if flags & MS_REC else "") + name
