"""The container's filesystem: mounts, devices, masks, pivot_root — every path through fds.

Whole setup, inside the container's new mount namespace (as root of its user namespace)::

    prepare_rootfs(plan, rootless=False, no_pivot=False)
    # = mount_rootfs(plan, rootless=...)   propagation, rootfs bind, plan.mounts, devices
    #   (the runtime runs the createContainer hooks here)
    #   finish_rootfs(plan, no_pivot=...)  process.cwd, maskedPaths, readonlyPaths, ro root,
    #                                      pivot_root

Pieces: ``Root(path)`` (host path + O_PATH fd), ``open_in_root``/``resolve_in_root`` and
``ensure_path``/``make_path`` (openat2 RESOLVE_IN_ROOT; creation through parent fds, links read
and resolved inside), ``apply_mount(root, MountPlan, tree=fd)``, ``detach_sources`` (the
runtime's detached, possibly idmapped, copies of bind sources) and ``userns_fd``,
``mount_on(fd, ...)``, ``remount``, ``create_devices``/``create_device``/``dev_symlinks``/
``bind_console``, ``mask_paths``/``readonly_paths``/``readonly_root``,
``set_tree_propagation``/``bind_root``/``enter_root``.  Failures raise :class:`RootfsError`
(a KernelError: ``errno``, ``step``, ``filename`` = the path inside the container, ``hint``).
Names load lazily.
"""

from __future__ import annotations

from .. import _lazy  # not importlib: it imports warnings

TYPE_CHECKING = False

_EXPORTS = {
    "prepare_rootfs": "prepare",
    "mount_rootfs": "prepare",
    "finish_rootfs": "prepare",
    "RootfsError": "errors",
    "Root": "paths",
    "open_in_root": "paths",
    "resolve_in_root": "paths:open_in_root",
    "ensure_path": "paths",
    "make_path": "paths",
    "detach_sources": "sources",
    "userns_fd": "sources",
    "fd_path": "paths",
    "apply_mount": "mounts",
    "mount_on": "mounts",
    "remount": "mounts",
    "create_devices": "devices",
    "bind_console": "devices",
    "create_device": "devices",
    "dev_symlinks": "devices",
    "needs_dev_setup": "devices",
    "DEFAULT_DEVICES": "devices",
    "Device": "devices",
    "mask_paths": "masks",
    "readonly_paths": "masks",
    "readonly_root": "masks",
    "set_tree_propagation": "pivot",
    "bind_root": "pivot",
    "enter_root": "pivot",
    "MountInfo": "mountinfo",
    "read_mountinfo": "mountinfo",
}

__all__ = [
    "DEFAULT_DEVICES",
    "Device",
    "MountInfo",
    "Root",
    "RootfsError",
    "apply_mount",
    "bind_console",
    "bind_root",
    "create_device",
    "create_devices",
    "detach_sources",
    "dev_symlinks",
    "ensure_path",
    "enter_root",
    "fd_path",
    "finish_rootfs",
    "make_path",
    "mask_paths",
    "mount_on",
    "mount_rootfs",
    "needs_dev_setup",
    "open_in_root",
    "prepare_rootfs",
    "read_mountinfo",
    "readonly_paths",
    "readonly_root",
    "remount",
    "resolve_in_root",
    "set_tree_propagation",
    "userns_fd",
]

if TYPE_CHECKING:  # pragma: no cover
    from .devices import (
        DEFAULT_DEVICES,
        Device,
        bind_console,
        create_device,
        create_devices,
        dev_symlinks,
        needs_dev_setup,
    )
    from .errors import RootfsError
    from .masks import mask_paths, readonly_paths, readonly_root
    from .mountinfo import MountInfo, read_mountinfo
    from .mounts import apply_mount, mount_on, remount
    from .paths import Root, ensure_path, fd_path, make_path, open_in_root
    from .paths import open_in_root as resolve_in_root
    from .pivot import bind_root, enter_root, set_tree_propagation
    from .prepare import finish_rootfs, mount_rootfs, prepare_rootfs
    from .sources import detach_sources, userns_fd


def __getattr__(name: str) -> object:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
