"""Fixtures of the cgroup tests: real groups under a clonekit-owned top-level group
(``/clonekit-test-cg`` in every hierarchy), and fake /sys/fs/cgroup trees for other layouts."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cg_helpers import TOP, leftovers

from clonekit.cgroups import detect


@pytest.fixture
def real() -> Iterator[str]:
    """A unique absolute cgroupsPath ``/clonekit-test-cg/<hex>`` on the real host.  Afterwards the
    test must have left nothing: no ``clonekit-test-cg`` directory in any hierarchy."""
    if os.geteuid() != 0:
        pytest.skip("needs root (makes cgroups)")
    if detect().mode == "none":
        pytest.skip("no cgroup filesystem is mounted")
    assert not leftovers(), f"groups left by an earlier test: {leftovers()}"
    path = f"{TOP}/{uuid.uuid4().hex[:12]}"
    yield path
    left = leftovers()
    _scrub(left)
    assert not left, f"the test left cgroup directories behind: {left}"


def _scrub(dirs: list[str]) -> None:
    """Last resort after a failed test: kill what we started in our groups, remove them (the
    kernel may take a moment to let go of killed tasks)."""
    for top in dirs:
        for root, _, _ in os.walk(top):
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + 5
    for top in dirs:
        for root, _, _ in sorted(os.walk(top), key=lambda x: len(x[0]), reverse=True):
            while True:
                try:
                    os.rmdir(root)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


@pytest.fixture
def fake_root(tmp_path: object) -> Iterator[str]:
    """A temp dir in which a fake /sys/fs/cgroup tree is laid out (see cg_helpers.fake_layout)."""
    path = str(tmp_path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _no_test_groups_left() -> Iterator[None]:
    yield
    if os.geteuid() == 0:
        assert not leftovers(), f"the cgroup tests left groups: {leftovers()}"
