"""Hand-built images for the image tests: layers made with tarfile in memory, written as an OCI
image layout directory, an oci-archive or a docker-archive.

A layer is a list of entries made by :func:`f` (file), :func:`d` (directory), :func:`sym`,
:func:`hard`, :func:`dev`, :func:`fifo` and :func:`wh` (a whiteout: ``wh("a/x")`` hides a/x,
``wh("c/", opaque=True)`` makes c opaque).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from typing import Any

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if ARCH != "arm64" else "amd64"
MTIME = 1_500_000_000


def _info(name: str, kind: bytes, *, mode: int, uid: int = 0, gid: int = 0, mtime: int = MTIME,
          xattrs: dict[str, str] | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info


def f(name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.REGTYPE, mode=mode, **kw)
    info.size = len(data)
    return info, data


def d(name: str, mode: int = 0o755, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.DIRTYPE, mode=mode, **kw), b""


def sym(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.SYMTYPE, mode=0o777, **kw)
    info.linkname = target
    return info, b""


def hard(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.LNKTYPE, mode=0o644, **kw)
    info.linkname = target
    return info, b""


def dev(name: str, major: int, minor: int, mode: int = 0o666, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, tarfile.CHRTYPE, mode=mode, **kw)
    info.devmajor, info.devminor = major, minor
    return info, b""


def fifo(name: str, mode: int = 0o600, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.FIFOTYPE, mode=mode, **kw), b""


def wh(path: str, *, opaque: bool = False) -> tuple[tarfile.TarInfo, bytes]:
    parent, _, base = path.rstrip("/").rpartition("/")
    if opaque:
        name = f"{path.rstrip('/')}/.wh..wh..opq"
    else:
        name = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
    return f(name)


def layer_tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """An uncompressed pax tar of ``entries``, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def compress(data: bytes, how: str | None) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(tars: list[bytes], **process: Any) -> dict[str, Any]:
    conf = {"Cmd": ["/bin/sh"], **process}
    return {"architecture": ARCH, "os": "linux", "config": conf,
            "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}}


class Layout:
    """An OCI image layout being written at ``path``: blobs, then index.json."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as out:
            json.dump({"imageLayoutVersion": "1.0.0"}, out)
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = sha(data)
        with open(self.blob_path(digest), "wb") as out:
            out.write(data)
        return {"digest": digest, "size": len(data)}

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])

    def manifest(self, layers: list[list[tuple[tarfile.TarInfo, bytes]]], *, compression: str | None = None,
                 config: dict[str, Any] | None = None, **process: Any) -> dict[str, Any]:
        """Write an image's blobs; its manifest's descriptor (not yet in the index)."""
        tars = [layer_tar(entries) for entries in layers]
        conf = config if config is not None else image_config(tars, **process)
        suffix = {"gzip": "+gzip", "zstd": "+zstd"}.get(compression or "", "")
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **self.blob(json.dumps(conf).encode())},
            "layers": [{"mediaType": f"application/vnd.oci.image.layer.v1.tar{suffix}",
                        **self.blob(compress(t, compression))} for t in tars],
        }
        return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                **self.blob(json.dumps(manifest).encode())}

    def add(self, descriptor: dict[str, Any], ref: str | None = None,
            platform: dict[str, str] | None = None) -> None:
        entry = dict(descriptor)
        if ref is not None:
            entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
        if platform is not None:
            entry["platform"] = platform
        self.index.append(entry)

    def sub_index(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": entries}
        return {"mediaType": "application/vnd.oci.image.index.v1+json", **self.blob(json.dumps(doc).encode())}

    def write(self) -> str:
        with open(os.path.join(self.path, "index.json"), "w") as out:
            json.dump({"schemaVersion": 2, "manifests": self.index}, out)
        return self.path


def oci_layout(path: str, layers: list[list[tuple[tarfile.TarInfo, bytes]]], *, ref: str = "test:latest",
               compression: str | None = None, **process: Any) -> str:
    """A one-image OCI layout directory."""
    layout = Layout(path)
    layout.add(layout.manifest(layers, compression=compression, **process), ref=ref)
    return layout.write()


def docker_archive(path: str, layers: list[list[tuple[tarfile.TarInfo, bytes]]], *,
                   tags: tuple[str, ...] = ("test:latest",), **process: Any) -> str:
    """A docker-archive tar (docker save's layout: <id>/layer.tar, <id>.json, manifest.json)."""
    tars = [layer_tar(entries) for entries in layers]
    config = json.dumps(image_config(tars, **process)).encode()
    with tarfile.open(path, "w") as out:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))

        names = []
        for t in tars:
            name = f"{hashlib.sha256(t).hexdigest()}/layer.tar"
            add(name, t)
            names.append(name)
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": list(tags),
                                          "Layers": names}]).encode())
    return path


def oci_archive(layout: str, path: str) -> str:
    """A tar of an OCI layout directory (podman save --format oci-archive's shape)."""
    with tarfile.open(path, "w") as out:
        for name in sorted(os.listdir(layout)):
            out.add(os.path.join(layout, name), arcname=name)
    return path


def entry_dirs(cache: str) -> list[str]:
    """The complete cache entries (not the locks, not the temp directories)."""
    return sorted(n for n in os.listdir(cache) if not n.startswith(".")) if os.path.isdir(cache) else []


def temp_dirs(cache: str) -> list[str]:
    return sorted(n for n in os.listdir(cache) if n.startswith(".tmp-")) if os.path.isdir(cache) else []


HAS_ZSTD = shutil.which("zstd") is not None
