"""Where the runtime's notices go: things the caller should know that are not errors (a
container placed in no cgroup, device rules nobody enforces, a config.json field nobody reads).

The library says them here; the front end decides where they land.  The CLI points this at
--log (podman and containerd hand the runtime's stderr to the container's own log, so a notice
there would read as the container's output).  Without a sink a notice goes to stderr; a warning
(:func:`warning`: advice about the config, which runc and crun do not print at all) goes nowhere.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["heard", "notice", "set_sink", "warning"]

#: called as sink(message) for a notice, sink(message, "warning") for a warning
_sink: Callable[..., None] | None = None


def set_sink(sink: Callable[..., None] | None) -> None:
    """Send every later notice and warning to ``sink`` (None: notices back to stderr, warnings
    dropped).  ``sink(message, level="notice")``: level is "notice" or "warning"."""
    global _sink
    _sink = sink


def notice(message: str) -> None:
    if _sink is not None:
        _sink(message)
    else:
        print(f"clonekit: notice: {message}", file=sys.stderr)


def warning(message: str) -> None:
    """Advice for whoever reads the log (--log), e.g. "did you mean ...?" for an unknown
    config.json field.  Never on stderr: a runtime that ignores an unknown field as the
    runtime-spec requires must not talk over the container's output about it."""
    if _sink is not None:
        _sink(message, "warning")


def heard() -> bool:
    """Whether a warning would land anywhere (to skip composing one nobody reads)."""
    return _sink is not None
