"""Fixtures of the namespace tests: a private scratch mount and an unprivileged user."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from ns_helpers import mounts_with

from unprivileged import Account, session_account

USER = "clonekit-test-user"
SUBID_START = 610000


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def scratch() -> Iterator[str]:
    """A temp directory that is its own private tmpfs mount (persisting a mount namespace needs a
    mount that does not propagate).  Everything mounted below it is detached afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts a tmpfs)")
    path = tempfile.mkdtemp(prefix="clonekit-ns-")
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "clonekit-ns-scratch", path)
    try:
        _mount("--make-private", path)
        yield path
    finally:
        for line in reversed(mounts_with(path)):  # innermost first: persisted namespaces, then tmpfs
            point = line.split()[4]
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        os.rmdir(path)
    assert not mounts_with(path), "a mount under the scratch directory was left behind"


@pytest.fixture(scope="session")
def rootless(python_for_user) -> Iterator[Account]:
    """``clonekit-test-user`` created for the session (useradd + subuid/subgid), removed after."""
    made = session_account(USER, SUBID_START)
    got = next(made)
    try:
        if isinstance(got, str):
            pytest.skip(got)
        got.python = python_for_user(got.uid, got.gid)
        yield got
    finally:
        for _ in made:  # the generator's cleanup: userdel and our subid lines
            pass
