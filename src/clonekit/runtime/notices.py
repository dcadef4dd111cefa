"""Where the runtime's notices go: things the caller should know that are not errors (a
container placed in no cgroup, device rules nobody enforces).

The library says them here; the front end decides where they land.  The CLI points this at
--log (podman and containerd hand the runtime's stderr to the container's own log, so a notice
there would read as the container's output); without a sink they go to stderr.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["notice", "set_sink"]

_sink: Callable[[str], None] | None = None


def set_sink(sink: Callable[[str], None] | None) -> None:
    """Send every later notice to ``sink`` (None: back to stderr)."""
    global _sink
    _sink = sink


def notice(message: str) -> None:
    if _sink is not None:
        _sink(message)
    else:
        print(f"clonekit: notice: {message}", file=sys.stderr)
