"""A runtime bundle from an image: ``<dir>/config.json`` (what ``clonekit spec`` writes, with the
image's process) and ``<dir>/rootfs`` (a copy of the cached rootfs: the container may write to
it, the cache never changes)."""

from __future__ import annotations

import json
import os

from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from .config import ImageConfig

__all__ = ["DEFAULT_PATH", "process_for", "write_bundle"]

# what Docker and podman give a container whose image sets no PATH
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def process_for(config: ImageConfig, rootfs: str, where: str) -> dict[str, object]:
    """The config.json ``process`` of an image: args = Entrypoint + Cmd, its Env (PATH added
    when it has none), WorkingDir (/ when empty), User as numbers from the image's files."""
    from .users import resolve_user

    args = list(config.argv)
    if not args:
        raise ImageError(f"{where}: the image names no command (its Entrypoint and Cmd are empty); "
                         "edit process.args of a bundle written from `clonekit spec` instead")
    env = list(config.env)
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, DEFAULT_PATH)
    cwd = config.working_dir or "/"
    if not cwd.startswith("/"):
        cwd = "/" + cwd  # Docker takes a relative WorkingDir from /
    uid, gid, groups = resolve_user(rootfs, config.user)
    user: dict[str, object] = {"uid": uid, "gid": gid}
    if groups:
        user["additionalGids"] = list(groups)
    return {"terminal": False, "user": user, "args": args, "env": env, "cwd": cwd}


def write_bundle(image: str | os.PathLike[str], bundle: str | os.PathLike[str], *, ref: str | None = None,
                 rootless: bool = False, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Unpack ``image`` (cached) and write the bundle ``bundle`` (made if missing; it must hold
    neither config.json nor rootfs).  The bundle directory is made 0700: the rootfs holds the
    image's setuid files and devices, which no other user of this machine may reach (as in
    containerd's and podman's storage).  Returns the config.json path."""
    from ..runtime.defaults import default_config
    from .cache import remove_tree
    from .copy import copy_tree
    from .unpacking import unpack

    top = os.fspath(bundle)
    config_path = os.path.join(top, "config.json")
    rootfs = os.path.join(top, "rootfs")
    for path in (config_path, rootfs):
        if os.path.lexists(path):
            raise ImageError(f"{path} exists: write the bundle into a new or empty directory",
                             filename=path)
    unpacked = unpack(image, ref=ref, cache_dir=cache_dir)
    try:
        os.makedirs(top, mode=0o700, exist_ok=True)
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # before the copy: its setuid files and devices are for the container, never another user
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageError(f"cannot make the bundle directory {top}: {exc.strerror}", err=exc.errno,
                         filename=top) from None
    copy_tree(unpacked.rootfs, rootfs)
    try:
        doc = default_config(rootless=rootless)
        process = doc["process"]
        assert isinstance(process, dict)
        process.update(process_for(unpacked.config, rootfs, os.fspath(image)))
        doc["root"] = {"path": "rootfs", "readonly": False}  # the bundle's own copy: writable
        doc.setdefault("annotations", {})
        annotations = doc["annotations"]
        assert isinstance(annotations, dict)
        if ref:
            annotations["org.opencontainers.image.ref.name"] = ref
        annotations["org.opencontainers.image.digest"] = unpacked.digest
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(doc, indent="\t") + "\n")
    except BaseException:
        remove_tree(rootfs)
        raise
    return config_path
