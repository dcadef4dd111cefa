"""Fixtures of the /proc tests: controlled processes, reaped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proc_helpers import Family, start_family, stop_family


@pytest.fixture
def family() -> Iterator[Family]:
    """A python process with 4 extra threads (NLWP 5) and 2 `sleep` children."""
    fam = start_family(4, 2)
    try:
        yield fam
    finally:
        stop_family(fam.proc, fam.kids)
