"""clonekit: Linux clone()/clone3() for Python, from the syscall to the container.

Names are imported lazily: ``import clonekit`` costs almost nothing, and the CLI (launched once
per container) only pays for what it uses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import ...`: typing alone costs more than clonekit

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Error": "errors",
    "UsageError": "errors",
    "KernelError": "errors",
    "CloneFlag": "flags",
    "parse_flags": "flags",
    "CloneFlagsError": "rules",
    "check": "rules",
    "explain": "sharing",
    "Explanation": "sharing",
    "clone": "process",
    "spawn": "process",
    "CloneRefused": "process",
    "Task": "task",
    "probe": "observe",
    "PRESETS": "observe",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .errors import Error, KernelError, UsageError
    from .sharing import Explanation, explain
    from .flags import CloneFlag, parse_flags
    from .observe import PRESETS, probe
    from .process import CloneRefused, clone, spawn
    from .rules import CloneFlagsError, check
    from .task import Task


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clonekit' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
