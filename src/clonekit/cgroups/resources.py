"""linux.resources written to a container's group: the v1 files where a controller is a cgroup v1
hierarchy, the cgroup2 files where it is on the unified hierarchy, with runc's conversions
between the two (shares -> cpu.weight, blkio weight -> io.weight, memsw -> memory.swap.max).

:class:`Resources` is plain data (``runtime.spec_resources`` parses it from config.json with JSON
paths); :func:`apply` writes it.  A limit the host cannot carry (no controller for the group) is
an error naming the controller and the JSON path, never a silent no-op.  Only groups clonekit
made are written to: the container's own group and, to enable a cgroup2 controller, the
clonekit-owned parents between it and the first group clonekit did not make.
"""

from __future__ import annotations

import errno
import os

from .._record import record
from ..errors import UsageError
from .errors import CgroupError, cgroup_error

__all__ = ["BlockIO", "Cpu", "DeviceRate", "DeviceWeight", "Memory", "Network", "Rdma", "Resources",
           "apply", "cpu_weight", "io_weight", "swap_v2", "write_controller"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .group import Cgroup

R = "$.linux.resources"


@record(frozen=True)
class Memory:
    limit: int = 0          # 0: not set, -1: unlimited (runc's reading of the spec's int64s)
    reservation: int = 0
    swap: int = 0           # the v1 meaning: memory + swap
    kernel: int = 0         # kernel and kernelTCP: kept, never written (runc 1.1 ignores both,
    kernel_tcp: int = 0     # with a warning: the kernel deprecated kmem limits)
    swappiness: int | None = None
    disable_oom_killer: bool = False
    check_before_update: bool = False


@record(frozen=True)
class Cpu:
    shares: int = 0
    quota: int = 0
    period: int = 0
    burst: int | None = None
    realtime_runtime: int = 0
    realtime_period: int = 0
    cpus: str = ""
    mems: str = ""
    idle: int | None = None


@record(frozen=True)
class DeviceWeight:
    major: int
    minor: int
    weight: int = 0
    leaf_weight: int = 0


@record(frozen=True)
class DeviceRate:
    major: int
    minor: int
    rate: int


@record(frozen=True)
class BlockIO:
    weight: int = 0
    leaf_weight: int = 0
    weight_device: tuple[DeviceWeight, ...] = ()
    read_bps: tuple[DeviceRate, ...] = ()
    write_bps: tuple[DeviceRate, ...] = ()
    read_iops: tuple[DeviceRate, ...] = ()
    write_iops: tuple[DeviceRate, ...] = ()


@record(frozen=True)
class Network:
    class_id: int | None = None
    priorities: tuple[tuple[str, int], ...] = ()


@record(frozen=True)
class Rdma:
    device: str
    hca_handles: int | None = None
    hca_objects: int | None = None


@record(frozen=True)
class Resources:
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: int = 0                    # pids.limit: 0 not set, < 0 "max"
    block_io: BlockIO | None = None
    hugepages: tuple[tuple[str, int], ...] = ()   # (page size as "2MB", limit in bytes)
    network: Network | None = None
    rdma: tuple[Rdma, ...] = ()
    unified: tuple[tuple[str, str], ...] = ()

    def where(self) -> str:
        """The JSON paths of the limits set, for errors ("$.linux.resources.pids, ...")."""
        paths = dict.fromkeys(p for _, p in self.controllers())
        if self.unified:
            paths[f"{R}.unified"] = None
        return ", ".join(paths) or R

    def controllers(self) -> list[tuple[str, str]]:
        """(controller, JSON path) for each section set, in runc's order of subsystems."""
        out = []
        if self.cpu is not None and (self.cpu.cpus or self.cpu.mems):
            out.append(("cpuset", f"{R}.cpu"))
        if self.memory is not None and self.memory != Memory():
            out.append(("memory", f"{R}.memory"))
        if self.cpu is not None and self.cpu != Cpu(cpus=self.cpu.cpus, mems=self.cpu.mems):
            out.append(("cpu", f"{R}.cpu"))
        if self.pids:
            out.append(("pids", f"{R}.pids"))
        if self.block_io is not None and self.block_io != BlockIO():
            out.append(("blkio", f"{R}.blockIO"))
        if self.hugepages:
            out.append(("hugetlb", f"{R}.hugepageLimits"))
        if self.network is not None and self.network.class_id is not None:
            out.append(("net_cls", f"{R}.network.classID"))
        if self.network is not None and self.network.priorities:
            out.append(("net_prio", f"{R}.network.priorities"))
        if self.rdma:
            out.append(("rdma", f"{R}.rdma"))
        return out


# -- runc's v1 -> v2 conversions ------------------------------------------------------------

def cpu_weight(shares: int) -> int:
    """cpu.shares [2, 262144] onto cpu.weight [1, 10000] (runc's ConvertCPUSharesToCgroupV2Value)."""
    return 0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142


def io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] onto io.weight [1, 10000] (runc's convertBlkIOToIOWeightValue)."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def swap_v2(swap: int, limit: int) -> int:
    """The spec's swap (v1: memory + swap) as memory.swap.max (swap alone); 0: leave as is."""
    if limit == -1 and swap == 0:
        return -1          # "both unlimited", as on v1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise _bad(f"{R}.memory.swap", "a swap limit needs a memory limit (cgroup v2 limits swap "
                   "alone, computed as swap - limit); set memory.limit too")
    if swap < limit:
        raise _bad(f"{R}.memory.swap", f"memory+swap ({swap}) is below the memory limit ({limit}); "
                   "swap counts memory plus swap, so make it at least the limit")
    return swap - limit


def _num(value: int) -> str:
    return "max" if value == -1 else str(value)


# -- applying -------------------------------------------------------------------------------

def apply(cgroup: Cgroup, res: Resources) -> None:
    """Write ``res`` to ``cgroup`` (made by clonekit), controller by controller in runc's order."""
    state = cgroup.to_state()
    v2 = cgroup.v2_dir
    for controller, path in res.controllers():
        where = cgroup.controller_dir(controller)
        if where is None:
            raise CgroupError(errno.EOPNOTSUPP, f"this host has no {controller} controller for the "
                              f"container's group (neither a cgroup v1 hierarchy nor in cgroup2's "
                              f"cgroup.controllers), so the limit cannot be applied; remove the field",
                              step=f"set {path}", filename=cgroup.path or "")
        version = 2 if where == v2 else 1
        if version == 2:
            _enable(state, where, _V2_NAME.get(controller, controller), path)
        write_controller(controller, where, version, res)
    if res.unified:
        if v2 is None:
            raise _bad(f"{R}.unified", "this host has no cgroup2 group for the container; remove "
                       "the field (it holds cgroup v2 files)")
        for key, value in res.unified:
            ctrl = key.split(".", 1)[0]
            path = f"{R}.unified[\"{key}\"]"
            if ctrl != "cgroup" and cgroup.controller_dir(ctrl) != v2:
                raise _bad(path, f"the {ctrl} controller is not on cgroup2 here (a cgroup v1 hierarchy "
                           f"or absent), so a v2 file of it cannot be written; use the matching "
                           f"linux.resources field instead")
            if ctrl != "cgroup":
                _enable(state, v2, ctrl, path)
            _put(v2, key, value, path)


_V2_NAME = {"blkio": "io"}


def write_controller(controller: str, where: str, version: int, res: Resources) -> None:
    """One controller's files in ``where`` (a v1 hierarchy's group, or the cgroup2 group)."""
    if controller == "cpuset":
        assert res.cpu is not None
        # each is checked against the parent's own set alone: runc's order (cpus, mems)
        if res.cpu.cpus:
            _put(where, "cpuset.cpus", res.cpu.cpus, f"{R}.cpu.cpus")
        if res.cpu.mems:
            _put(where, "cpuset.mems", res.cpu.mems, f"{R}.cpu.mems")
    elif controller == "memory":
        assert res.memory is not None
        (_memory_v1 if version == 1 else _memory_v2)(where, res.memory)
    elif controller == "cpu":
        assert res.cpu is not None
        (_cpu_v1 if version == 1 else _cpu_v2)(where, res.cpu)
    elif controller == "pids":
        _put(where, "pids.max", "max" if res.pids < 0 else str(res.pids), f"{R}.pids.limit")
    elif controller == "blkio":
        assert res.block_io is not None
        (_blkio_v1 if version == 1 else _io_v2)(where, res.block_io)
    elif controller == "hugetlb":
        suffix = "limit_in_bytes" if version == 1 else "max"
        for i, (size, limit) in enumerate(res.hugepages):
            _put(where, f"hugetlb.{size}.{suffix}", str(limit), f"{R}.hugepageLimits[{i}]")
            # the reservation limit too where the kernel (5.7+) accounts reservations, as runc
            if os.path.exists(f"{where}/hugetlb.{size}.rsvd.{suffix}"):
                _put(where, f"hugetlb.{size}.rsvd.{suffix}", str(limit), f"{R}.hugepageLimits[{i}]")
    elif controller == "net_cls":
        assert res.network is not None
        _put(where, "net_cls.classid", str(res.network.class_id), f"{R}.network.classID")
    elif controller == "net_prio":
        assert res.network is not None
        for i, (name, prio) in enumerate(res.network.priorities):
            _put(where, "net_prio.ifpriomap", f"{name} {prio}", f"{R}.network.priorities[{i}]")
    elif controller == "rdma":
        for i, r in enumerate(res.rdma):
            parts = [r.device]
            if r.hca_handles is not None:
                parts.append(f"hca_handle={r.hca_handles}")
            if r.hca_objects is not None:
                parts.append(f"hca_object={r.hca_objects}")
            _put(where, "rdma.max", " ".join(parts), f"{R}.rdma[{i}]")


def _memory_v1(where: str, m: Memory) -> None:
    swap = m.swap
    if m.limit == -1 and swap == 0 and os.path.exists(f"{where}/memory.memsw.limit_in_bytes"):
        swap = -1            # "unlimited memory" lifts the memsw limit too (runc)
    if m.check_before_update and m.limit > 0:
        usage = _read_int(where, "memory.usage_in_bytes")
        if usage is not None and usage >= m.limit:
            raise _bad(f"{R}.memory.limit", f"the group already uses {usage} bytes, more than the new "
                       f"limit {m.limit} (checkBeforeUpdate); raise the limit")
    # the kernel keeps limit <= memsw: raising memsw first when it grows past today's limit
    # (or goes unlimited), else the limit first -- runc's order
    memsw_first = False
    if m.limit and swap:
        current = _read_int(where, "memory.limit_in_bytes")
        memsw_first = swap == -1 or (current is not None and current < swap)
    steps = [("memory.limit_in_bytes", m.limit, "limit"), ("memory.memsw.limit_in_bytes", swap, "swap")]
    for name, value, key in (steps[::-1] if memsw_first else steps):
        if value:
            _put(where, name, str(value), f"{R}.memory.{key}")
    if m.reservation:
        _put(where, "memory.soft_limit_in_bytes", str(m.reservation), f"{R}.memory.reservation")
    if m.disable_oom_killer:
        _put(where, "memory.oom_control", "1", f"{R}.memory.disableOOMKiller")
    if m.swappiness is not None and m.swappiness != -1:
        _put(where, "memory.swappiness", str(m.swappiness), f"{R}.memory.swappiness")


def _memory_v2(where: str, m: Memory) -> None:
    if m.swappiness not in (None, -1):
        raise _bad(f"{R}.memory.swappiness", "cgroup v2 has no per-group swappiness (the memory "
                   "controller is on cgroup2 here); remove the field")
    if m.check_before_update and m.limit > 0:
        usage = _read_int(where, "memory.current")
        if usage is not None and usage >= m.limit:
            raise _bad(f"{R}.memory.limit", f"the group already uses {usage} bytes, more than the new "
                       f"limit {m.limit} (checkBeforeUpdate); raise the limit")
    swap = swap_v2(m.swap, m.limit)
    if swap or m.swap > 0:          # limit == swap: no swap at all ("0"), as runc
        _put(where, "memory.swap.max", _num(swap), f"{R}.memory.swap")
    if m.limit:
        _put(where, "memory.max", _num(m.limit), f"{R}.memory.limit")
    if m.reservation:
        _put(where, "memory.low", _num(m.reservation), f"{R}.memory.reservation")
    if m.disable_oom_killer:
        _put(where, "memory.oom.group", "0", f"{R}.memory.disableOOMKiller")


def _cpu_v1(where: str, c: Cpu) -> None:
    if c.shares:
        _put(where, "cpu.shares", str(c.shares), f"{R}.cpu.shares")
        got = _read_int(where, "cpu.shares")
        if got is not None and got != c.shares:
            raise _bad(f"{R}.cpu.shares", f"the kernel took {c.shares} as {got}: cpu.shares must be "
                       "between 2 and 262144; use a value in that range")
    period_later = False
    if c.period:
        try:
            _put(where, "cpu.cfs_period_us", str(c.period), f"{R}.cpu.period")
        except CgroupError as exc:
            # a shorter period can exceed the parent's quota until the new quota is in: retry after
            if exc.errno != errno.EINVAL or not c.quota:
                raise
            period_later = True
    if c.quota:
        _put(where, "cpu.cfs_quota_us", str(c.quota), f"{R}.cpu.quota")
        if period_later:
            _put(where, "cpu.cfs_period_us", str(c.period), f"{R}.cpu.period")
    if c.burst is not None:
        _put(where, "cpu.cfs_burst_us", str(c.burst), f"{R}.cpu.burst")
    if c.realtime_period:
        _put(where, "cpu.rt_period_us", str(c.realtime_period), f"{R}.cpu.realtimePeriod")
    if c.realtime_runtime:
        _put(where, "cpu.rt_runtime_us", str(c.realtime_runtime), f"{R}.cpu.realtimeRuntime")
    if c.idle is not None:
        _put(where, "cpu.idle", str(c.idle), f"{R}.cpu.idle")


def _cpu_v2(where: str, c: Cpu) -> None:
    if c.realtime_period or c.realtime_runtime:
        raise _bad(f"{R}.cpu.realtimeRuntime", "cgroup v2 has no realtime cpu budget per group (the "
                   "cpu controller is on cgroup2 here); remove realtimeRuntime/realtimePeriod")
    if c.idle:
        _put(where, "cpu.idle", str(c.idle), f"{R}.cpu.idle")
    if c.shares:
        _put(where, "cpu.weight", str(cpu_weight(c.shares)), f"{R}.cpu.shares")
    if c.quota or c.period:
        value = str(c.quota) if c.quota > 0 else "max"
        if c.period:
            value += f" {c.period}"
        _put(where, "cpu.max", value, f"{R}.cpu.quota")
    if c.burst is not None:
        _put(where, "cpu.max.burst", str(c.burst), f"{R}.cpu.burst")


def _blkio_v1(where: str, b: BlockIO) -> None:
    if b.weight:
        # BFQ's file where the CFQ one is gone (runc looks for either)
        name = "blkio.weight" if os.path.exists(f"{where}/blkio.weight") else "blkio.bfq.weight"
        _put(where, name, str(b.weight), f"{R}.blockIO.weight")
    if b.leaf_weight:
        _put(where, "blkio.leaf_weight", str(b.leaf_weight), f"{R}.blockIO.leafWeight")
    for i, d in enumerate(b.weight_device):
        path = f"{R}.blockIO.weightDevice[{i}]"
        if d.weight:
            name = "blkio.weight_device" if os.path.exists(f"{where}/blkio.weight_device") \
                else "blkio.bfq.weight_device"
            _put(where, name, f"{d.major}:{d.minor} {d.weight}", path)
        if d.leaf_weight:
            _put(where, "blkio.leaf_weight_device", f"{d.major}:{d.minor} {d.leaf_weight}", path)
    for key, file, rates in (("throttleReadBpsDevice", "read_bps_device", b.read_bps),
                             ("throttleWriteBpsDevice", "write_bps_device", b.write_bps),
                             ("throttleReadIOPSDevice", "read_iops_device", b.read_iops),
                             ("throttleWriteIOPSDevice", "write_iops_device", b.write_iops)):
        for i, r in enumerate(rates):
            _put(where, f"blkio.throttle.{file}", f"{r.major}:{r.minor} {r.rate}",
                 f"{R}.blockIO.{key}[{i}]")


def _io_v2(where: str, b: BlockIO) -> None:
    if b.leaf_weight or any(d.leaf_weight for d in b.weight_device):
        raise _bad(f"{R}.blockIO.leafWeight", "cgroup v2 has no leaf weights (the io controller is "
                   "on cgroup2 here); remove leafWeight")
    bfq = os.path.exists(f"{where}/io.bfq.weight")
    if b.weight:
        if bfq:
            _put(where, "io.bfq.weight", str(b.weight), f"{R}.blockIO.weight")
        else:
            _put(where, "io.weight", str(io_weight(b.weight)), f"{R}.blockIO.weight")
    for i, d in enumerate(b.weight_device):
        if d.weight:
            if not bfq:
                raise _bad(f"{R}.blockIO.weightDevice[{i}]", "per-device weights on cgroup v2 need the "
                           "BFQ scheduler (io.bfq.weight), which this host's group lacks; remove the entry")
            _put(where, "io.bfq.weight", f"{d.major}:{d.minor} {d.weight}", f"{R}.blockIO.weightDevice[{i}]")
    for key, word, rates in (("throttleReadBpsDevice", "rbps", b.read_bps),
                             ("throttleWriteBpsDevice", "wbps", b.write_bps),
                             ("throttleReadIOPSDevice", "riops", b.read_iops),
                             ("throttleWriteIOPSDevice", "wiops", b.write_iops)):
        for i, r in enumerate(rates):
            _put(where, "io.max", f"{r.major}:{r.minor} {word}={_num(r.rate) if r.rate else 'max'}",
                 f"{R}.blockIO.{key}[{i}]")


# -- cgroup2 controller enabling ------------------------------------------------------------

def _enable(state: dict[str, Any], group: str, controller: str, path: str) -> None:
    """Make ``controller``'s files appear in ``group``: enable it in each parent's
    cgroup.subtree_control that clonekit made; a parent clonekit did not make must have it."""
    v2 = next((h for h in state.get("hierarchies", []) if h.get("version") == 2), None)
    if v2 is None:
        return
    owned = str(v2.get("prune_to") or "") or None
    made = set(v2.get("created", []))

    def ours(d: str) -> bool:  # made by this create, or under the clonekit-owned parent
        return d in made or (owned is not None and (d == owned or d.startswith(owned.rstrip("/") + "/")))

    parent = os.path.dirname(group.rstrip("/"))
    chain: list[str] = []   # our parents, top first
    while ours(parent):
        chain.insert(0, parent)
        parent = os.path.dirname(parent)
    top = chain[0] if chain else os.path.dirname(group.rstrip("/"))
    above = os.path.dirname(top) if chain else top
    if controller not in _read_words(f"{above}/cgroup.subtree_control"):
        raise CgroupError(errno.EOPNOTSUPP, f"the {controller} controller is not enabled in {above}/"
                          f"cgroup.subtree_control, a group clonekit did not make (and does not write "
                          f"to), so the container's cgroup2 group has no {controller} files; enable it "
                          f"there (echo +{controller} > {above}/cgroup.subtree_control) or remove the field",
                          step=f"set {path}", filename=f"{above}/cgroup.subtree_control")
    for d in chain:
        if controller not in _read_words(f"{d}/cgroup.subtree_control"):
            _put(d, "cgroup.subtree_control", f"+{controller}", path)


# -- files ----------------------------------------------------------------------------------

def _put(where: str, name: str, value: str, path: str) -> None:
    file = f"{where}/{name}"
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.isdir(where):
            raise cgroup_error(exc, f"set {path}", file, f"this kernel's group has no {name}, so "
                               "this limit cannot be applied here; remove the field") from None
        raise cgroup_error(exc, f"set {path}", file) from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.EINVAL, errno.EPERM, errno.EACCES):
            hint = (f"the kernel refused {value!r} (out of range, above the parent group's limit, or "
                    "needing CAP_SYS_RESOURCE); use a value the host allows")
        elif exc.errno == errno.EBUSY:
            hint = "the group's usage is already above it; raise the limit"
        raise cgroup_error(exc, f"set {path}", file, hint) from None
    finally:
        os.close(fd)


def _read_int(where: str, name: str) -> int | None:
    try:
        with open(f"{where}/{name}", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_words(file: str) -> list[str]:
    try:
        with open(file) as f:
            return f.read().split()
    except OSError:
        return []


def _bad(path: str, message: str) -> UsageError:
    """The config asks what this host's cgroup version cannot express (found when applying)."""
    return UsageError(f"{path}: {message}")
