"""Is this process in a user namespace other than the initial one?

The question runc asks (libcontainer/userns.RunningInUserNS) to tell "root" from "uid 0 of
someone else's user namespace" -- rootless podman, a rootless container engine, a user's
``unshare -r``: there uid 0 cannot create cgroups it was not delegated, nor device nodes.
"""

from __future__ import annotations

__all__ = ["in_user_namespace"]

# the initial user namespace maps every id onto itself: one line "0 0 4294967295"
_IDENTITY = [b"0", b"0", b"4294967295"]


def in_user_namespace(uid_map: str = "/proc/self/uid_map") -> bool:
    """True unless ``uid_map`` is the initial namespace's identity map (an unreadable map, as
    in runc, counts as the initial namespace; an empty one -- not written yet -- does not)."""
    try:
        with open(uid_map, "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != _IDENTITY
