"""``wait_for``: poll until a condition holds, shared by the test helpers of every area.

Importable as ``waiting`` from any test directory: pytest puts ``tests/`` on sys.path for the
top-level conftest.py (no ``__init__.py`` here, default "prepend" import mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.01) -> Any:
    """The first truthy value of ``predicate()``, polled every ``interval`` seconds; an
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
