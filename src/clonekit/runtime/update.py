"""runc's ``update``: change a running container's limits in its group and remember them.

The changes are a runtime-spec ``linux.resources`` object holding what runc's update can change
(memory limit/reservation/swap, cpu shares/quota/period/realtime/cpus/mems, pids.limit,
blockIO.weight, unified); a zero or missing field means "unchanged", as in runc.  They are
merged into the container's current resources (the state dir's copy, at first the bundle's
config), the whole set is written to the group in runc's order (so memory and swap are set in an
order the kernel accepts), and the merged set is saved: the live files and the saved resources
agree afterwards.  Unlike runc 1.1, a field not given keeps its old value in the saved set too.
"""

from __future__ import annotations

import os

from .errors import ContainerStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .state import StateDir

__all__ = ["UPDATABLE", "update"]

#: what update changes, per section (runc's `update -r` format); every other field is ignored,
#: as runc ignores it
UPDATABLE: dict[str, tuple[str, ...]] = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle",
            "burst"),
    "blockIO": ("weight",),
    "pids": ("limit",),
}


def update(states: StateDir, container_id: str, changes: dict[str, object]) -> dict[str, object]:
    """Apply ``changes`` (see the module doc) and return the container's resources after it."""
    from ..cgroups import Cgroup
    from ..cgroups.resources import apply
    from ..errors import UsageError
    from .spec_resources import parse_resources

    parse_resources(_only_updatable(changes), "update")  # its own errors first, with its own paths
    with states.lock(container_id):
        st = states.load(container_id)
        status = st.status(states.path(container_id))
        if status not in ("created", "running", "paused"):
            raise ContainerStateError(f"container not running: {container_id!r} is {status}, so it has "
                                      "no live group to update")
        if not st.cgroup:
            raise UsageError(f"container {container_id} has no cgroup (created with --cgroup-manager "
                             "disabled or rootless without a delegated group): there are no limits to update")
        current = st.resources or _created_with(st.bundle)
        merged = merge(current, changes)
        cgroup = Cgroup.load(st.cgroup)
        try:
            apply(cgroup, parse_resources(merged))
        except BaseException:
            try:  # the kernel refused a value midway: put back what was written before it
                apply(cgroup, parse_resources(current))
            except Exception:
                pass  # the first error is the one to report
            raise
        st.resources = merged
        states.save(st)
    return merged


def merge(current: dict[str, object], changes: dict[str, object]) -> dict[str, object]:
    """``current`` with every non-zero updatable field of ``changes`` in its place (runc's
    "0 leaves it unchanged"), plus ``unified`` keys; memory.limit -1 without a swap makes swap
    -1 too (runc: unlimited memory with a swap limit below it would be refused)."""
    out: dict[str, object] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in current.items()}
    for section, value in _only_updatable(changes).items():
        if section == "unified":
            assert isinstance(value, dict)
            out["unified"] = {**(out.get("unified") or {}), **value}  # type: ignore[dict-item]
            continue
        assert isinstance(value, dict)
        into = out.setdefault(section, {})
        assert isinstance(into, dict)
        into.update({k: v for k, v in value.items() if v not in (0, "", None)})
    memory = out.get("memory")
    new_memory = changes.get("memory")
    if (isinstance(memory, dict) and isinstance(new_memory, dict) and new_memory.get("limit") == -1
            and not new_memory.get("swap")):
        memory["swap"] = -1
    return out


def _only_updatable(changes: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for section, keys in UPDATABLE.items():
        value = changes.get(section)
        if isinstance(value, dict):
            out[section] = {k: value[k] for k in keys if k in value}
        elif value is not None:
            out[section] = value  # not an object: parse_resources says so, with the path
    if changes.get("unified") is not None:
        out["unified"] = changes["unified"]
    return out


def _created_with(bundle: str) -> dict[str, object]:
    """The bundle's linux.resources (what create applied) without the device rules."""
    from .._jsonc import loads

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            doc = loads(f.read().decode())
    except (OSError, ValueError):
        return {}
    linux = doc.get("linux") if isinstance(doc, dict) else None
    res = linux.get("resources") if isinstance(linux, dict) else None
    return {k: v for k, v in res.items() if k != "devices"} if isinstance(res, dict) else {}
