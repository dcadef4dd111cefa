"""Layers applied in order against hand-built archives: whiteouts, opaque directories,
hardlinks, symlinks, devices, xattrs, ownership, modes and mtimes, as seen on the extracted
rootfs; and hostile members, each refused (an ImageError naming layer and member, no cache
entry) or contained in the rootfs, with a host sentinel that stays untouched."""

from __future__ import annotations

import os
import stat
import uuid

import pytest
from image_helpers import MTIME, d, dev, entry_dirs, f, fifo, hard, sym, temp_dirs, wh

from clonekit.images import ImageError

ROOT = os.geteuid() == 0


def test_layers_in_order_with_whiteouts_and_opaque_dirs(unpack_layers):
    lower = [d("a"), f("a/x", b"x"), f("a/y", b"y"), f("b", b"b"), d("c"), f("c/old", b"old"),
             d("c/sub"), f("c/sub/deep", b"deep"), d("keep"), f("keep/k", b"k")]
    upper = [wh("a/x"), wh("b"),
             f("c/new", b"new"),  # before the opaque marker: this layer's own, kept
             wh("c", opaque=True), d("c/sub"), f("c/sub/fresh", b"fresh"),
             f("same", b"same layer"), wh("same"),  # a whiteout hides lower layers only
             wh("never-was")]
    rootfs = unpack_layers(lower, upper).rootfs
    assert sorted(os.listdir(rootfs / "a")) == ["y"]
    assert not (rootfs / "b").exists()
    assert sorted(os.listdir(rootfs / "c")) == ["new", "sub"]
    assert sorted(os.listdir(rootfs / "c/sub")) == ["fresh"]  # the lower c/sub/deep is hidden too
    assert (rootfs / "same").read_bytes() == b"same layer"
    assert (rootfs / "keep/k").read_bytes() == b"k"
    assert not any(name.startswith(".wh.") for _, dirs, files in os.walk(rootfs) for name in dirs + files)


def test_later_layers_replace_entries_of_another_kind(unpack_layers):
    layers = [
        [d("x"), f("x/inner", b"1"), f("y", b"file"), sym("z", "y"), d("w"), f("w/keep", b"w")],
        [f("x", b"now a file"), d("y"), f("y/in", b"dir now"), d("z"), d("w", mode=0o700)],
    ]
    rootfs = unpack_layers(*layers).rootfs
    assert (rootfs / "x").read_bytes() == b"now a file"
    assert (rootfs / "y/in").read_bytes() == b"dir now"
    assert stat.S_ISDIR(os.lstat(rootfs / "z").st_mode)  # a symlink replaced by a directory
    assert (rootfs / "w/keep").read_bytes() == b"w"  # a directory over a directory merges
    assert stat.S_IMODE(os.lstat(rootfs / "w").st_mode) == 0o700


def test_hardlinks_symlinks_fifos_and_devices(unpack_layers):
    layers = [
        [d("bin"), f("bin/busybox", b"\x7fELF", mode=0o755), hard("bin/sh", "bin/busybox"),
         sym("bin/ls", "busybox", mtime=MTIME - 5), sym("abs", "/bin/busybox"), fifo("pipe", mode=0o640),
         d("dev"), dev("dev/null", 1, 3)],
        [hard("bin/ash", "/bin/busybox")],  # to a file of a lower layer, named absolutely
    ]
    rootfs = unpack_layers(*layers).rootfs
    bb = os.lstat(rootfs / "bin/busybox")
    assert bb.st_nlink == 3
    assert os.lstat(rootfs / "bin/sh").st_ino == os.lstat(rootfs / "bin/ash").st_ino == bb.st_ino
    assert os.readlink(rootfs / "bin/ls") == "busybox"
    assert os.lstat(rootfs / "bin/ls").st_mtime == MTIME - 5  # the link's own mtime
    assert os.readlink(rootfs / "abs") == "/bin/busybox"  # kept as written: never followed here
    st = os.lstat(rootfs / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    if ROOT:
        null = os.lstat(rootfs / "dev/null")
        assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
        assert stat.S_IMODE(null.st_mode) == 0o666


def test_ownership_modes_mtimes(unpack_layers):
    layers = [
        [d("ro", mode=0o555, mtime=MTIME + 1), f("ro/a", b"a", mode=0o4755, uid=1234, gid=5678),
         f("secret", b"s", mode=0o000), d("owned", uid=42, gid=43)],
        [f("ro/b", b"b", mode=0o640, mtime=MTIME + 2)],  # into the 0555 directory, a layer later
    ]
    rootfs = unpack_layers(*layers).rootfs
    ro = os.lstat(rootfs / "ro")
    assert stat.S_IMODE(ro.st_mode) == 0o555 and ro.st_mtime == MTIME + 1  # set after all layers
    a = os.lstat(rootfs / "ro/a")
    assert stat.S_IMODE(a.st_mode) == 0o4755 and a.st_mtime == MTIME
    assert os.lstat(rootfs / "ro/b").st_mtime == MTIME + 2
    assert stat.S_IMODE(os.lstat(rootfs / "secret").st_mode) == 0
    if ROOT:
        assert (a.st_uid, a.st_gid) == (1234, 5678)
        owned = os.lstat(rootfs / "owned")
        assert (owned.st_uid, owned.st_gid) == (42, 43)


def test_directory_through_a_symlinked_parent_gets_its_mode(unpack_layers):
    # merged /usr: lib -> usr/lib; a later layer's lib/x is usr/lib/x, its mode set at the end
    layers = [[d("usr"), d("usr/lib"), sym("lib", "usr/lib")],
              [d("lib/x", mode=0o751, mtime=MTIME + 7), f("lib/x/y", b"y"), f("lib/new/z", b"z")]]
    rootfs = unpack_layers(*layers).rootfs
    x = os.lstat(rootfs / "usr/lib/x")
    assert stat.S_IMODE(x.st_mode) == 0o751 and x.st_mtime == MTIME + 7
    assert stat.S_IMODE(os.lstat(rootfs / "usr/lib/new").st_mode) == 0o755  # made for lib/new/z
    assert (rootfs / "usr/lib/x/y").read_bytes() == b"y"


def test_xattrs_from_pax_headers(unpack_layers):
    # this host's ext4 /tmp carries user.* and (as root) trusted.* xattrs
    layers = [[d("dir", xattrs={"user.kind": "directory"}),
               f("dir/file", b"data", xattrs={"user.note": "hello", "user.bin": "\u00e9t\u00e9"}),
               *([f("t", xattrs={"trusted.clonekit": "root only"})] if ROOT else [])]]
    rootfs = unpack_layers(*layers).rootfs
    assert os.getxattr(rootfs / "dir", "user.kind") == b"directory"
    assert os.getxattr(rootfs / "dir/file", "user.note") == b"hello"
    assert os.getxattr(rootfs / "dir/file", "user.bin") == "\u00e9t\u00e9".encode()
    if ROOT:
        assert os.getxattr(rootfs / "t", "trusted.clonekit") == b"root only"


# --- hostile members --------------------------------------------------------------------------

def _refused(unpack_layers, cache, layers, member: str) -> ImageError:
    before = entry_dirs(str(cache))
    with pytest.raises(ImageError) as caught:
        unpack_layers(*layers)
    message = str(caught.value)
    assert member in message and "layer " in message, message
    assert entry_dirs(str(cache)) == before and temp_dirs(str(cache)) == []  # nothing half made is kept
    return caught.value


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../../../../escape"])
def test_dotdot_members_are_refused(unpack_layers, cache, sentinel, name):
    err = _refused(unpack_layers, cache, [[d("a"), f(name, b"x")]], name)
    assert "'..'" in str(err)


def test_dotdot_hardlink_targets_are_refused(unpack_layers, cache, sentinel):
    _refused(unpack_layers, cache, [[hard("link", "../../../../../../etc/passwd")]], "link")


def test_absolute_members_land_inside_the_rootfs(unpack_layers, sentinel):
    target = str(sentinel / "secret")
    rootfs = unpack_layers([f(target, b"pwned"), f("/etc/passwd", b"root:x:0:0::/:/bin/sh\n")]).rootfs
    assert (rootfs / target.lstrip("/")).read_bytes() == b"pwned"
    assert (rootfs / "etc/passwd").read_bytes().startswith(b"root:x:0:0::")


def test_file_through_a_symlinked_parent_is_contained(unpack_layers, sentinel):
    name = f"clonekit-evil-{uuid.uuid4().hex[:8]}"
    layers = [[d("etc"), f("etc/passwd", b"image passwd\n"), d("tmp"),
               sym("a", "/etc"), f("a/passwd", b"through a\n"),
               sym("up", "../../../../../../../../tmp"), f(f"up/{name}", b"x")]]
    rootfs = unpack_layers(*layers).rootfs
    assert (rootfs / "etc/passwd").read_bytes() == b"through a\n"  # the rootfs's own /etc
    assert (rootfs / "tmp" / name).read_bytes() == b"x"  # ".." clamped at the rootfs
    assert not os.path.lexists(f"/tmp/{name}")


def test_symlink_to_a_host_directory_then_a_file_through_it(unpack_layers, cache, sentinel):
    # the symlink's target exists on the host, not in the image: resolving inside the rootfs
    # finds nothing there, and no directory is made through a dangling link
    _refused(unpack_layers, cache, [[sym("a", str(sentinel)), f("a/secret", b"pwned")]], "a/secret")


def test_hardlink_to_host_passwd_links_the_images_own(unpack_layers, cache, sentinel):
    rootfs = unpack_layers([d("etc"), f("etc/passwd", b"image\n"), hard("pw", "/etc/passwd")]).rootfs
    linked = os.lstat(rootfs / "pw").st_ino
    assert linked == os.lstat(rootfs / "etc/passwd").st_ino != os.stat("/etc/passwd").st_ino
    _refused(unpack_layers, cache, [[hard("pw", "/etc/passwd")]], "pw")  # not in the image: refused


def test_directory_replaced_by_a_symlink_in_a_later_layer(unpack_layers, sentinel):
    name = f"clonekit-evil-{uuid.uuid4().hex[:8]}"
    layers = [
        [d("tmp"), d("data"), f("data/file", b"old")],
        [sym("data", "/tmp")],  # the directory goes, a symlink out of the rootfs comes
        [f(f"data/{name}", b"later"), wh("data/file")],
    ]
    rootfs = unpack_layers(*layers).rootfs
    assert os.readlink(rootfs / "data") == "/tmp"
    assert (rootfs / "tmp" / name).read_bytes() == b"later"
    assert not os.path.lexists(f"/tmp/{name}")


def test_whiteout_through_a_symlink_stays_inside(unpack_layers, sentinel):
    layers = [[d("etc"), f("etc/keep", b"k"), sym("h", str(sentinel))], [wh("h/secret"), wh("h")]]
    rootfs = unpack_layers(*layers).rootfs
    assert not os.path.lexists(rootfs / "h")
    assert (rootfs / "etc/keep").exists()  # the sentinel fixture checks the host side
