"""Hostile images: members whose names or numbers the kernel cannot take, trees deeper than
the unpacker (and the copy, and the cleanup) can walk, user files that are fifos or devices,
layout directories whose symlinks lead out, JSON nesting bombs, and caches someone else could
change.  Each is refused with an ImageError (no cache entry, no temp directory left) or
contained; nothing outside the cache is touched."""

from __future__ import annotations

import json
import os
import tarfile
import threading

import pytest
from image_helpers import d, docker_archive, entry_dirs, f, oci_layout, sym, temp_dirs

from clonekit.images import ImageError, resolve_user, unpack

ROOT = os.geteuid() == 0


def _with_pax(entry: tuple[tarfile.TarInfo, bytes], **headers: str) -> tuple[tarfile.TarInfo, bytes]:
    info, data = entry
    info.pax_headers = {**info.pax_headers, **headers}
    return info, data


def _huge_uid() -> tuple[tarfile.TarInfo, bytes]:
    info, data = f("owned", b"x")
    info.uid = 2**40
    return info, data


@pytest.mark.parametrize("member", [
    _with_pax(f("x", b"x"), path="a\0b"),
    _with_pax(sym("s", "x"), linkpath="x\0y"),
    f("q", b"x", xattrs={"user.a\0b": "v"}),
    _with_pax(f("t", b"x"), mtime="inf"),
    _with_pax(f("t", b"x"), mtime="nan"),
    _huge_uid(),
], ids=["nul-in-path", "nul-in-linkpath", "nul-in-xattr", "mtime-inf", "mtime-nan", "uid-2**40"])
def test_names_with_nul_and_numbers_out_of_range_are_refused(unpack_layers, cache, sentinel, member):
    with pytest.raises(ImageError, match=r"layer 1/1 .* refused: .*(NUL|out of range)"):
        unpack_layers([d("etc"), member])
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == []


@pytest.mark.parametrize("through_symlink", [False, True])
def test_trees_deeper_than_a_walk_can_go_are_refused(unpack_layers, cache, through_symlink):
    if through_symlink:  # each lexical path is shallow; the real directory is not
        half = "/".join(["a"] * 300)
        layers = [[d(half), sym("l", half), d("l/" + "/".join(["b"] * 300))]]
    else:
        layers = [[d("/".join(["a"] * 1200))], [f(".wh..wh..opq"), d("/".join(["a"] * 1200))]]
    with pytest.raises(ImageError, match=r"refused: .*deeper than 512"):
        unpack_layers(*layers)
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == []  # the temp tree was removed


def test_deep_but_allowed_tree_copies_and_cleans_up(unpack_layers, tmp_path):
    from clonekit.images import copy_tree

    deep = "/".join(["a"] * 500)
    rootfs = unpack_layers([d(deep), f(deep + "/leaf", b"leaf")]).rootfs
    copy_tree(rootfs, tmp_path / "copy")
    assert (tmp_path / "copy" / deep / "leaf").read_bytes() == b"leaf"


def test_user_files_that_are_not_regular_files_are_refused(tmp_path):
    """A fifo as /etc/passwd would block the bundle writer forever, and a device would be
    opened on the host (a watchdog opened is armed): only regular files are read."""
    etc = tmp_path / "etc"
    etc.mkdir()
    os.mkfifo(etc / "passwd")
    result: list[object] = []

    def resolve() -> None:
        try:
            result.append(resolve_user(tmp_path, "app"))
        except ImageError as exc:
            result.append(exc)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # the bug: blocked in open(); a writer lets it go before failing
        fd = os.open(etc / "passwd", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(10)
        pytest.fail("resolve_user blocked opening a fifo /etc/passwd")
    assert isinstance(result[0], ImageError) and "not a regular file" in str(result[0])
    if ROOT:
        os.unlink(etc / "passwd")
        (etc / "passwd").write_text("app:x:7:8::/:/bin/sh\n")
        os.mknod(etc / "group", 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null's numbers
        with pytest.raises(ImageError, match=r"/etc/group.*not a regular file"):
            resolve_user(tmp_path, "app")


def test_layout_directory_symlinks_cannot_name_host_files(tmp_path):
    archive = docker_archive(str(tmp_path / "d.tar"), [[f("x", b"x")]])
    top = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(top, filter="data")  # the test's own archive
    manifest = json.loads((top / "manifest.json").read_text())
    layer = top / manifest[0]["Layers"][0]
    host = tmp_path / "host-layer.tar"
    os.rename(layer, host)
    layer.symlink_to(host)  # absolute: taken inside the directory, where it names nothing
    with pytest.raises(ImageError, match=r"layer 1/1 .*: cannot open .*No such file"):
        unpack(top, cache_dir=tmp_path / "cache")
    if ROOT:
        layer.unlink()
        os.mknod(layer, 0o600 | 0o020000, os.makedev(1, 3))  # a device is never opened as a blob
        with pytest.raises(ImageError, match=r"layer 1/1 .*not a regular file"):
            unpack(top, cache_dir=tmp_path / "cache")
    layer.unlink()
    os.rename(host, top / "real.tar")
    layer.symlink_to("../real.tar")  # a symlink inside the directory still works
    assert (unpack(top, cache_dir=tmp_path / "cache").rootfs / "x").read_bytes() == b"x"


def test_json_nesting_bombs_are_refused(tmp_path):
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"x")]])
    with open(os.path.join(layout, "index.json"), "w") as out:
        out.write("[" * 200_000)
    with pytest.raises(ImageError, match=r"index\.json is not valid JSON"):
        unpack(layout, cache_dir=tmp_path / "cache")


def _image_key(layout: str, tmp_path) -> str:
    return os.path.basename(os.path.dirname(unpack(layout, cache_dir=tmp_path / "probe").rootfs))


def test_a_cache_entry_that_is_not_our_directory_is_not_used(tmp_path):
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"image")]])
    key = _image_key(layout, tmp_path)
    fake = tmp_path / "fake"
    (fake / "rootfs").mkdir(parents=True)
    (fake / "rootfs" / "x").write_text("planted")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / key).symlink_to(fake)
    with pytest.raises(ImageError, match="is not a directory of this user's"):
        unpack(layout, cache_dir=cache)


def test_a_cache_below_a_directory_others_may_write_is_refused(tmp_path):
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"x")]])
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may rename the cache away and put another in its place
    with pytest.raises(ImageError, match=r"below .*/shared, which may be changed by other users"):
        unpack(layout, cache_dir=shared / "cache")
    shared.chmod(0o1777)  # sticky, as /tmp: others cannot rename what is ours
    assert (unpack(layout, cache_dir=shared / "cache").rootfs / "x").read_bytes() == b"x"
    # umask 002 with a group of one's own (user private groups): ~/.cache is 0775, and trusted
    shared.chmod(0o775)
    os.chown(shared, -1, os.getegid())
    assert (unpack(layout, cache_dir=shared / "cache").rootfs / "x").read_bytes() == b"x"
    if ROOT:  # another group's write is not
        os.chown(shared, -1, 65534)
        with pytest.raises(ImageError, match=r"/shared, which may be changed by other users"):
            unpack(layout, cache_dir=shared / "cache")


def test_overlayfs_xattrs_of_a_layer_are_not_applied(unpack_layers):
    """trusted.overlay.* / user.overlay.* are overlayfs's bookkeeping: on the cached rootfs, an
    overlay's lower layer, an image could make a directory opaque or a file a whiteout that its
    tar does not show.  The image's other xattrs are kept."""
    marks = {"user.overlay.opaque": "y", "user.keep": "kept"}
    if ROOT:
        marks["trusted.overlay.opaque"] = "y"
    rootfs = unpack_layers([d("dir", xattrs=marks), f("dir/file", b"x", xattrs=marks)]).rootfs
    for path in (rootfs / "dir", rootfs / "dir/file"):
        names = os.listxattr(path)
        assert "user.keep" in names and os.getxattr(path, "user.keep") == b"kept"
        assert not [n for n in names if ".overlay." in n], names


def _sparse(name: str, size: int, tail: bytes) -> tuple[tarfile.TarInfo, bytes]:
    """A GNU sparse (pax 1.0) member of ``size`` bytes, all hole but ``tail`` at its end: a few
    blocks in the layer that say gigabytes."""
    smap = f"1\n{size - len(tail)}\n{len(tail)}\n".encode().ljust(512, b"\0")
    info, _ = f(f"GNUSparseFile.0/{name}")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(size)}
    data = smap + tail
    info.size = len(data)
    return info, data


def test_sparse_members_and_runs_of_zeros_take_no_disk(unpack_layers, tmp_path):
    """A sparse member (or a gzip bomb of zeros) would be written out in full and fill the disk:
    runs of zeros are left as holes; the files read the same."""
    size = 256 << 20
    zeros = f("zeros", bytes(8 << 20) + b"end")
    rootfs = unpack_layers([_sparse("big", size, b"tail"), zeros], compression="gzip").rootfs
    big = os.stat(rootfs / "big")
    assert big.st_size == size and big.st_blocks * 512 <= (2 << 20)  # the tail's chunk only
    with open(rootfs / "big", "rb") as fh:
        assert fh.read(4096) == bytes(4096)
        fh.seek(size - 4)
        assert fh.read() == b"tail"
    st = os.stat(rootfs / "zeros")
    assert st.st_size == (8 << 20) + 3 and st.st_blocks * 512 < (2 << 20)
    assert (rootfs / "zeros").read_bytes() == bytes(8 << 20) + b"end"
    from clonekit.images import copy_tree

    copy_tree(rootfs, tmp_path / "copy")  # the bundle's copy keeps the holes
    copied = tmp_path / "copy" / "big"
    assert copied.stat().st_size == size and copied.stat().st_blocks * 512 <= (2 << 20)
    with open(copied, "rb") as fh:
        fh.seek(size - 4)
        assert fh.read() == b"tail"
    assert (tmp_path / "copy" / "zeros").read_bytes() == bytes(8 << 20) + b"end"


@pytest.mark.skipif(not ROOT, reason="another user's view of root's bundle")
def test_a_bundle_is_closed_to_other_users(tmp_path):
    """The bundle's rootfs holds the image's setuid-root files (and devices): in a directory
    other users can pass through, any of them could run a setuid shell on the host.  The bundle
    directory is 0700, as containerd's and podman's storage is."""
    import shutil
    import subprocess
    import tempfile

    from clonekit.images.bundle import write_bundle

    layer = [d("bin"), f("bin/rootshell", b"#!/bin/sh\n", mode=0o4755)]
    layout = oci_layout(str(tmp_path / "image"), [layer])
    shared = tempfile.mkdtemp(prefix="clonekit-test-bundle-")
    try:
        os.chmod(shared, 0o755)  # as a home directory or /srv usually is
        bundle = os.path.join(shared, "bundle")
        write_bundle(layout, bundle, cache_dir=tmp_path / "cache")
        shell = os.path.join(bundle, "rootfs/bin/rootshell")
        assert os.stat(shell).st_mode & 0o4000 and os.stat(shell).st_uid == 0
        probe = subprocess.run(["stat", shell], user=65534, group=65534, extra_groups=[],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/")
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, probe.stderr
        assert os.stat(bundle).st_mode & 0o077 == 0
    finally:
        shutil.rmtree(shared)


def test_an_archive_of_too_many_members_is_refused(tmp_path, monkeypatch):
    """Every member of an image archive is kept in memory while it is read: millions of empty
    members would take gigabytes.  (The limit, 100000, lowered here to keep the test fast.)"""
    from clonekit.images import source

    archive = docker_archive(str(tmp_path / "d.tar"), [[f("x", b"x")]])
    with tarfile.open(archive, "a") as tar:
        for i in range(60):
            tar.addfile(tarfile.TarInfo(f"padding/{i}"))
    monkeypatch.setattr(source, "_MAX_MEMBERS", 50)
    with pytest.raises(ImageError, match="more than 50 members"):
        unpack(archive, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(source, "_MAX_MEMBERS", 100)
    assert (unpack(archive, cache_dir=tmp_path / "cache").rootfs / "x").read_bytes() == b"x"


def _chained_long_names(count: int) -> bytes:
    """A tar of one file preceded by ``count`` GNU long-name headers (each overriding the last)."""
    out = bytearray()
    for i in range(count):
        name = f"name{i}".encode() + b"\0"
        head = tarfile.TarInfo("././@LongLink")
        head.type, head.size = tarfile.GNUTYPE_LONGNAME, len(name)
        out += head.tobuf(format=tarfile.USTAR_FORMAT) + name.ljust(512, b"\0")
    last = tarfile.TarInfo("x")
    return bytes(out + last.tobuf(format=tarfile.USTAR_FORMAT) + bytes(1024))


def test_chained_extended_headers_are_refused(tmp_path):
    """tarfile reads each pax or GNU long-name header by recursion: thousands in a row stopped
    the unpack with a RecursionError (outside ImageError) in a layer, or in an image archive."""
    from image_helpers import Layout, image_config

    tar = _chained_long_names(3000)
    layout = Layout(str(tmp_path / "image"))
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **layout.blob(json.dumps(image_config([tar])).encode())},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layout.blob(tar)}]}
    layout.add({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                **layout.blob(json.dumps(manifest).encode())})
    with pytest.raises(ImageError, match=r"layer 1/1 .*chains more extended"):
        unpack(layout.write(), cache_dir=tmp_path / "cache")
    assert entry_dirs(str(tmp_path / "cache")) == [] and temp_dirs(str(tmp_path / "cache")) == []
    (tmp_path / "archive.tar").write_bytes(tar)
    with pytest.raises(ImageError, match="not a readable image archive"):
        unpack(tmp_path / "archive.tar", cache_dir=tmp_path / "cache")


@pytest.mark.skipif(not ROOT, reason="a directory of another user's, made by root")
def test_a_cache_below_another_users_directory_is_refused(tmp_path):
    """/var/cache/clonekit made by someone else: its owner could swap images/ for their own."""
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"x")]])
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ImageError, match=r"/theirs, which may be changed by other users \(owner uid 65534"):
        unpack(layout, cache_dir=theirs / "images")
    (theirs / "images").mkdir(mode=0o700, exist_ok=True)
    os.chown(theirs / "images", 65534, 65534)
    os.chown(theirs, 0, 0)
    with pytest.raises(ImageError, match="is not a directory of this user's alone"):
        unpack(layout, cache_dir=theirs / "images")  # the cache itself another user's


@pytest.mark.parametrize("process", [
    {"Entrypoint": ["/bin/sh\0-evil"]}, {"Cmd": ["-c", "true\0; rm -rf /"]}, {"Env": ["A=b\0c"]},
    {"WorkingDir": "/srv\0/../etc"}, {"User": "app\0:0"},
], ids=["entrypoint", "cmd", "env", "workingdir", "user"])
def test_config_strings_with_nul_are_refused(tmp_path, process):
    """A C string ends at NUL: the process would run something other than what config.json shows."""
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"x")]], **process)
    with pytest.raises(ImageError, match="has a NUL character"):
        unpack(layout, cache_dir=tmp_path / "cache")


def test_a_cache_reached_through_a_symlink_others_may_replace_is_refused(tmp_path):
    layout = oci_layout(str(tmp_path / "image"), [[f("x", b"x")]])
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "link").symlink_to(safe)  # another user may point it at their own cache
    with pytest.raises(ImageError, match=r"/shared, which may be changed by other users"):
        unpack(layout, cache_dir=shared / "link" / "cache")


def test_index_depth_bombs_and_path_digests_are_refused(tmp_path):
    from image_helpers import Layout

    layout = Layout(str(tmp_path / "deep"))
    descriptor = layout.manifest([[f("x", b"x")]])
    for _ in range(9):  # each index names the one below: content addressing allows no loop
        descriptor = layout.sub_index([descriptor])
    layout.add(descriptor)
    with pytest.raises(ImageError, match="indexes nest more than 8 deep"):
        unpack(layout.write(), cache_dir=tmp_path / "cache")
    layout = Layout(str(tmp_path / "path"))
    layout.add({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:../../../etc/passwd", "size": 1})
    with pytest.raises(ImageError, match=r"digest 'sha256:\.\./\.\./\.\./etc/passwd' is not sha256:<64 hex>"):
        unpack(layout.write(), cache_dir=tmp_path / "cache")


def test_a_layer_of_too_many_members_is_refused(unpack_layers, cache, monkeypatch):
    """Millions of empty members: memory and inodes.  (The limit, a million, lowered here.)"""
    from clonekit.images import layers

    monkeypatch.setattr(layers, "MAX_MEMBERS", 100)
    with pytest.raises(ImageError, match=r"layer 1/1 .*more than 100 members"):
        unpack_layers([d("many")] + [f(f"many/{i}") for i in range(150)])
    assert entry_dirs(str(cache)) == [] and temp_dirs(str(cache)) == []
    rootfs = unpack_layers([f(f"{i}") for i in range(100)]).rootfs  # at the limit: unpacked
    assert sorted(os.listdir(rootfs)) == sorted(map(str, range(100)))


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_an_image_of_too_many_layers_is_refused(tmp_path, monkeypatch, kind):
    """A 16 MiB manifest can name one small blob 100000 times: each is opened and read in turn.
    (The limit, 1000, lowered here.)"""
    from clonekit.images import source

    layers = [[f(f"l{i}", b"x")] for i in range(4)]
    image = (oci_layout(str(tmp_path / "image"), layers) if kind == "oci"
             else docker_archive(str(tmp_path / "d.tar"), layers))
    monkeypatch.setattr(source, "_MAX_LAYERS", 3)
    with pytest.raises(ImageError, match="the image has 4 layers, more than 3"):
        unpack(image, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(source, "_MAX_LAYERS", 4)
    assert sorted(os.listdir(unpack(image, cache_dir=tmp_path / "cache").rootfs)) == ["l0", "l1", "l2", "l3"]
