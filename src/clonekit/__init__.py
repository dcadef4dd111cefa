"""clonekit: Linux clone()/clone3() for Python, from the syscall to the container.

Names are imported lazily: ``import clonekit`` costs almost nothing, and the CLI (launched once
per container) only pays for what it uses.
"""

from __future__ import annotations

from . import _lazy

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
    "CallerState": "rules",
    "RULES": "rules",
    "LIBC_SETS": "sharing",
    "explain": "sharing",
    "Explanation": "sharing",
    "clone": "process",
    "spawn": "process",
    "CloneRefused": "process",
    "Task": "task",
    "probe": "observe",
    "PRESETS": "observe",
    "Sandbox": "sandbox",
    "SandboxError": "sandbox",
}

__all__ = sorted(_EXPORTS)  # the subpackages below are attributes, not star-exports

# subpackages, imported on first attribute access: clonekit.ns, clonekit.proc, ...
_EXPORTS.update(dict.fromkeys(("ns", "proc", "runtime", "cgroups", "rootfs", "sandbox", "images"), ""))

if TYPE_CHECKING:  # pragma: no cover
    from .errors import Error as Error
    from .errors import KernelError as KernelError
    from .errors import UsageError as UsageError
    from .flags import CloneFlag as CloneFlag
    from .flags import parse_flags as parse_flags
    from .observe import PRESETS as PRESETS
    from .observe import probe as probe
    from .process import CloneRefused as CloneRefused
    from .process import clone as clone
    from .process import spawn as spawn
    from .rules import RULES as RULES
    from .rules import CallerState as CallerState
    from .rules import CloneFlagsError as CloneFlagsError
    from .rules import check as check
    from .sandbox import Sandbox as Sandbox
    from .sandbox import SandboxError as SandboxError
    from .sharing import LIBC_SETS as LIBC_SETS
    from .sharing import Explanation as Explanation
    from .sharing import explain as explain
    from .task import Task as Task


def __getattr__(name: str) -> object:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
