"""prepare_rootfs(): the whole filesystem setup of a container, in the order runc uses."""

from __future__ import annotations

from .devices import create_devices, needs_dev_setup
from .masks import mask_paths, readonly_paths, readonly_root
from .mountinfo import MS
from .mounts import apply_mount
from .paths import Root
from .pivot import bind_root, enter_root, set_tree_propagation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..runtime.plan import Plan

__all__ = ["prepare_rootfs"]


def prepare_rootfs(plan: Plan, *, rootless: bool, no_pivot: bool = False) -> None:
    """Build the container's filesystem and enter it.

    Runs in the container's init, inside its new mount namespace, as root of its user namespace,
    before the user's program: propagation of "/" (rslave unless the config asks rprivate),
    rootfs bound onto itself, ``plan.mounts`` in order, default devices + ``plan.devices`` + /dev
    symlinks (mknod, or bind mounts when ``rootless``), maskedPaths, readonlyPaths, read-only
    root, then pivot_root (MS_MOVE + chroot with ``no_pivot``) and ``plan.rootfs_propagation``
    on the new "/".  Raises :class:`RootfsError` naming the step, the path and the errno.
    """
    pre = MS.PRIVATE | MS.REC if plan.rootfs_propagation & MS.PRIVATE else MS.SLAVE | MS.REC
    set_tree_propagation(pre)
    path = bind_root(plan.root)
    cgroupns = plan.namespace("cgroup") is not None
    with Root(path) as root:
        for m in plan.mounts:
            apply_mount(root, m, rootless=rootless, cgroupns=cgroupns)
        if needs_dev_setup(plan):
            create_devices(root, plan.devices, rootless=rootless)
        mask_paths(root, plan.masked_paths)
        readonly_paths(root, plan.readonly_paths)
        if plan.root_readonly:
            readonly_root(root)
    enter_root(path, no_pivot=no_pivot)
    if plan.rootfs_propagation and not plan.rootfs_propagation & MS.PRIVATE:
        set_tree_propagation(plan.rootfs_propagation)
