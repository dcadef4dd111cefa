"""Helpers shared by the core tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import pytest


def in_child(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a forked child (a throwaway caller state) and return its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            try:
                data = pickle.dumps(("ok", fn()))
            except BaseException as exc:
                data = pickle.dumps(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data, "the child died before reporting"
    kind, value = pickle.loads(data)
    if kind == "error":
        pytest.fail(f"in the child: {value}")
    return value
