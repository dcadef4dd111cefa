"""Where an image comes from: an OCI image layout directory, an oci-archive (a tar of one), or a
docker-archive (``docker save``/``podman save --format docker-archive``: manifest.json, a config
file and a tar per layer).  Reading picks one image (by ref, then by this machine's platform)
and checks every document against the digest that names it; the layers are only opened here,
read and checked by :mod:`.layers` as they are applied.
"""

from __future__ import annotations

import errno
import os

from .. import _jsonc
from .._record import record
from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import tarfile
    from typing import IO, Any

__all__ = ["Image", "Layer", "read_image"]

INDEX_TYPES = frozenset({
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
})
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = frozenset("0123456789abcdef")
_MAX_DOCUMENT = 16 << 20  # an index, manifest or config larger than this is not an image's
_MAX_MEMBERS = 100_000  # in an archive: its members are all kept in memory while it is read
_MAX_LAYERS = 1000
_REF_ANNOTATIONS = ("org.opencontainers.image.ref.name", "io.containerd.image.name")
# uname's machine -> the OCI (Go) architecture and variant
_ARCHES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
}


@record(frozen=True)
class Layer:
    path: str              # inside the source: blobs/sha256/<hex>, or <dir>/layer.tar
    digest: str | None     # the blob's digest when a manifest names it (OCI), else None
    diff_id: str | None    # the uncompressed tar's digest, from the config's rootfs.diff_ids
    size: int              # the blob's size in bytes (-1: unknown)


@record(frozen=True)
class Image:
    source: str            # the path the caller gave
    name: str              # the ref it was found by, or its digest: for messages
    config_digest: str     # "sha256:<hex>" of the config document as stored
    config: bytes
    layers: tuple[Layer, ...]


def platform() -> tuple[str, str, str]:
    """This machine as an OCI platform: (os, architecture, variant)."""
    machine = os.uname().machine
    arch, variant = _ARCHES.get(machine, (machine, ""))
    return "linux", arch, variant


# --- stores: a directory or a tar, read by relative path ---------------------------------------

class _Store:
    source: str

    def open(self, path: str) -> IO[bytes]:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def has(self, path: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read(self, path: str, what: str) -> bytes:
        try:
            with self.open(path) as f:
                data = f.read(_MAX_DOCUMENT + 1)
        except OSError as exc:
            raise ImageError(f"{self.source}: cannot read {what} {path}: {exc.strerror or exc}",
                             err=exc.errno, filename=self.source) from None
        if len(data) > _MAX_DOCUMENT:
            raise ImageError(f"{self.source}: {what} {path} is larger than {_MAX_DOCUMENT >> 20} MiB; "
                             "it is no image document")
        return data


class _DirStore(_Store):
    """A directory: an OCI layout (or an unpacked docker-archive, whose manifest.json names its
    files: a name is taken below the directory, ``..`` and ``/`` cannot lead out of it, nor can
    a symlink in it: files are opened with RESOLVE_IN_ROOT, and only regular files or fifos, a
    blob piped in; never a device)."""

    def __init__(self, source: str):
        self.source = source

    def _path(self, path: str) -> str:
        return os.path.join(self.source, _clean(path))

    def open(self, path: str) -> IO[bytes]:
        from .users import open_regular

        top = os.open(self.source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return os.fdopen(open_regular(top, _clean(path), fifo=True), "rb")
        finally:
            os.close(top)

    def size(self, path: str) -> int:
        try:
            return os.stat(self._path(path)).st_size
        except OSError:
            return -1  # said when it is opened

    def has(self, path: str) -> bool:
        return os.path.exists(self._path(path))


class _TarStore(_Store):
    def __init__(self, source: str):
        import tarfile

        self.source = source
        try:
            self.tar = tarfile.open(source, "r:*")  # noqa: SIM115 (kept open: close() closes it)
            members = []
            for member in self.tar:  # not getmembers(): each member is kept, so they are counted
                members.append(member)
                if len(members) > _MAX_MEMBERS:
                    self.tar.close()
                    raise ImageError(f"{source}: the archive has more than {_MAX_MEMBERS} members; an "
                                     "image archive holds a few per layer, so this is no image",
                                     filename=source)
        except (OSError, tarfile.TarError, RecursionError) as exc:  # Recursion: chained headers
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{source}: not a readable image archive (a docker-archive or an "
                             f"oci-archive tar): {exc}", err=getattr(exc, "errno", None),
                             filename=source) from None
        self.members: dict[str, tarfile.TarInfo] = {_clean(m.name): m for m in members}

    def _member(self, path: str) -> tarfile.TarInfo:
        member = self.members.get(_clean(path))
        if member is None:
            raise ImageError(f"{self.source}: the archive has no {path}", err=errno.ENOENT,
                             filename=self.source)
        return member

    def open(self, path: str) -> IO[bytes]:
        f = self.tar.extractfile(self._member(path))  # follows links inside the archive
        if f is None:
            raise ImageError(f"{self.source}: {path} in the archive is not a file", filename=self.source)
        return f

    def size(self, path: str) -> int:
        member = self._member(path)
        if member.islnk() or member.issym():  # docker save links a layer it holds twice
            member = self.members.get(_clean(_link_target(member)), member)
        return member.size if member.isreg() else -1

    def has(self, path: str) -> bool:
        return _clean(path) in self.members

    def close(self) -> None:
        self.tar.close()


def _clean(name: str) -> str:
    """``name`` relative to the store's top: ``./``, ``..`` and a leading ``/`` resolved as
    if the top were ``/``."""
    return os.path.normpath("/" + name).lstrip("/")


def _link_target(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return member.linkname
    return os.path.join(os.path.dirname(member.name), member.linkname)


def open_store(source: str) -> _Store:
    if os.path.isdir(source):
        return _DirStore(source)
    if not os.path.exists(source):
        raise ImageError(f"{source}: no such image (give an OCI image layout directory, or a "
                         "docker-archive or oci-archive tar)", err=errno.ENOENT, filename=source)
    return _TarStore(source)


# --- reading -------------------------------------------------------------------------------------

def read_image(source: str, ref: str | None = None) -> tuple[Image, _Store]:
    """The image ``source`` holds (the one named ``ref`` when it holds several) and the open
    store its layers are read from (the caller closes it)."""
    store = open_store(source)
    try:
        if store.has("index.json"):
            image = _read_oci(store, ref)
        elif store.has("manifest.json"):
            image = _read_docker(store, ref)
        else:
            raise ImageError(f"{source}: neither an OCI image layout (no index.json) nor a "
                             "docker-archive (no manifest.json)", filename=source)
    except BaseException:
        store.close()
        raise
    return image, store


def _json(store: _Store, path: str, what: str, digest: str | None = None) -> tuple[Any, bytes]:
    data = store.read(path, what)
    if digest is not None:
        _verify(store, data, digest, f"{what} {path}")
    try:
        return _jsonc.loads(data.decode()), data
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError too; RecursionError: [[[[...
        raise ImageError(f"{store.source}: {what} {path} is not valid JSON: {exc}",
                         filename=store.source) from None


def valid_digest(digest: object) -> bool:
    """``sha256:<64 lowercase hex>`` or ``sha512:<128>``: the only digests taken as blob names."""
    if not isinstance(digest, str):
        return False
    algorithm, _, hexdigest = digest.partition(":")
    return len(hexdigest) == _DIGEST_LENGTHS.get(algorithm, -1) and set(hexdigest) <= _HEX


def new_hash(algorithm: str) -> Any:
    """A sha256/sha512 object from the builtin modules (hashlib would load OpenSSL: ~5 ms on a
    cache hit, where only small documents are hashed)."""
    try:  # Python 3.12+: one module for the sha2 family
        import _sha2  # type: ignore[import-not-found,unused-ignore]

        return _sha2.sha256() if algorithm == "sha256" else _sha2.sha512()
    except ImportError:
        pass
    try:  # Python 3.11
        if algorithm == "sha256":
            import _sha256  # type: ignore[import-not-found,unused-ignore]

            return _sha256.sha256()
        import _sha512  # type: ignore[import-not-found,unused-ignore]

        return _sha512.sha512()
    except ImportError:  # a build without the builtin hashes
        import hashlib

        return hashlib.new(algorithm)


def sha256_of(data: bytes) -> str:
    h = new_hash("sha256")
    h.update(data)
    return "sha256:" + h.hexdigest()


def _verify(store: _Store, data: bytes, digest: str, what: str) -> None:
    algorithm, _, want = digest.partition(":")
    h = new_hash(algorithm)
    h.update(data)
    got = h.hexdigest()
    if got != want:
        raise ImageError(f"{store.source}: {what} does not match its digest {digest} (it hashes to "
                         f"{algorithm}:{got}): the image is damaged or was changed",
                         filename=store.source)


def _blob_path(store: _Store, descriptor: object, what: str) -> tuple[str, str]:
    if not isinstance(descriptor, dict):
        raise ImageError(f"{store.source}: a {what} descriptor is not a JSON object: {descriptor!r}")
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not valid_digest(digest):
        raise ImageError(f"{store.source}: the {what} descriptor's digest {digest!r} is not "
                         "sha256:<64 hex> or sha512:<128 hex>")
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}", digest


def ref_matches(ref: str, name: str) -> bool:
    """Whether the image name ``name`` (a RepoTag, a ref.name annotation) is what ``ref`` asks
    for: equal, equal once ``:latest`` is implied, equal past a registry/namespace prefix
    (``busybox`` finds ``docker.io/library/busybox:latest``), or ``name`` is a bare tag equal
    to ``ref``'s tag (``busybox:1.36`` finds ``1.36``)."""
    if ref == name:
        return True

    def tagged(text: str) -> str:
        if "@" in text or ":" in text.rsplit("/", 1)[-1]:
            return text
        return text + ":latest"

    want, have = tagged(ref), tagged(name)
    if have == want or have.endswith("/" + want):
        return True
    # a bare tag (skopeo's oci:DIR:TAG writes ref.name "TAG"): ref's own tag
    last = ref.rsplit("/", 1)[-1]
    return not any(c in name for c in "/:@") and ":" in last and last.rsplit(":", 1)[1] == name


def _names(descriptor: dict[str, Any]) -> list[str]:
    notes = descriptor.get("annotations") or {}
    return [notes[key] for key in _REF_ANNOTATIONS if isinstance(notes.get(key), str)]


def _platform_ok(descriptor: dict[str, Any]) -> int:
    """0: another platform; 1: no platform given or a partial match; 2: this machine exactly."""
    plat = descriptor.get("platform")
    if not isinstance(plat, dict):
        return 1
    want_os, want_arch, want_variant = platform()
    if plat.get("os") != want_os or plat.get("architecture") != want_arch:
        return 0
    return 2 if plat.get("variant", "") in ("", want_variant) else 1


def _is_attestation(descriptor: dict[str, Any]) -> bool:
    notes = descriptor.get("annotations") or {}
    return "vnd.docker.reference.type" in notes or (descriptor.get("platform") or {}).get("os") == "unknown"


def _pick(store: _Store, manifests: list[Any], ref: str | None, where: str) -> dict[str, Any]:
    found = [m for m in manifests if isinstance(m, dict) and not _is_attestation(m)]
    if ref is not None and where == "index.json":
        named = [m for m in found if any(ref_matches(ref, n) for n in _names(m)) or m.get("digest") == ref]
        if not named:
            have = sorted({n for m in found for n in _names(m)}) or ["(none: the images carry no names)"]
            raise ImageError(f"{store.source}: no image named {ref!r}; it holds {', '.join(have)}",
                             filename=store.source)
        found = named
    scored = [(_platform_ok(m), m) for m in found]
    best = max((score for score, _ in scored), default=0)
    fits = [m for score, m in scored if score == best and score > 0]
    if not fits:
        plat = "/".join(p for p in platform() if p)
        raise ImageError(f"{store.source}: {where} has no image for this machine ({plat})",
                         filename=store.source)
    if len(fits) > 1 and len({m.get("digest") for m in fits}) > 1:
        have = sorted({n for m in fits for n in _names(m)})
        raise ImageError(f"{store.source}: holds {len(fits)} images ({', '.join(have) or 'unnamed'}); "
                         "name one with ref= (--ref)", filename=store.source)
    return fits[0]


def _read_oci(store: _Store, ref: str | None) -> Image:
    layout, _ = _json(store, "oci-layout", "the layout marker") if store.has("oci-layout") else ({}, b"")
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if version is not None and not str(version).startswith("1."):
        raise ImageError(f"{store.source}: OCI image layout version {version} is not 1.x",
                         filename=store.source)
    doc, _ = _json(store, "index.json", "the index")
    where, name = "index.json", ref or ""
    for _ in range(8):  # an index may name an index (a multi-platform image); not forever
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(manifests, list):
            raise ImageError(f"{store.source}: {where} has no manifests list", filename=store.source)
        chosen = _pick(store, manifests, ref, where)
        path, digest = _blob_path(store, chosen, "manifest")
        name = name or (_names(chosen) or [digest])[0]
        doc, _ = _json(store, path, "manifest", digest)
        if not isinstance(doc, dict):
            raise ImageError(f"{store.source}: manifest {path} is not a JSON object", filename=store.source)
        if chosen.get("mediaType") in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES or (
                "manifests" in doc and "layers" not in doc):
            where = f"index {digest}"
            continue
        return _oci_manifest(store, doc, name, path)
    raise ImageError(f"{store.source}: indexes nest more than 8 deep", filename=store.source)


def _oci_manifest(store: _Store, doc: dict[str, Any], name: str, where: str) -> Image:
    config_path, config_digest = _blob_path(store, doc.get("config"), "config")
    config_doc, config = _json(store, config_path, "config", config_digest)
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"{store.source}: manifest {where} has no layers list", filename=store.source)
    diff_ids = _diff_ids(store, config_doc, len(layers))
    out = []
    for descriptor, diff_id in zip(layers, diff_ids, strict=True):
        path, digest = _blob_path(store, descriptor, "layer")
        size = descriptor.get("size")
        out.append(Layer(path=path, digest=digest, diff_id=diff_id,
                         size=size if isinstance(size, int) else -1))
    return Image(source=store.source, name=name, config_digest=sha256_of(config) if
                 config_digest.startswith("sha512:") else config_digest, config=config, layers=tuple(out))


def _diff_ids(store: _Store, config: Any, count: int) -> list[str | None]:
    if count > _MAX_LAYERS:  # each layer is opened and read in turn: 100000 of one blob took a minute
        raise ImageError(f"{store.source}: the image has {count} layers, more than {_MAX_LAYERS}; "
                         "no image has so many (Docker builds stop at 127)", filename=store.source)
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        return [None] * count
    if len(ids) != count or not all(valid_digest(i) for i in ids):
        raise ImageError(f"{store.source}: the config's rootfs.diff_ids ({len(ids)}) do not match "
                         f"the {count} layers", filename=store.source)
    return list(ids)


def _read_docker(store: _Store, ref: str | None) -> Image:
    doc, _ = _json(store, "manifest.json", "the archive manifest")
    if not isinstance(doc, list) or not doc:
        raise ImageError(f"{store.source}: manifest.json lists no image", filename=store.source)
    entries = [e for e in doc if isinstance(e, dict)]
    if ref is not None:
        entries = [e for e in entries if any(ref_matches(ref, t) for t in e.get("RepoTags") or ())]
        if not entries:
            have = sorted({t for e in doc if isinstance(e, dict) for t in e.get("RepoTags") or ()})
            raise ImageError(f"{store.source}: no image named {ref!r}; it holds "
                             f"{', '.join(have) or '(none: no RepoTags)'}", filename=store.source)
    if len(entries) > 1:
        have = sorted({t for e in entries for t in e.get("RepoTags") or ()})
        raise ImageError(f"{store.source}: holds {len(entries)} images ({', '.join(have) or 'untagged'}); "
                         "name one with ref= (--ref)", filename=store.source)
    entry = entries[0]
    config_path, layer_paths = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_path, str) or not isinstance(layer_paths, list) or \
            not all(isinstance(p, str) for p in layer_paths):
        raise ImageError(f"{store.source}: manifest.json's entry lacks Config or Layers",
                         filename=store.source)
    config_doc, config = _json(store, config_path, "config")
    diff_ids = _diff_ids(store, config_doc, len(layer_paths))
    layers = tuple(Layer(path=p, digest=None, diff_id=d, size=store.size(p))
                   for p, d in zip(layer_paths, diff_ids, strict=True))
    tags = entry.get("RepoTags") or []
    digest = sha256_of(config)
    return Image(source=store.source, name=ref or (tags[0] if tags else digest), config_digest=digest,
                 config=config, layers=layers)
