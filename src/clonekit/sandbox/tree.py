"""The sandbox's mount tree, as child ops.  Two ways to it: :func:`build_prebuilt` clones a
tree built once ahead (:mod:`.prebuilt`, root on Linux 6.15+) and adds what is fresh per run;
:func:`build` lays the whole tree out per run (rootless, images, older kernels), in
bubblewrap's shape, by raw syscalls:

1. the mount namespace is made private, a scratch tmpfs is mounted over the host's /tmp and
   becomes the root by ``pivot_root``, with the host's root kept at /oldroot (every source is
   read from there, so nothing the sandbox mounts can hide a source);
2. /newroot is built in it: a tmpfs with the host's /usr, /etc, /lib* bound read-only (or the
   given rootfs bound read-only, or an overlay over an image's rootfs), a fresh /tmp, a minimal
   /dev (null zero full random urandom tty, bound from the host), /proc of the new PID
   namespace, the caller's binds and tmpfs;
3. /newroot becomes the root (``pivot_root(".", ".")``) and the old one is detached, scratch
   and host together.

/proc is mounted while the host's /proc is still visible: a user namespace may only mount a proc
that some mount already shows in full.
"""

from __future__ import annotations

import os

from ..mountflags import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_RECURSIVE,
    MNT_DETACH,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MOVE_MOUNT_F_EMPTY_PATH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    OPEN_TREE_CLONE,
)
from .nr import O_CLOEXEC, O_CREAT
from .ops import Ops, c_str, mount_attr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .options import Bind, TreeOptions
    from .prebuilt import Prebuilt

__all__ = ["DEV_NODES", "build"]

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"))
# what runc makes read-only in /proc: for a process that is uid 0 of the host, without
# capabilities, most sysctls would otherwise still be writable (they check the uid)
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
# what runc masks in /proc (its maskedPaths): they show the host, not the sandbox (uid 0 reads
# the host's keyrings in /proc/keys, its timers in /proc/timer_list); files get /dev/null bound
# over them, directories an empty read-only tmpfs
PROC_MASKED = ("acpi", "asound", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
               "sched_debug", "scsi")
NEW = "/newroot"
OLD = "/oldroot"
_RO = mount_attr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)


def build(ops: Ops, o: TreeOptions) -> None:
    ops.mount("make the mount namespace private", None, "/", None, MS_REC | MS_PRIVATE)
    ops.mount("mount the scratch tmpfs", "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    ops.call("chdir /tmp (scratch)", "chdir", c_str("/tmp"))
    ops.mkdir("newroot", step="mkdir /newroot (scratch)")
    ops.mkdir("oldroot", step="mkdir /oldroot (scratch)")
    ops.call("pivot_root into the scratch tmpfs", "pivot_root", c_str("."), c_str("oldroot"))
    ops.call("chdir / (scratch)", "chdir", c_str("/"))
    _root(ops, o)
    ops.mkdir(f"{NEW}/tmp", 0o1777)
    ops.mount("mount a tmpfs on /tmp", "tmpfs", f"{NEW}/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
              f"mode=1777,size={o.tmp_size}")
    _dev(ops)
    ops.mkdir(f"{NEW}/proc", 0o555)
    ops.mount("mount /proc", "proc", f"{NEW}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if o.protect_proc:
        _protect_proc(ops, f"{NEW}/proc")
    for t in sorted(o.tmpfs, key=lambda t: t.target.count("/")):
        _mkdirs(ops, t.target)
        ops.mount(f"mount a tmpfs on {t.target}", "tmpfs", NEW + t.target, "tmpfs",
                  MS_NOSUID | MS_NODEV, f"mode=1777,size={t.size}")
    for b in sorted(o.binds, key=lambda b: b.target.count("/")):
        _mount_point(ops, b)
        ops.mount(f"bind {b.source} on {b.target}", OLD + b.source, NEW + b.target, None, MS_BIND | MS_REC)
        attr = _RO if b.readonly else mount_attr(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        ops.setattr(f"set the flags of {b.target}", NEW + b.target, AT_RECURSIVE, attr)
    if o.rootfs is None and o.lower is None:
        ops.setattr("make the root tmpfs read-only", NEW, 0, mount_attr(MOUNT_ATTR_RDONLY))


def build_prebuilt(ops: Ops, o: TreeOptions, pre: Prebuilt) -> None:
    """The run's tree from a tree built ahead (:mod:`.prebuilt`): clone it, attach it, mount
    what is fresh per run, clone the binds in.  Paths are relative to the attached tree."""
    ops.mount("make the mount namespace private", None, "/", None, MS_REC | MS_PRIVATE)
    tree = ops.call("clone the prepared mount tree", "open_tree", pre.root, c_str(pre.root_path),
                    OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC | (0 if pre.root_path else AT_EMPTY_PATH))
    ops.call("attach the mount tree", "move_mount", tree, b"\0", AT_FDCWD, c_str("/tmp"),
             MOVE_MOUNT_F_EMPTY_PATH)
    ops.call("close the mount tree", "close", tree)
    ops.call("chdir into the mount tree", "chdir", c_str("/tmp"))
    ops.mount("mount a tmpfs on /tmp", "tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV,
              f"mode=1777,size={o.tmp_size}")
    ops.mount("mount a tmpfs on /dev/shm", "tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=1777,size=64m")
    ops.mount("mount /proc", "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if o.protect_proc:
        _protect_proc(ops, "proc")
    fresh = fresh_paths(o)
    for t in sorted(o.tmpfs, key=lambda t: t.target.count("/")):
        if under(t.target, fresh, strict=True):
            _mkdirs(ops, t.target, base="")
        ops.mount(f"mount a tmpfs on {t.target}", "tmpfs", t.target.lstrip("/"), "tmpfs",
                  MS_NOSUID | MS_NODEV, f"mode=1777,size={t.size}")
    for name, b in sorted(pre.binds, key=lambda item: item[1].target.count("/")):
        clone = ops.call(f"clone the bind of {b.source}", "open_tree", pre.holder, c_str(name),
                         OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC)
        if under(b.target, fresh):
            _mount_point(ops, b, base="")
        ops.call(f"bind {b.source} on {b.target}", "move_mount", clone, b"\0", AT_FDCWD,
                 c_str(b.target.lstrip("/")), MOVE_MOUNT_F_EMPTY_PATH)
        ops.call(f"close the bind of {b.source}", "close", clone)


def fresh_paths(o: TreeOptions) -> tuple[str, ...]:
    """Where a run mounts a new tmpfs: mount points below them are made per run."""
    return ("/tmp", "/dev/shm", *(t.target for t in o.tmpfs))


def under(path: str, tops: tuple[str, ...], *, strict: bool = False) -> bool:
    return any((path == t and not strict) or path.startswith(t.rstrip("/") + "/") for t in tops)


def enter(ops: Ops, *, prebuilt: bool = False) -> None:
    """The last mount steps, after everything that still needs the host's files (sethostname
    and the loopback need none): the new root becomes ``/`` and the rest is detached."""
    if not prebuilt:
        ops.call("chdir /newroot", "chdir", c_str(NEW))
    ops.call("pivot_root into the new root", "pivot_root", c_str("."), c_str("."))
    ops.call("detach the old root", "umount2", c_str("."), MNT_DETACH)
    ops.call("chdir /", "chdir", c_str("/"))


def _root(ops: Ops, o: TreeOptions) -> None:
    if o.rootfs is not None:
        ops.mount(f"bind the rootfs {o.rootfs}", OLD + o.rootfs, NEW, None, MS_BIND | MS_REC)
        ops.setattr(f"make the rootfs {o.rootfs} read-only", NEW, AT_RECURSIVE, _RO)
        return
    if o.lower is not None:
        ops.mkdir("/upper")
        ops.mkdir("/work")
        data = f"lowerdir={OLD}{o.lower},upperdir=/upper,workdir=/work"
        if o.rootless:
            data += ",userxattr"  # trusted.* xattrs need host root
        ops.mount(f"mount an overlay on the image {o.lower}", "overlay", NEW, "overlay",
                  MS_NOSUID | MS_NODEV, data)
        return
    ops.mount("mount the root tmpfs", "tmpfs", NEW, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for name, link in o.host_entries:
        if link is not None:
            ops.call(f"symlink /{name} -> {link}", "symlinkat", c_str(link), -100, c_str(f"{NEW}/{name}"))
            continue
        ops.mkdir(f"{NEW}/{name}")
        ops.mount(f"bind /{name}", f"{OLD}/{name}", f"{NEW}/{name}", None, MS_BIND | MS_REC)
        ops.setattr(f"make /{name} read-only", f"{NEW}/{name}", AT_RECURSIVE, _RO)


def _dev(ops: Ops) -> None:
    dev = f"{NEW}/dev"
    ops.mkdir(dev)
    ops.mount("mount a tmpfs on /dev", "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEV_NODES:
        fd = ops.call(f"create /dev/{name}", "openat", -100, c_str(f"{dev}/{name}"),
                      O_CREAT | O_CLOEXEC, 0o666)
        ops.call(f"close /dev/{name}", "close", fd)
        ops.mount(f"bind /dev/{name}", f"{OLD}/dev/{name}", f"{dev}/{name}", None, MS_BIND)
        # read-only: a uid 0 sandbox owns the host's node (chmod, utimes); writes to a device on
        # a read-only mount still go to the device
        ops.setattr(f"make the bind of /dev/{name} read-only", f"{dev}/{name}", 0,
                    mount_attr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID))
    for name, target in DEV_LINKS:
        ops.call(f"symlink /dev/{name}", "symlinkat", c_str(target), -100, c_str(f"{dev}/{name}"))
    ops.mkdir(f"{dev}/shm", 0o1777)
    ops.setattr("make /dev read-only", dev, 0, mount_attr(MOUNT_ATTR_RDONLY))  # its nodes stay openable
    ops.mount("mount a tmpfs on /dev/shm", "tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=1777,size=64m")


def _protect_proc(ops: Ops, proc: str) -> None:
    null = proc.removesuffix("proc") + "dev/null"
    for name in PROC_MASKED:
        path = f"{proc}/{name}"
        if os.path.isdir(f"/proc/{name}"):  # the same kernel: the same /proc
            ops.call(f"mask /proc/{name}", "mount", c_str("tmpfs"), c_str(path), c_str("tmpfs"),
                     MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, c_str("size=4k,mode=0555"), ok=2)
        else:
            ops.call(f"mask /proc/{name}", "mount", c_str(null), c_str(path), 0, MS_BIND, 0,
                     ok=2)  # ENOENT: this kernel has no such entry
    for name in PROC_READONLY:
        path = f"{proc}/{name}"
        ops.call(f"bind /proc/{name}", "mount", c_str(path), c_str(path), 0, MS_BIND | MS_REC, 0,
                 ok=2)  # ENOENT: this kernel has no such entry
        ops.call(f"make /proc/{name} read-only", "mount_setattr", AT_FDCWD, c_str(path), AT_RECURSIVE,
                 _RO, len(_RO), ok=2)


def _mount_point(ops: Ops, b: Bind, base: str = NEW) -> None:
    if b.is_dir:
        _mkdirs(ops, b.target, base)
        return
    _mkdirs(ops, os.path.dirname(b.target), base)
    path = f"{base}{b.target}" if base else b.target.lstrip("/")
    fd = ops.call(f"create the mount point {b.target}", "openat", AT_FDCWD, c_str(path),
                  O_CREAT | O_CLOEXEC, 0o644)
    ops.call(f"close {b.target}", "close", fd)


def _mkdirs(ops: Ops, target: str, base: str = NEW) -> None:
    path = base
    for part in target.strip("/").split("/"):
        if part:
            path = f"{path}/{part}" if path else part
            ops.mkdir(path, step=f"mkdir {target}" if not base else None)
