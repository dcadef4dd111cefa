"""Fixtures of the rootfs tests: a tiny busybox rootfs, throwaway children in their own mount
namespace (and user namespace for the rootless cases), and a check that the host's mount table
is the same after every test."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest
from rootfs_helpers import ROOTLESS_ID, TAG

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "ls", "stat", "mount", "touch", "echo", "true", "readlink", "mknod")


@pytest.fixture
def rootfs(tmp_path):
    """A minimal rootfs: /bin/busybox + applet links, and the usual empty directories."""
    return make_rootfs(tmp_path / "rootfs")


@pytest.fixture
def unprivileged_rootfs():
    """A rootfs owned by host uid/gid 100000 (container root of a rootless map), in a directory
    that uid can reach (pytest's tmp_path is 0700 root)."""
    top = tempfile.mkdtemp(prefix="ck-rootless-", dir="/tmp")
    os.chmod(top, 0o755)
    try:
        root = make_rootfs(pathlib.Path(top) / "rootfs")
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), ROOTLESS_ID, ROOTLESS_ID, follow_symlinks=False)
        yield root
    finally:
        shutil.rmtree(top)


def make_rootfs(root: pathlib.Path) -> str:
    if not os.path.exists(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is missing (Debian package busybox-static)")
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "mnt", "run"):
        (root / d).mkdir(parents=True)
    # a copy: with a hard link the container could write the host's binary
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "hostname").write_text("rootfs\n")
    return str(root)


def _host_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def _root_line(lines: list[str]) -> str:
    return next(line for line in lines if line.split()[4] == "/")


@pytest.fixture(autouse=True)
def host_mount_table_unchanged(tmp_path):
    """Nothing a test did in its children shows in the host's mount table: no mount below the
    test's temp dir, none tagged by the tests, and the host's "/" keeps its propagation."""
    before = _host_mounts()
    yield
    after = _host_mounts()
    new = set(after) - set(before)
    ours = [line for line in new if str(tmp_path) in line or TAG in line or "ck-rootless-" in line]
    assert not ours, f"mounts leaked to the host: {ours}"
    assert _root_line(after).split(" - ")[0].split()[6:] == _root_line(before).split(" - ")[0].split()[6:]


