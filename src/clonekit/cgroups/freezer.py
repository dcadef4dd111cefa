"""Is a container's group paused?  Read from its freezers, cheaply: ``state``, ``start`` and
``kill`` ask on every call, and loading :mod:`.group` only to read two small files would cost
them a millisecond.  Freezing and thawing are :meth:`.group.Cgroup.freeze` / ``thaw``."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dirs_from_state", "self_frozen"]


def self_frozen(v1: str | None, v2: str | None) -> bool:
    """Whether the group itself is frozen by either freezer: the v1 freezer's
    ``freezer.self_freezing`` (a frozen ancestor does not count, as runc reads it) or the
    cgroup2 group's ``cgroup.freeze``.  False for a group that is gone."""
    for path in (v1 and os.path.join(v1, "freezer.self_freezing"), v2 and os.path.join(v2, "cgroup.freeze")):
        if path is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if os.read(fd, 16).strip() == b"1":
                return True
        finally:
            os.close(fd)
    return False


def dirs_from_state(state: dict[str, Any]) -> tuple[str | None, str | None]:
    """The v1 freezer directory and the cgroup2 directory of a group saved by
    :meth:`.group.Cgroup.to_state` (without rebuilding the group)."""
    v1 = v2 = None
    for h in state.get("hierarchies", ()):
        if h.get("version") == 2:
            v2 = str(h["dir"])
        elif "freezer" in str(h.get("key", "")).split(","):
            v1 = str(h["dir"])
    return v1, v2
