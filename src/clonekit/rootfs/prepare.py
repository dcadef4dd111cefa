"""prepare_rootfs(): the whole filesystem setup of a container, in the order runc uses.

It is two halves because the runtime-spec runs the ``createContainer`` hooks between them (in
the container's mount namespace, after the mounts, before pivot_root): :func:`mount_rootfs` then
:func:`finish_rootfs`.
"""

from __future__ import annotations

import os

from ..mountflags import MS_PRIVATE, MS_REC, MS_SLAVE
from .devices import create_devices, needs_dev_setup
from .masks import mask_paths, readonly_paths, readonly_root
from .mounts import apply_mount
from .paths import Root, ensure_path
from .pivot import bind_root, enter_root, set_tree_propagation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..runtime.plan import Plan

__all__ = ["finish_rootfs", "mount_rootfs", "prepare_rootfs"]


def prepare_rootfs(plan: Plan, *, rootless: bool, no_pivot: bool = False) -> None:
    """Build the container's filesystem and enter it.

    Runs in the container's init, inside its new mount namespace, as root of its user namespace,
    before the user's program.  Raises :class:`RootfsError` naming the step, the path and the
    errno.  Same as :func:`mount_rootfs` followed by :func:`finish_rootfs`."""
    mount_rootfs(plan, rootless=rootless)
    finish_rootfs(plan, rootless=rootless, no_pivot=no_pivot)


def mount_rootfs(plan: Plan, *, rootless: bool, cgroup_dirs: Mapping[str, str] | None = None,
                 trees: Sequence[int] = (), device_trees: Sequence[int] = ()) -> None:
    """First half: propagation of "/" (rslave, or rprivate when the config asks private) so
    nothing flows back to the host, the rootfs bound onto itself, ``plan.mounts`` in order,
    then (unless /dev is a bind of the host's) the default devices, ``plan.devices`` and the
    /dev symlinks — mknod, or bind mounts of the host's nodes when ``rootless``.

    ``cgroup_dirs`` (host cgroup hierarchy mount point -> the container's group directory in
    it) is what a ``cgroup`` mount binds when the container has no cgroup namespace; without
    it, the groups this process is in (/proc/self/cgroup) at that moment.  ``trees``: one fd
    (or -1) per mount, the runtime's detached copies of bind sources (:mod:`.sources`);
    ``device_trees``: the same per ``plan.devices``, nodes the runtime made; each is closed by
    the time this returns."""
    left = [fd for fd in trees if fd >= 0]  # not yet handed on (apply_mount closes what it gets)
    devices = [fd for fd in device_trees if fd >= 0]
    try:
        pre = MS_PRIVATE | MS_REC if plan.rootfs_propagation & MS_PRIVATE else MS_SLAVE | MS_REC
        set_tree_propagation(pre)
        path = bind_root(plan.root)
        cgroupns = plan.namespace("cgroup") is not None
        root = Root(path, resolved=True)
        try:
            for i, m in enumerate(plan.mounts):
                tree = trees[i] if i < len(trees) else -1
                if tree >= 0:
                    left.remove(tree)
                apply_mount(root, m, rootless=rootless, cgroupns=cgroupns, cgroup_dirs=cgroup_dirs,
                            tree=tree)
                if m.destination == "/":  # a mount over the whole rootfs: what comes next goes on it
                    root.close()
                    root = Root(path, resolved=True)
            if needs_dev_setup(plan):
                given, devices = devices, []
                create_devices(root, plan.devices, rootless=rootless,
                               trees=device_trees if given else ())
        finally:
            root.close()
    finally:
        for fd in (*left, *devices):
            os.close(fd)


def finish_rootfs(plan: Plan, *, rootless: bool = False, no_pivot: bool = False) -> None:
    """Second half: a missing ``process.cwd`` made, maskedPaths, readonlyPaths, read-only root
    (all still through the runtime's own /proc), then pivot_root (MS_MOVE + chroot with ``no_pivot``) and
    ``plan.rootfs_propagation`` on the new "/".  ``rootless`` is accepted for symmetry."""
    with Root(plan.root) as root:
        if plan.process is not None and plan.process.cwd != "/":
            # made now, as runc does, for a read-only root would refuse it after pivot_root
            os.close(ensure_path(root, plan.process.cwd, step=f"make process.cwd {plan.process.cwd}"))
        mask_paths(root, plan.masked_paths)
        readonly_paths(root, plan.readonly_paths)
        if plan.root_readonly:
            readonly_root(root)
        path = root.path
    enter_root(path, no_pivot=no_pivot)
    if plan.rootfs_propagation and not plan.rootfs_propagation & MS_PRIVATE:
        set_tree_propagation(plan.rootfs_propagation)
