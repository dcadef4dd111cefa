"""runc's ``update``: change a running container's limits in its group and remember them.

The changes are a runtime-spec ``linux.resources`` object holding what runc's update can change
(memory limit/reservation/swap, cpu shares/quota/period/realtime/cpus/mems, pids.limit,
blockIO.weight, unified); a zero or missing field means "unchanged", as in runc.  They are
merged into the container's current resources (the state dir's copy: create saves the updatable
part of linux.resources there), the whole set is written to the group in runc's order (so memory
and swap are set in an order the kernel accepts), and the merged set is saved: the live files
and the saved resources agree afterwards.  Unlike runc 1.1, a field not given keeps its old
value in the saved set too.
"""

from __future__ import annotations

from .errors import ContainerStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cgroups.resources import Resources
    from .state import StateDir

__all__ = ["UPDATABLE", "merge", "saved_form", "update"]

#: what update changes, per section (runc's `update -r` format); every other field is ignored,
#: as runc ignores it
UPDATABLE: dict[str, tuple[str, ...]] = {
    "memory": ("limit", "reservation", "swap"),  # kernel memory: ignored with a warning, as runc
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
        current = st.resources
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


def saved_form(res: Resources | None) -> dict[str, object]:
    """The updatable part of ``res`` (create's limits) as a linux.resources object: what the
    state dir keeps for ``update`` to merge into.  Zero fields ("not set") are left out."""
    if res is None:
        return {}
    out: dict[str, object] = {}
    if res.memory is not None:
        m = res.memory
        _section(out, "memory", limit=m.limit, reservation=m.reservation, swap=m.swap)
    if res.cpu is not None:
        c = res.cpu
        _section(out, "cpu", shares=c.shares, quota=c.quota, period=c.period,
                 realtimeRuntime=c.realtime_runtime, realtimePeriod=c.realtime_period,
                 cpus=c.cpus, mems=c.mems, idle=c.idle, burst=c.burst)
    _section(out, "pids", limit=res.pids)
    if res.block_io is not None:
        _section(out, "blockIO", weight=res.block_io.weight)
    if res.unified:
        out["unified"] = dict(res.unified)
    return out


def _section(out: dict[str, object], name: str, **fields: object) -> None:
    kept = {k: v for k, v in fields.items() if v not in (0, "", None)}
    if kept:
        out[name] = kept
