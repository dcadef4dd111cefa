"""Fixtures of the image tests: ``unpack_layers(*layers)`` writes a one-image OCI layout of hand-made
layers under the test's temp dir and unpacks it into a private cache; ``sentinel`` is a host
directory outside every rootfs that no extraction may touch."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from image_helpers import oci_layout

from clonekit.images import UnpackedImage, unpack


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def unpack_layers(tmp_path: Path, cache: Path) -> Callable[..., UnpackedImage]:
    count = 0

    def make(*layers: list[Any], **kw: Any) -> UnpackedImage:
        nonlocal count
        count += 1
        layout = oci_layout(str(tmp_path / f"image{count}"), list(layers), **kw)
        return unpack(layout, cache_dir=cache)

    return make


def tree_digest(path: str) -> str:
    """Names, types, modes and contents of everything under ``path`` (symlinks not followed)."""
    h = hashlib.sha256()
    for top, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            st = os.lstat(full)
            h.update(f"{full}:{st.st_mode}:{st.st_nlink}:{st.st_mtime_ns}".encode())
            if os.path.islink(full):
                h.update(os.readlink(full).encode())
            elif os.path.isfile(full):
                with open(full, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


@pytest.fixture
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A host directory with a file; the test fails if anything under it changed."""
    top = tmp_path_factory.mktemp("sentinel")
    (top / "secret").write_text("host data\n")
    before = tree_digest(str(top))
    passwd = os.stat("/etc/passwd")
    yield top
    assert tree_digest(str(top)) == before, "an extraction changed a host directory"
    after = os.stat("/etc/passwd")
    def key(st: os.stat_result) -> tuple[int, int, int]:
        return st.st_ino, st.st_nlink, st.st_mtime_ns

    same = key(after) == key(passwd)
    assert same, "an extraction changed the host's /etc/passwd"
