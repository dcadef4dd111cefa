"""Fixtures of the sandbox tests: Sandboxes whose cgroups live under /clonekit-test/ (removed
and checked after each test), the escape helper of tests/runtime built static, and an
unprivileged account of this suite's own for the rootless runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from sb_helpers import HIERARCHIES, group_dirs

from clonekit.sandbox import Sandbox

ESCAPE_HELPER_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 "runtime", "escape_helper.c")


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (the rootless runs are in test_sandbox_rootless.py)")


@pytest.fixture
def top() -> Iterator[str]:
    """A cgroup top of the test's own, ``/clonekit-test/sandbox-<hex>``; afterwards no group of
    it may be left in any hierarchy."""
    path = f"/clonekit-test/sandbox-{uuid.uuid4().hex[:10]}"
    yield path
    left = group_dirs(path)
    for d in sorted(left, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass
    assert not left, f"the test left cgroups behind: {left}"


@pytest.fixture
def make(top: str) -> Iterator[Callable[..., Sandbox]]:
    """``make(**options)`` -> a Sandbox (cgroups under ``top``), closed after the test."""
    _needs_root()
    made: list[Sandbox] = []

    def factory(**options: object) -> Sandbox:
        options.setdefault("cgroup_top", top)
        sb = Sandbox(**options)  # type: ignore[arg-type]
        made.append(sb)
        return sb

    yield factory
    for sb in made:
        sb.close()


@pytest.fixture(scope="module")
def plain() -> Iterator[Sandbox]:
    """The default Sandbox (host tree, no limits), shared by a module's tests."""
    _needs_root()
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def helper_dir() -> Iterator[str]:
    """A 0755 directory holding tests/runtime/escape_helper.c built static."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt install gcc)")
    top = tempfile.mkdtemp(prefix="clonekit-sb-helper-")
    try:
        os.chmod(top, 0o755)
        out = subprocess.run([gcc, "-static", "-O2", "-o", os.path.join(top, "escape_helper"),
                              ESCAPE_HELPER_SRC], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip(f"cannot build a static helper (libc6-dev's libc.a?): {out.stderr.strip()[-300:]}")
        yield top
    finally:
        shutil.rmtree(top)


@pytest.fixture(scope="module")
def user() -> Iterator[object]:
    """An unprivileged account of this suite (its own name and subid ranges), removed after."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from unprivileged import session_account

    made = session_account("clonekit-sb-user", 730000)
    got = next(made)
    try:
        if isinstance(got, str):
            pytest.skip(got)
        yield got
    finally:
        for _ in made:
            pass


__all__ = ["HIERARCHIES"]
