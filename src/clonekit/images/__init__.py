"""OCI images as root filesystems: an OCI image layout directory, an oci-archive or a
docker-archive (``docker save``, ``podman save``) unpacked layer by layer into a cache, and the
image config as the process to run.

    from clonekit.images import unpack
    image = unpack("busybox.tar", ref="busybox")   # -> UnpackedImage
    image.rootfs        # Path of the cached rootfs: never write to it (overlay or copy it)
    image.config.argv   # entrypoint + cmd; .env, .working_dir, .user
    image.digest        # "sha256:..." (the config digest, the image id)

Pieces: :mod:`.source` (reading and picking the image), :mod:`.layers` (applying a layer
through fds), :mod:`.stream` (decompression, digest checks), :mod:`.cache`, :mod:`.copy`
(a rootfs copied for a bundle), :mod:`.users` (``User`` to uid/gid from the image's files).
Names load lazily.
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False

_EXPORTS = {
    "unpack": "unpacking",
    "UnpackedImage": "unpacking",
    "ImageConfig": "config",
    "ImageError": "errors",
    "copy_tree": "copy",
    "resolve_user": "users",
    "default_cache_dir": "cache",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .cache import default_cache_dir as default_cache_dir
    from .config import ImageConfig as ImageConfig
    from .copy import copy_tree as copy_tree
    from .errors import ImageError as ImageError
    from .unpacking import UnpackedImage as UnpackedImage
    from .unpacking import unpack as unpack
    from .users import resolve_user as resolve_user


def __getattr__(name: str) -> object:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
