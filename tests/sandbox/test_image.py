"""``image=``: an OCI image layout (a busybox layer made here, with Env, WorkingDir, User and
Cmd in its config) unpacked by clonekit.images and run under a writable overlay that lasts one
run; the cached rootfs is never written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile

import pytest

from clonekit.runtime.busybox import build_rootfs

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_layout(path: str, work: str, **config: object) -> str:
    """An OCI layout of one layer: a busybox rootfs, plus /etc/passwd's user 'app' (1000)."""
    root = build_rootfs(os.path.join(work, "layer"))
    with open(os.path.join(root, "etc", "passwd"), "a") as f:
        f.write("app:x:1000:1000:app:/home/app:/bin/sh\n")
    os.makedirs(os.path.join(root, "srv"), exist_ok=True)
    os.chmod(os.path.join(root, "srv"), 0o1777)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(os.listdir(root)):
            tar.add(os.path.join(root, name), arcname=name)
    layer = buf.getvalue()
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def blob(data: bytes) -> dict[str, object]:
        with open(os.path.join(blobs, _sha(data).split(":")[1]), "wb") as f:
            f.write(data)
        return {"digest": _sha(data), "size": len(data)}

    conf = json.dumps({"architecture": ARCH, "os": "linux", "config": config,
                       "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(conf)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}]}).encode()
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "test:latest"}}]}, f)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return path


@pytest.fixture
def image(tmp_path, monkeypatch) -> str:
    pytest.importorskip("clonekit.images.unpacking")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return busybox_layout(str(tmp_path / "layout"), str(tmp_path),
                          Env=["PATH=/bin", "GREETING=from-image"], WorkingDir="/srv", User="app",
                          Cmd=["/bin/sh", "-c", "echo $GREETING; id -u; pwd"])


def test_the_image_config_is_the_process(make, image, tmp_path) -> None:
    from clonekit.images import unpack

    sb = make(image=image)
    cached = unpack(image)  # the same cache entry the Sandbox used
    assert sb.run().stdout == b"from-image\n1000\n/srv\n"
    r = sb.run(["/bin/sh", "-c", "echo changed > new && cat new; echo x > /bin/new || echo denied"])
    assert r.stdout == b"changed\ndenied\n", r.stderr  # the overlay is writable where the image lets
    assert not os.path.exists(os.path.join(cached.rootfs, "srv", "new"))  # the cache never is written
    assert sb.run(["ls", "/srv/new"]).returncode != 0  # and each run starts from the image again
    root = make(image=image, uid=0).run(["/bin/sh", "-c", "echo x > /bin/new && ls /bin/new"])
    assert root.stdout == b"/bin/new\n" and not os.path.exists(os.path.join(cached.rootfs, "bin", "new"))
