"""The mount tree built once, as a detached tree, and cloned per run (root, Linux 6.15+).

A Sandbox made by root builds its root here, in no mount namespace at all: a tmpfs (``fsopen``
/``fsmount``) with the host's /usr, /etc, /lib* cloned in read-only (``open_tree`` +
``move_mount`` into a detached tree, which Linux allows since 6.15), or a read-only clone of
``rootfs=``; a minimal /dev of binds; the mount points.  Each bind the caller asked for is kept
as a detached clone of its own.  A run's child then takes a copy of the whole tree with one
``open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)``, attaches it, mounts what must be fresh per run
(/tmp, /dev/shm, /proc, the caller's tmpfs), clones the binds in, and pivots: ~15 syscalls
instead of ~45, and no scratch root to pivot through, since no source has to stay visible.

Where this cannot be built (an older kernel refuses ``move_mount`` into a detached tree; an
image's overlay must be made fresh per run; rootless), :mod:`.tree` lays the tree out per run.
"""

from __future__ import annotations

import os

from .. import _native
from ..mountflags import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOVE_MOUNT_F_EMPTY_PATH,
    OPEN_TREE_CLONE,
)
from .errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .options import Bind, TreeOptions

__all__ = ["ENABLED", "Prebuilt", "build"]

#: build trees ahead where the kernel can (tests turn it off to run the per-run layout as root)
ENABLED = True

_RO = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV


class Prebuilt:
    """The detached root (``root``), and a detached tmpfs (``holder``) holding a clone of each
    bind at ``binds[i][0]`` (``"0"``, ``"1"``, ...): a run clones a path of it.  (A run's child
    may clone a tree that ``fsmount`` made, with what was moved into it, but not a bare
    ``open_tree`` clone: EINVAL.)  The Sandbox closes them with :meth:`close`."""

    __slots__ = ("binds", "holder", "root", "root_path")

    def __init__(self) -> None:
        self.root = -1
        self.root_path = ""  # "r" when the root is a clone of rootfs= (held in a tmpfs, see above)
        self.holder = -1
        self.binds: list[tuple[str, Bind]] = []

    def close(self) -> None:
        for fd in (self.root, self.holder):
            if fd >= 0:
                os.close(fd)
        self.root = self.holder = -1
        self.binds = []


def build(o: TreeOptions) -> Prebuilt | None:
    """The tree of ``o`` ahead, or None where this kernel cannot build it (then the tree is
    laid out per run).  No mount point is made here below a path a run mounts a new tmpfs on:
    the run makes those."""
    from .tree import fresh_paths, under

    if not ENABLED or o.lower is not None or o.rootless:
        return None
    fresh = fresh_paths(o)
    made = Prebuilt()
    try:
        made.root = _root(o)
        made.root_path = "r" if o.rootfs is not None else ""
        _dev(made.root, f"{made.root_path}/dev" if made.root_path else "dev")
        for t in o.tmpfs:
            if o.rootfs is None and not under(t.target, fresh, strict=True):
                _mount_point(made.root, t.target, True)
        if o.binds:
            made.holder = _native.sandbox_fsmount("tmpfs", [("mode", "0700"), ("size", "64k")], 0)
        for n, b in enumerate(o.binds):
            name = str(n)
            if b.is_dir:
                os.mkdir(name, 0o700, dir_fd=made.holder)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=made.holder))
            _attach(made.holder, name, b.source, recursive=True,
                    attrs=_RO if b.readonly else MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
            made.binds.append((name, b))
            if o.rootfs is None and not under(b.target, fresh):
                _mount_point(made.root, b.target, b.is_dir)
        if o.rootfs is None:
            _native.mount_setattr(made.root, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0)
    except OSError as exc:
        made.close()
        if exc.errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: a kernel before 6.15
            return None
        raise SandboxError(exc.errno or 5, f"{exc.strerror}: cannot prepare the sandbox's mount tree",
                           step="prepare the mount tree", filename=exc.filename) from None
    return made


def _root(o: TreeOptions) -> int:
    if o.rootfs is not None:
        holder = _native.sandbox_fsmount("tmpfs", [("mode", "0700"), ("size", "64k")], 0)
        try:
            os.mkdir("r", 0o755, dir_fd=holder)
            _attach(holder, "r", o.rootfs, recursive=True, attrs=_RO)
        except BaseException:
            os.close(holder)
            raise
        return holder
    root = _native.sandbox_fsmount("tmpfs", [("mode", "0755"), ("size", "1m")],
                                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
    try:
        for name, link in o.host_entries:
            if link is not None:
                os.symlink(link, name, dir_fd=root)
                continue
            os.mkdir(name, 0o755, dir_fd=root)
            _attach(root, name, f"/{name}", recursive=True, attrs=_RO)
        for name, mode in (("tmp", 0o1777), ("proc", 0o555), ("dev", 0o755)):
            os.mkdir(name, mode, dir_fd=root)
            os.chmod(name, mode, dir_fd=root)  # past the umask
    except BaseException:
        os.close(root)
        raise
    return root


def _dev(root: int, where: str) -> None:
    from .tree import DEV_LINKS, DEV_NODES

    dev = _native.sandbox_fsmount("tmpfs", [("mode", "0755"), ("size", "64k")],
                                  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC)
    try:
        for name in DEV_NODES:
            os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
            # read-only: a uid 0 sandbox owns the host's node (chmod, utimes); writes to a
            # device on a read-only mount still go to the device
            _attach(dev, name, f"/dev/{name}", recursive=False, attrs=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
        for name, target in DEV_LINKS:
            os.symlink(target, name, dir_fd=dev)
        os.mkdir("shm", 0o1777, dir_fd=dev)
        os.chmod("shm", 0o1777, dir_fd=dev)
        _native.mount_setattr(dev, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0)  # its nodes stay openable
        _native.move_mount(dev, "", root, where, MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(dev)


def _attach(parent: int, where: str, source: str, *, recursive: bool, attrs: int) -> None:
    fd = _native.open_tree(-100, source, OPEN_TREE_CLONE | (AT_RECURSIVE if recursive else 0))
    try:
        if attrs:
            _native.mount_setattr(fd, "", AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0), attrs, 0)
        _native.move_mount(fd, "", parent, where, MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(fd)


def _mount_point(root: int, target: str, is_dir: bool) -> None:
    parts = [p for p in target.split("/") if p]
    path = ""
    for part in parts[:-1] if not is_dir else parts:
        path = f"{path}/{part}" if path else part
        try:
            os.mkdir(path, 0o755, dir_fd=root)
        except FileExistsError:
            pass
    if not is_dir:
        os.close(os.open("/".join(parts), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=root))
