from __future__ import annotations

import os
import uuid

import pytest

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def cgroup2_dir():
    """A fresh cgroup2 directory under a clonekit-owned top-level group; removed afterwards."""
    if not os.path.isdir(UNIFIED):
        pytest.skip(f"no cgroup2 hierarchy at {UNIFIED}")
    top = os.path.join(UNIFIED, "clonekit-test")
    path = os.path.join(top, uuid.uuid4().hex[:12])
    os.makedirs(path)
    try:
        yield path
    finally:
        os.rmdir(path)
        try:
            os.rmdir(top)
        except OSError:
            pass  # another test still uses it
