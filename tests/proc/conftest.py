"""Fixtures of the /proc tests: controlled processes, reaped afterwards, and a leak guard."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from proc_helpers import Family, start_family, stop_family


@pytest.fixture(autouse=True)
def no_stray_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, no process the test started (directly or not) may still exist.

    Every process started during a test inherits ``PYTEST_CURRENT_TEST`` naming that test, so
    even orphans reparented away from pytest are found.  Leaked ones are killed (they are ours)
    and the test fails.
    """
    yield
    mark = f"PYTEST_CURRENT_TEST={request.node.nodeid} (".encode()
    me = os.getpid()
    deadline = time.monotonic() + 5
    while True:
        stray = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if mark in f.read():
                        stray.append(int(name))
            except OSError:
                continue
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # killed ones may still be exiting
    for pid in stray:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not stray, f"the test left processes behind: {stray}"


@pytest.fixture
def family() -> Iterator[Family]:
    """A python process with 4 extra threads (NLWP 5) and 2 `sleep` children."""
    fam = start_family(4, 2)
    try:
        yield fam
    finally:
        stop_family(fam.proc, fam.kids)
