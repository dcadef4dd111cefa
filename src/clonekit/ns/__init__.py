"""Linux namespaces: kinds, values, unshare, enter, id maps, persistence, time offsets.

Names are imported lazily (``import clonekit.ns`` costs almost nothing)::

    from clonekit import ns
    ns.unshare(["net", "uts"])                    # this process, new namespaces
    ns.unshare("user", uid_map=[(0, 1000, 1)])     # map root to uid 1000
    child = ns.fork(["user", "pid"], uid_map=[(0, 1000, 1)])   # 0 in the child, a Task here
    ns.enter(1234, ["net", "mnt"])                 # join another process's namespaces
    me = ns.Namespace.of("self", "pid"); me.parent()
    ns.persist(ns.Namespace.of(pid, "net"), "/run/netns/x"); ns.release("/run/netns/x")
"""

from __future__ import annotations

from .. import _lazy

TYPE_CHECKING = False  # not `typing`: it costs more to import than this package

_EXPORTS = {
    "Kind": "kinds",
    "KERNEL_ORDER": "kinds",
    "parse_kinds": "kinds",
    "kinds_to_flags": "kinds",
    "kinds_from_flags": "kinds",
    "Namespace": "namespace",
    "namespaces_of": "namespace",
    "unshare": "newns",
    "run": "newns",
    "fork": "newns",
    "UnshareSpec": "newns",
    "enter": "setns",
    "NsenterSpec": "setns",
    "IdMap": "idmap",
    "IdRange": "idmap",
    "read_map": "idmap",
    "write_maps": "idmap",
    "subid_ranges": "idmap",
    "persist": "pin",
    "release": "pin",
    "persisted": "pin",
    "set_offsets": "timens",
    "read_offsets": "timens",
    "set_propagation": "propagation",
    "NamespaceError": "errors",
    "NoSuchProcessError": "errors",
    "NotANamespaceError": "errors",
    "WrongKindError": "errors",
    "list_namespaces": "listing",
    "in_user_namespace": "userns",
    "NamespaceRow": "listing",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    # ruff: noqa: F401  (re-exported lazily through __getattr__)
    from .errors import NamespaceError, NoSuchProcessError, NotANamespaceError, WrongKindError
    from .idmap import IdMap, IdRange, read_map, subid_ranges, write_maps
    from .kinds import KERNEL_ORDER, Kind, kinds_from_flags, kinds_to_flags, parse_kinds
    from .listing import NamespaceRow, list_namespaces
    from .namespace import Namespace, namespaces_of
    from .newns import UnshareSpec, fork, run, unshare
    from .pin import persist, persisted, release
    from .propagation import set_propagation
    from .setns import NsenterSpec, enter
    from .timens import read_offsets, set_offsets
    from .userns import in_user_namespace


def __getattr__(name: str) -> Any:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
