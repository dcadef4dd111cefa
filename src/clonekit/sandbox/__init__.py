"""Sandboxes: run a command or untrusted code in a fresh, locked-down container, from Python,
in milliseconds (see :class:`Sandbox`)::

    with clonekit.Sandbox(memory="256m", pids=64, timeout=5) as sb:
        r = sb.run(["python3", "-c", "print(6 * 7)"])
        r.stdout, r.returncode, r.timed_out, r.oom_killed, r.peak_memory

Modules: ``sandbox`` (the API), ``options`` (the checked records), ``tree`` (the mount tree as
child ops), ``confine`` (capabilities, ids, no_new_privs, seccomp as child ops), ``profile``
(the default seccomp filter), ``groups`` (the cgroup pool), ``result`` (Result, the parent's
I/O loop), ``ops`` and ``nr`` (the op list ``_native.sandbox_spawn`` runs).
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False

_EXPORTS = {
    "Sandbox": "sandbox",
    "Result": "result",
    "SandboxError": "errors",
    "SandboxUsageError": "errors",
}

__all__ = ["Result", "Sandbox", "SandboxError", "SandboxUsageError"]

if TYPE_CHECKING:  # pragma: no cover
    from .errors import SandboxError, SandboxUsageError
    from .result import Result
    from .sandbox import Sandbox


def __getattr__(name: str) -> object:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
