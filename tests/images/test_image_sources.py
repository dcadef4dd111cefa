"""Image sources: an OCI layout, an oci-archive and a docker-archive of the same image give one
cache entry; gzip and zstd layers; the image picked by ref and by this machine's platform
(also through a nested index); documents and layers that do not match their digests refused."""

from __future__ import annotations

import errno
import json
import os

import pytest
from image_helpers import (
    ARCH,
    HAS_ZSTD,
    OTHER_ARCH,
    Layout,
    d,
    docker_archive,
    entry_dirs,
    f,
    oci_archive,
    oci_layout,
    sha,
    temp_dirs,
)

from clonekit.images import ImageConfig, ImageError, unpack

LAYERS = [[d("etc"), f("etc/os-release", b"ID=test\n"), d("bin"), f("bin/tool", b"#!", mode=0o755)],
          [f("etc/motd", b"hello\n")]]
PROCESS = {"Entrypoint": ["/bin/tool"], "Cmd": ["--flag"], "Env": ["A=1", "PATH=/bin"],
           "WorkingDir": "/srv", "User": "1000:1000"}


def test_layout_oci_archive_and_docker_archive_are_one_entry(tmp_path):
    cache = tmp_path / "cache"
    layout = oci_layout(str(tmp_path / "layout"), LAYERS, **PROCESS)
    archive = oci_archive(layout, str(tmp_path / "oci.tar"))
    docker = docker_archive(str(tmp_path / "docker.tar"), LAYERS, **PROCESS)
    got = [unpack(src, cache_dir=cache) for src in (layout, archive, docker)]
    assert len({g.digest for g in got}) == 1 and len({g.rootfs for g in got}) == 1
    assert entry_dirs(str(cache)) == [f"sha256-{got[0].digest.split(':')[1]}" + ("" if os.geteuid() == 0
                                                                                  else "-rootless")]
    assert got[0].config == ImageConfig(entrypoint=("/bin/tool",), cmd=("--flag",), env=("A=1", "PATH=/bin"),
                                        working_dir="/srv", user="1000:1000")
    assert (got[0].rootfs / "etc/motd").read_text() == "hello\n"
    assert (got[0].rootfs / "etc/os-release").read_text() == "ID=test\n"


@pytest.mark.parametrize("compression", ["gzip", pytest.param("zstd", marks=pytest.mark.skipif(
    not HAS_ZSTD, reason="the zstd command is not installed (apt install zstd)"))])
def test_compressed_layers(tmp_path, compression):
    layout = oci_layout(str(tmp_path / "layout"), LAYERS, compression=compression)
    with open(os.path.join(layout, "index.json")) as index:
        manifest = json.load(index)["manifests"][0]
    blob = Layout(layout).blob_path(manifest["digest"])
    with open(blob) as m:
        assert json.load(m)["layers"][0]["mediaType"].endswith(compression)
    image = unpack(layout, cache_dir=tmp_path / "cache")
    assert (image.rootfs / "bin/tool").read_bytes() == b"#!"


def _two_images(path: str) -> str:
    layout = Layout(path)
    layout.add(layout.manifest([[f("which", b"alpha")]]), ref="example.com/alpha:1")
    layout.add(layout.manifest([[f("which", b"beta")]]), ref="beta")
    return layout.write()


def test_image_picked_by_ref(tmp_path):
    layout = _two_images(str(tmp_path / "layout"))
    cache = tmp_path / "cache"
    with pytest.raises(ImageError, match=r"holds 2 images \(beta, example.com/alpha:1\); name one"):
        unpack(layout, cache_dir=cache)
    assert (unpack(layout, ref="alpha:1", cache_dir=cache).rootfs / "which").read_bytes() == b"alpha"
    assert (unpack(layout, ref="beta:latest", cache_dir=cache).rootfs / "which").read_bytes() == b"beta"
    with pytest.raises(ImageError, match=r"no image named 'gamma'; it holds beta, example.com/alpha:1"):
        unpack(layout, ref="gamma", cache_dir=cache)


@pytest.mark.parametrize("ref, name, found", [
    ("busybox", "docker.io/library/busybox:latest", True),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", True),
    ("busybox:1.36", "1.36", True),                  # skopeo's bare-tag ref.name
    ("busybox", "latest", False),                    # no tag asked: a bare tag says nothing
    ("box", "docker.io/library/busybox:latest", False),
    ("busybox:1.36", "docker.io/library/busybox:latest", False),
    ("sha256:abc", "sha256:abc", True),
])
def test_ref_matching(ref, name, found):
    from clonekit.images.source import ref_matches

    assert ref_matches(ref, name) is found


def test_docker_archive_ref_is_a_repotag(tmp_path):
    archive = docker_archive(str(tmp_path / "d.tar"), LAYERS, tags=("docker.io/library/thing:2",))
    assert (unpack(archive, ref="thing:2", cache_dir=tmp_path / "c").rootfs / "etc/motd").exists()
    with pytest.raises(ImageError, match=r"no image named 'thing'; it holds docker.io/library/thing:2"):
        unpack(archive, ref="thing", cache_dir=tmp_path / "c")  # thing means thing:latest


@pytest.mark.parametrize("nested", [False, True])
def test_platform_of_this_machine_is_picked(tmp_path, nested):
    layout = Layout(str(tmp_path / "layout"))
    other = layout.manifest([[f("arch", OTHER_ARCH.encode())]])
    mine = layout.manifest([[f("arch", ARCH.encode())]])
    entries = [{**other, "platform": {"os": "linux", "architecture": OTHER_ARCH}},
               {**mine, "platform": {"os": "linux", "architecture": ARCH}}]
    if nested:  # index.json -> an image index -> per-platform manifests (a multi-arch image)
        layout.add(layout.sub_index(entries), ref="multi")
    else:
        layout.index.extend(entries)
    layout.write()
    image = unpack(layout.path, cache_dir=tmp_path / "cache")
    assert (image.rootfs / "arch").read_text() == ARCH


def test_no_image_for_this_platform(tmp_path):
    layout = Layout(str(tmp_path / "layout"))
    layout.add(layout.manifest([[f("x")]]), platform={"os": "linux", "architecture": OTHER_ARCH})
    layout.write()
    with pytest.raises(ImageError, match=f"no image for this machine \\(linux/{ARCH}"):
        unpack(layout.path, cache_dir=tmp_path / "cache")


def test_a_changed_layer_blob_is_refused(tmp_path):
    layout = oci_layout(str(tmp_path / "layout"), LAYERS, compression="gzip")
    path = Layout(layout)
    with open(os.path.join(layout, "index.json")) as index:
        manifest_digest = json.load(index)["manifests"][0]["digest"]
    with open(path.blob_path(manifest_digest)) as m:
        layer = json.load(m)["layers"][1]["digest"]
    import gzip

    from image_helpers import layer_tar

    with open(path.blob_path(layer), "wb") as blob:  # another tar under the old name
        blob.write(gzip.compress(layer_tar([f("etc/motd", b"evil\n")])))
    cache = tmp_path / "cache"
    with pytest.raises(ImageError, match=f"layer 2/2 {layer}: the blob hashes to sha256:"):
        unpack(layout, cache_dir=cache)
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == []


def test_a_cut_layer_is_refused_as_damaged(tmp_path):
    layout = oci_layout(str(tmp_path / "layout"), LAYERS, compression="gzip")
    with open(os.path.join(layout, "index.json")) as index:
        manifest_digest = json.load(index)["manifests"][0]["digest"]
    with open(Layout(layout).blob_path(manifest_digest)) as m:
        layer = json.load(m)["layers"][0]["digest"]
    blob = Layout(layout).blob_path(layer)
    os.truncate(blob, os.path.getsize(blob) // 2)
    cache = tmp_path / "cache"
    with pytest.raises(ImageError, match=f"layer 1/2 {layer}: the layer is damaged"):
        unpack(layout, cache_dir=cache)
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == []


def test_a_changed_docker_layer_fails_its_diff_id(tmp_path):
    good = docker_archive(str(tmp_path / "good.tar"), LAYERS)
    import tarfile

    from image_helpers import layer_tar

    bad = str(tmp_path / "bad.tar")
    with tarfile.open(good) as src, tarfile.open(bad, "w") as out:
        second = json.load(src.extractfile("manifest.json"))[0]["Layers"][1]  # type: ignore[arg-type]
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == second:
                data = layer_tar([f("etc/motd", b"evil\n")])
                member.size = len(data)
            import io

            out.addfile(member, io.BytesIO(data))
    with pytest.raises(ImageError, match="not its diff_id sha256:"):
        unpack(bad, cache_dir=tmp_path / "cache")


def test_a_changed_manifest_is_refused(tmp_path):
    layout = oci_layout(str(tmp_path / "layout"), LAYERS)
    with open(os.path.join(layout, "index.json")) as index:
        digest = json.load(index)["manifests"][0]["digest"]
    blob = Layout(layout).blob_path(digest)
    with open(blob) as m:
        doc = json.load(m)
    doc["layers"] = doc["layers"][:1]
    with open(blob, "w") as m:
        json.dump(doc, m)
    with pytest.raises(ImageError, match=f"manifest blobs/sha256/{digest[7:]} does not match its digest"):
        unpack(layout, cache_dir=tmp_path / "cache")


def test_missing_and_unreadable_sources(tmp_path):
    with pytest.raises(ImageError) as caught:
        unpack(tmp_path / "nope.tar", cache_dir=tmp_path / "cache")
    assert caught.value.errno == errno.ENOENT and isinstance(caught.value, OSError)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    with pytest.raises(ImageError, match="not a readable image archive"):
        unpack(junk, cache_dir=tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="neither an OCI image layout"):
        unpack(tmp_path / "empty", cache_dir=tmp_path / "cache")


def test_digest_is_the_config_digest(tmp_path):
    layout = oci_layout(str(tmp_path / "layout"), LAYERS)
    with open(os.path.join(layout, "index.json")) as index:
        manifest = json.load(index)["manifests"][0]["digest"]
    with open(Layout(layout).blob_path(manifest)) as m:
        config = json.load(m)["config"]["digest"]
    with open(Layout(layout).blob_path(config), "rb") as c:
        assert sha(c.read()) == config
    assert unpack(layout, cache_dir=tmp_path / "cache").digest == config


def test_an_unpacked_docker_archive_cannot_name_host_files(tmp_path):
    import tarfile

    archive = docker_archive(str(tmp_path / "d.tar"), LAYERS)
    top = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(top, filter="data")  # the test's own archive
    manifest = json.loads((top / "manifest.json").read_text())
    assert (tmp_path / "d.tar").exists()
    manifest[0]["Layers"][0] = "../" * 12 + str(tmp_path / "d.tar").lstrip("/")  # a real tar, outside
    (top / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageError, match=r"layer 1/2 .*: cannot open .*No such file"):
        unpack(top, cache_dir=tmp_path / "cache")  # looked for below the directory, not found
