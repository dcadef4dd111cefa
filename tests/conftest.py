"""Suite-wide guard: the tests together leave no fd, child process or clonekit mount behind."""

from __future__ import annotations

import os

import pytest


def _children() -> set[int]:
    me = str(os.getpid())
    kids = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                kids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return kids


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _clonekit_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "clonekit" in line]


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_the_end():
    fds, kids, mounts = _fds(), _children(), _clonekit_mounts()
    yield
    leaked_kids = _children() - kids
    assert not leaked_kids, f"the suite left child processes (zombies or running): {leaked_kids}"
    leaked = {fd: _describe(fd) for fd in _fds() - fds}
    leaked = {fd: what for fd, what in leaked.items() if what is not None}
    assert not leaked, f"the suite leaked fds: {leaked}"
    assert _clonekit_mounts() == mounts, "the suite left clonekit mounts behind"


def _describe(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # closed meanwhile (e.g. the listing's own fd)
