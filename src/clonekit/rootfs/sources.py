"""Bind sources the runtime opens for the container's init, before the init exists.

Two kinds of bind need the runtime's own privileges on the host, as crun and runc do it:

* **idmapped mounts** (``mounts[].uid/gidMappings``, the ``idmap``/``ridmap`` options): the kernel
  idmaps only a detached tree, with CAP_SYS_ADMIN over the user namespace owning the source's
  filesystem (the host's).  The runtime makes the copy (open_tree OPEN_TREE_CLONE), sets
  MOUNT_ATTR_IDMAP with a user namespace holding the mount's mappings (or the container's own),
  and the init attaches it (move_mount) where the destination resolves in the rootfs.
* **a bind in a user namespace** whose source the container's root cannot reach (a 0700 directory
  of host root on the way): the init first opens the source itself (its copy keeps the host's
  flags locked against the container), and takes the runtime's copy only when that is refused.

And ``linux.devices`` in a user namespace, where mknod is refused: the runtime makes each node
(as crun does) on a private tmpfs that is mounted nowhere (fsopen/fsmount: no nodev, and nothing
of the host's changes), owned by the container's ids, and hands the init a detached bind of it,
so a device the host lacks (or has with other numbers) is still the one the config asks for.

Each fd is inherited by the init (taken before the clone, O_CLOEXEC: the user's program never
sees one) and closed by the runtime once the init exists.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import _bits, _native
from ..mountflags import AT_EMPTY_PATH, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_IDMAP, MS_REC, OPEN_TREE_CLONE
from .errors import RootfsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..runtime.plan import DevicePlan, IdMapping, MountPlan

__all__ = ["detach_devices", "detach_sources", "idmap_own", "userns_fd"]


Maps = tuple[tuple["IdMapping", ...], tuple["IdMapping", ...]]


def detach_sources(mounts: Sequence[MountPlan], *, user_ns: bool, container_maps: Maps,
                   container_userns: str | None = None, privileged: bool = True,
                   defer_own: bool = False) -> tuple[int, ...]:
    """One fd per mount (-1: the init opens the source itself): a detached copy of the bind
    source, idmapped where asked.  ``user_ns``: the container has a user namespace (its root
    may not reach every source); ``container_maps``: its uid/gid mappings, for ``idmap`` with
    none of its own; ``container_userns``: the path of the user namespace it joins, if it joins
    one.  ``privileged``: the runtime holds CAP_SYS_ADMIN on the host (else only idmapped
    mounts are tried, and refused with the reason).  ``defer_own``: leave the copies that take
    the container's own mappings for :func:`idmap_own`, once its new user namespace exists
    (spares a namespace made only for them)."""
    fds: list[int] = []
    namespaces: dict[Maps, int] = {}
    try:
        for m in mounts:
            if not m.is_bind or not (m.idmap or (user_ns and privileged)):
                fds.append(-1)
                continue
            tree = _clone_source(m, required=bool(m.idmap))
            fds.append(tree)
            if tree >= 0 and m.idmap and not (defer_own and not m.uid_mappings):
                maps: Maps = (m.uid_mappings, m.gid_mappings) if m.uid_mappings else container_maps
                if maps not in namespaces:
                    namespaces[maps] = (os.open(container_userns, os.O_RDONLY | os.O_CLOEXEC)
                                        if not maps[0] and container_userns else userns_fd(*maps))
                _idmap(tree, namespaces[maps], m)
    except BaseException:
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in namespaces.values():
            os.close(fd)
    return tuple(fds)


def idmap_own(mounts: Sequence[MountPlan], trees: Sequence[int], userns: str) -> None:
    """Idmap the copies :func:`detach_sources` left with ``defer_own``, with the container's
    user namespace (``userns``: its ns file, maps written) before the init attaches them."""
    if not any(t >= 0 and m.idmap and not m.uid_mappings for m, t in zip(mounts, trees, strict=False)):
        return
    fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for m, tree in zip(mounts, trees, strict=False):
            if tree >= 0 and m.idmap and not m.uid_mappings:
                _idmap(tree, fd, m)
    finally:
        os.close(fd)


def _step(m: MountPlan) -> str:
    return f"mount {m.idmap or 'bind'} on {m.destination}"


def _clone_source(m: MountPlan, *, required: bool) -> int:
    """open_tree(OPEN_TREE_CLONE) of the source: a detached copy (of the whole subtree for rbind).
    -1 when not ``required`` and the kernel or our privileges refuse it (the init tries alone)."""
    flags = OPEN_TREE_CLONE | (AT_RECURSIVE if m.flags & MS_REC else 0)
    try:
        return int(_native.open_tree(AT_FDCWD, m.source or "", flags))
    except OSError as exc:
        err = exc.errno or 0
        if err == errno.ENOENT:
            raise RootfsError(err, _step(m), m.destination,
                              f"the bind source {m.source} does not exist on the host") from None
        if not required and err in (errno.EPERM, errno.ENOSYS, errno.EINVAL):
            return -1
        hint = ""
        if err == errno.EPERM:
            hint = "an idmapped mount needs CAP_SYS_ADMIN in the initial user namespace"
        elif err == errno.ENOSYS:
            hint = "idmapped mounts need open_tree and mount_setattr (Linux 5.12 or later)"
        elif err == errno.EINVAL:
            hint = f"the bind source {m.source} is an unbindable mount"
        raise RootfsError(err, _step(m), m.destination, hint) from None


def _idmap(tree: int, ns_fd: int, m: MountPlan) -> None:
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if m.idmap == "ridmap" else 0)
    try:
        _native.mount_setattr(tree, "", flags, MOUNT_ATTR_IDMAP, 0, 0, ns_fd)
    except OSError as exc:
        err = exc.errno or 0
        hint = ""
        if err == errno.EINVAL:
            hint = (f"the filesystem of {m.source} (or one below it, for ridmap) cannot be idmapped: "
                    "it lacks FS_ALLOW_IDMAP, is already idmapped, or belongs to another user "
                    "namespace; use idmap on a filesystem that supports it (ext4, xfs, btrfs, tmpfs)")
        elif err == errno.EPERM:
            hint = "the mappings' user namespace is the initial one, or we lack CAP_SYS_ADMIN over it"
        elif err == errno.ENOSYS:
            hint = "idmapped mounts need mount_setattr (Linux 5.12 or later)"
        raise RootfsError(err, _step(m), m.destination, hint) from None


def userns_fd(uid_mappings: Sequence[IdMapping], gid_mappings: Sequence[IdMapping]) -> int:
    """An fd of a new user namespace with these mappings, for MOUNT_ATTR_IDMAP: a child is cloned
    into it, its maps written, its ns file opened, and it exits (the fd keeps the namespace)."""
    from ..ns.idmap import IdMap, write_maps
    from ..process import clone

    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        task = clone(_bits.NEWUSER)
        if task == 0:  # the child: wait until the parent has what it needs, then go
            try:
                os.close(w)
                os.read(r, 1)
            finally:
                os._exit(0)
        assert not isinstance(task, int)
        try:
            write_maps(task.pid, IdMap((x.container_id, x.host_id, x.size) for x in uid_mappings),
                       IdMap((x.container_id, x.host_id, x.size) for x in gid_mappings))
            return os.open(f"/proc/{task.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(w)
            w = -1
            task.wait()
            task.close()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


_FORMATS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def detach_devices(devices: Sequence[DevicePlan], maps: Maps) -> tuple[int, ...]:
    """One detached bind per device: its node made on a private tmpfs (mounted nowhere), owned by
    the host ids its uid/gid map to in ``maps`` (the container's), with the config's mode."""
    if not devices:
        return ()
    try:
        fs = int(_native.sandbox_fsmount("tmpfs", [("mode", "0700"), ("size", "4k")], 0))
    except OSError as exc:
        raise RootfsError(exc.errno or 0, "make the device nodes", None,
                          "a private tmpfs for them needs fsopen/fsmount (Linux 5.2) and "
                          "CAP_SYS_ADMIN") from None
    fds: list[int] = []
    try:
        for i, dev in enumerate(devices):
            step, name = f"mknod {dev.path}", str(i)
            rdev = 0 if dev.type == "p" else os.makedev(dev.major, dev.minor)
            try:
                os.mknod(name, _FORMATS[dev.type], rdev, dir_fd=fs)
                os.chmod(name, dev.file_mode & 0o7777, dir_fd=fs)  # not the umask's
                os.chown(name, _to_host(dev.uid, maps[0]), _to_host(dev.gid, maps[1]), dir_fd=fs)
                fds.append(int(_native.open_tree(fs, name, OPEN_TREE_CLONE)))
            except OSError as exc:
                raise RootfsError(exc.errno or 0, step, dev.path) from None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(fs)  # the nodes' binds keep the tmpfs
    return tuple(fds)


def _to_host(ident: int, maps: Sequence[IdMapping]) -> int:
    """The host id ``ident`` of the container is (0, host root, when it is not mapped)."""
    for m in maps:
        if m.container_id <= ident < m.container_id + m.size:
            return m.host_id + ident - m.container_id
    return 0


def source_kind(tree: int) -> str:
    """"dir" or "file": what the destination must be for this source."""
    return "dir" if stat.S_ISDIR(os.fstat(tree).st_mode) else "file"
