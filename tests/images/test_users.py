"""An image's User resolved in its own /etc/passwd and /etc/group, as runc and Docker do: names
must exist, numbers need not, supplementary groups from /etc/group; the files are read inside
the rootfs even when they are symlinks to absolute paths."""

from __future__ import annotations

import os

import pytest

from clonekit.images import ImageError, resolve_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n# comment\n"
GROUP = "root:x:0:\nappgrp:x:1001:\nwheel:x:10:app,other\ndocker:x:999:app\nstaff:x:50:\n"


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, ())),
    ("root", (0, 0, ())),
    ("app", (1000, 1001, (10, 999))),
    ("1000", (1000, 1001, (10, 999))),          # a number found in passwd takes its gid and groups
    ("app:staff", (1000, 50, (10, 999))),
    ("app:0", (1000, 0, (10, 999))),
    ("4242", (4242, 0, ())),                     # a number not in passwd: as is, gid 0
    ("4242:4343", (4242, 4343, ())),
])
def test_user_strings(rootfs, user, expected):
    assert resolve_user(rootfs, user) == expected


def test_unknown_names_are_refused(rootfs):
    with pytest.raises(ImageError, match="user 'ghost' is not in its /etc/passwd"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(ImageError, match="group 'ghosts' is not in its /etc/group"):
        resolve_user(rootfs, "app:ghosts")


def test_files_are_read_inside_the_rootfs(tmp_path):
    # /etc/passwd -> /etc/passwd: the image's own link, which must not reach the host's file
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").write_text("app:x:7:8::/:/bin/sh\n")
    os.symlink("/real", tmp_path / "etc/passwd")
    assert resolve_user(tmp_path, "app") == (7, 8, ())
    os.unlink(tmp_path / "etc/passwd")
    os.symlink("/etc/shadow", tmp_path / "etc/passwd")  # exists on the host, not in the rootfs
    with pytest.raises(ImageError, match="user 'root' is not in its /etc/passwd"):
        resolve_user(tmp_path, "root")
    os.unlink(tmp_path / "etc/passwd")
    os.symlink("/etc/passwd", tmp_path / "etc/passwd")  # itself, inside the rootfs: a loop
    with pytest.raises(ImageError, match="cannot read /etc/passwd: Too many levels of symbolic links"):
        resolve_user(tmp_path, "root")
