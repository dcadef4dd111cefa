"""``unpack(source)``: an image (OCI layout, oci-archive, docker-archive) as a cached rootfs."""

from __future__ import annotations

import os

from .. import _jsonc
from .._record import record
from . import cache
from .config import ImageConfig, parse_config
from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .source import Image, _Store

__all__ = ["UnpackedImage", "unpack"]


@record(frozen=True)
class UnpackedImage:
    """An extracted image.  ``rootfs`` is shared by every user of the cache: read-only by
    convention (mount an overlay on it, or copy it); ``digest`` is the config digest (the image
    id), which names the cache entry."""

    rootfs: Path
    config: ImageConfig
    digest: str


def unpack(source: str | os.PathLike[str], *, ref: str | None = None,
           cache_dir: str | os.PathLike[str] | None = None) -> UnpackedImage:
    """Extract the image ``source`` holds (the one named ``ref`` if several; the manifest for
    this machine's platform) into the cache, unless it is there already, and return it.

    Raises :class:`ImageError` naming the file, layer and member when the image cannot be read
    or a member is refused (a path out of the rootfs, a digest that does not match)."""
    from pathlib import Path

    from .source import read_image

    where = os.fspath(source)
    image, store = read_image(where, ref)
    try:
        config = parse_config(_config_doc(image), f"{where}: config {image.config_digest}")
        rootless = cache.unprivileged()
        top = os.fspath(cache_dir) if cache_dir is not None else cache.default_cache_dir()
        key = cache.entry_key(image.config_digest, rootless=rootless)
        entry = os.path.join(top, key)
        cache.prepare(top)  # also on a hit: only a directory of ours alone is trusted
        if not cache.present(entry):
            with cache.locked(top, key):
                if not cache.present(entry):  # another caller may have made it while we waited
                    _extract_entry(image, store, top, key, entry, rootless=rootless)
    finally:
        store.close()
    return UnpackedImage(rootfs=Path(entry, "rootfs"), config=config, digest=image.config_digest)


def _config_doc(image: Image) -> object:
    try:
        return _jsonc.loads(image.config.decode())
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ImageError(f"{image.source}: the config {image.config_digest} is not valid JSON: {exc}",
                         filename=image.source) from None


def _extract_entry(image: Image, store: _Store, top: str, key: str, entry: str, *, rootless: bool) -> None:
    temp = cache.new_temp(top, key)
    try:
        os.mkdir(os.path.join(temp, "rootfs"), 0o755)
        extract(image, store, os.path.join(temp, "rootfs"), rootless=rootless)
        with open(os.path.join(temp, "config.json"), "wb") as f:
            f.write(image.config)
        os.rename(temp, entry)  # the entry appears whole, or not at all
    except BaseException:
        cache.remove_tree(temp)
        raise


def extract(image: Image, store: _Store, rootfs: str, *, rootless: bool) -> None:
    """Apply ``image``'s layers in order onto the empty directory ``rootfs``."""
    import gzip
    import tarfile
    import zlib

    from .layers import Extraction
    from .progress import Progress
    from .stream import LayerStream

    done = Extraction(rootfs, rootless=rootless)
    try:
        count = len(image.layers)
        for i, layer in enumerate(image.layers, 1):
            name = layer.digest or layer.path
            where = f"{image.source}: layer {i}/{count} {name}"
            try:
                blob = store.open(layer.path)
            except OSError as exc:
                raise ImageError(f"{where}: cannot open {layer.path}: {exc.strerror or exc}",
                                 err=exc.errno, filename=image.source) from None
            bar = Progress(f"layer {i}/{count} {name[:19]}", layer.size)
            stream = LayerStream(blob, where=where, digest=layer.digest, diff_id=layer.diff_id,
                                 on_read=bar.update)
            try:
                done.apply(stream.tar(), where)
                stream.finish()
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise ImageError(f"{where}: the layer is damaged (a cut or corrupt tar or compressed "
                                 f"stream): {exc}", filename=image.source) from None
            except RecursionError:  # tarfile reads each pax/GNU long-name header by recursion
                raise ImageError(f"{where}: the layer chains more extended (pax, GNU long name) "
                                 "headers than tarfile can read; no tar writer makes such a chain",
                                 filename=image.source) from None
            finally:
                stream.close()
                bar.close()
        done.finish()
    except OSError as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{image.source}: extracting into {rootfs}: {exc.strerror or exc}",
                         err=exc.errno, filename=rootfs) from None
    finally:
        done.close()
