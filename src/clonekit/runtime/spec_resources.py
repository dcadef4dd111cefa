"""config.json's linux.resources (all but ``devices``, see :mod:`.spec_devices`) as a
:class:`clonekit.cgroups.resources.Resources`, each value checked with its JSON path.

runc reads the spec's integers as Go int64/uint64 and treats 0 as "not set"; so does this.
Whether the host can carry a limit is :func:`clonekit.cgroups.resources.apply`'s question.
"""

from __future__ import annotations

from ..cgroups.resources import (
    BlockIO,
    Cpu,
    DeviceRate,
    DeviceWeight,
    Memory,
    Network,
    Rdma,
    Resources,
)
from .jsonfields import SpecError, boolean, check_fields, get, integer, key_path, obj, seq, string, uint32

__all__ = ["parse_resources"]

I64 = (-(1 << 63), (1 << 63) - 1)
U64 = (0, (1 << 64) - 1)
KNOWN = frozenset({"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
                   "unified"})
MEMORY = frozenset({"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                    "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"})
CPU = frozenset({"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems",
                 "idle"})
BLKIO = frozenset({"weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                   "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
PAGE_SIZES = ("KB", "MB", "GB", "TB", "PB")


def parse_resources(value: object, path: str = "$.linux.resources") -> Resources:
    res = obj(value, path)
    check_fields(res, path, KNOWN, what="linux.resources")
    pids = 0
    if get(res, "pids") is not None:
        p = obj(res["pids"], f"{path}.pids")
        check_fields(p, f"{path}.pids", frozenset({"limit"}), what="linux.resources.pids")
        if get(p, "limit") is not None:
            pids = integer(p["limit"], f"{path}.pids.limit", *I64)
    return Resources(
        memory=_memory(res["memory"], f"{path}.memory") if get(res, "memory") is not None else None,
        cpu=_cpu(res["cpu"], f"{path}.cpu") if get(res, "cpu") is not None else None,
        pids=pids,
        block_io=_blkio(res["blockIO"], f"{path}.blockIO") if get(res, "blockIO") is not None else None,
        hugepages=_hugepages(res["hugepageLimits"], f"{path}.hugepageLimits")
        if get(res, "hugepageLimits") is not None else (),
        network=_network(res["network"], f"{path}.network") if get(res, "network") is not None else None,
        rdma=_rdma(res["rdma"], f"{path}.rdma") if get(res, "rdma") is not None else (),
        unified=_unified(res["unified"], f"{path}.unified") if get(res, "unified") is not None else (),
    )


def _i64(doc: dict[str, object], key: str, path: str, lo: int = I64[0]) -> int:
    return integer(doc[key], key_path(path, key), lo, I64[1]) if get(doc, key) is not None else 0


def _u64(doc: dict[str, object], key: str, path: str) -> int:
    return integer(doc[key], key_path(path, key), *U64) if get(doc, key) is not None else 0


def _memory(value: object, path: str) -> Memory:
    m = obj(value, path)
    check_fields(m, path, MEMORY, what="linux.resources.memory")
    if get(m, "useHierarchy") is not None:
        boolean(m["useHierarchy"], f"{path}.useHierarchy")  # always on in current kernels
    swappiness = None
    if get(m, "swappiness") is not None:
        swappiness = integer(m["swappiness"], f"{path}.swappiness", *U64)
        if swappiness > 100 and swappiness != U64[1]:   # runc: -1 (as uint64) means "not set"
            raise SpecError(f"{path}.swappiness", f"{swappiness} is out of range: swappiness is 0 to 100; "
                                                  "use a value in that range")
        if swappiness == U64[1]:
            swappiness = -1
    if get(m, "kernel") is not None or get(m, "kernelTCP") is not None:
        from .notices import notice

        notice(f"{path}.kernel/kernelTCP: kernel memory limits are ignored, as runc 1.1 ignores them "
               "(the kernel deprecated them); the container's memory.limit covers kernel memory")
    # sizes in bytes, or -1: unlimited
    return Memory(limit=_i64(m, "limit", path, -1), reservation=_i64(m, "reservation", path, -1),
                  swap=_i64(m, "swap", path, -1), kernel=_i64(m, "kernel", path),
                  kernel_tcp=_i64(m, "kernelTCP", path), swappiness=swappiness,
                  disable_oom_killer=boolean(m["disableOOMKiller"], f"{path}.disableOOMKiller")
                  if get(m, "disableOOMKiller") is not None else False,
                  check_before_update=boolean(m["checkBeforeUpdate"], f"{path}.checkBeforeUpdate")
                  if get(m, "checkBeforeUpdate") is not None else False)


def _cpu(value: object, path: str) -> Cpu:
    c = obj(value, path)
    check_fields(c, path, CPU, what="linux.resources.cpu")
    shares = _u64(c, "shares", path)
    if shares and not 2 <= shares <= 262144:
        raise SpecError(f"{path}.shares", f"{shares} is out of range: cpu shares are 2 to 262144 (the "
                                          "kernel would silently clamp it); use a value in that range")
    period = _u64(c, "period", path)
    if period and not 1000 <= period <= 1_000_000:
        raise SpecError(f"{path}.period", f"{period} is out of range: the cfs period is 1000 to 1000000 "
                                          "microseconds; use a value in that range")
    quota = _i64(c, "quota", path)
    if quota > 0 and quota < 1000:
        raise SpecError(f"{path}.quota", f"{quota} is out of range: a cfs quota is at least 1000 "
                                         "microseconds (or -1 for none); use a value in that range")
    idle = None
    if get(c, "idle") is not None:
        idle = integer(c["idle"], f"{path}.idle", 0, 1)
    burst = integer(c["burst"], f"{path}.burst", *U64) if get(c, "burst") is not None else None
    return Cpu(shares=shares, quota=quota, period=period, burst=burst,
               realtime_runtime=_i64(c, "realtimeRuntime", path),
               realtime_period=_u64(c, "realtimePeriod", path),
               cpus=_cpuset(c, "cpus", path), mems=_cpuset(c, "mems", path), idle=idle)


def _cpuset(doc: dict[str, object], key: str, path: str) -> str:
    if get(doc, key) is None:
        return ""
    text = string(doc[key], key_path(path, key))
    for part in text.split(",") if text else ():
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and (not hi.isdigit() or int(hi) < int(lo))):
            raise SpecError(key_path(path, key), f"{text!r} is no list of {key}: write numbers and "
                                                 "ranges like \"0-2,4\"")
    return text


def _blkio(value: object, path: str) -> BlockIO:
    b = obj(value, path)
    check_fields(b, path, BLKIO, what="linux.resources.blockIO")

    def weight(doc: dict[str, object], key: str, p: str) -> int:
        if get(doc, key) is None:
            return 0
        w = integer(doc[key], key_path(p, key), 0, 1000)
        if w and w < 10:
            raise SpecError(key_path(p, key), f"{w} is out of range: block io weights are 10 to 1000; "
                                              "use a value in that range")
        return w

    devices = []
    if get(b, "weightDevice") is not None:
        for i, d in enumerate(seq(b["weightDevice"], f"{path}.weightDevice")):
            p = f"{path}.weightDevice[{i}]"
            dd = obj(d, p)
            check_fields(dd, p, frozenset({"major", "minor", "weight", "leafWeight"}))
            devices.append(DeviceWeight(*_majmin(dd, p), weight=weight(dd, "weight", p),
                                        leaf_weight=weight(dd, "leafWeight", p)))
    rates: dict[str, tuple[DeviceRate, ...]] = {}
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"):
        got = []
        if get(b, key) is not None:
            for i, d in enumerate(seq(b[key], f"{path}.{key}")):
                p = f"{path}.{key}[{i}]"
                dd = obj(d, p)
                check_fields(dd, p, frozenset({"major", "minor", "rate"}))
                if get(dd, "rate") is None:
                    raise SpecError(f"{p}.rate", "missing: a throttle entry needs a rate; add it")
                got.append(DeviceRate(*_majmin(dd, p), rate=integer(dd["rate"], f"{p}.rate", *U64)))
        rates[key] = tuple(got)
    return BlockIO(weight=weight(b, "weight", path), leaf_weight=weight(b, "leafWeight", path),
                   weight_device=tuple(devices), read_bps=rates["throttleReadBpsDevice"],
                   write_bps=rates["throttleWriteBpsDevice"], read_iops=rates["throttleReadIOPSDevice"],
                   write_iops=rates["throttleWriteIOPSDevice"])


def _majmin(d: dict[str, object], path: str) -> tuple[int, int]:
    for key in ("major", "minor"):
        if get(d, key) is None:
            raise SpecError(f"{path}.{key}", f"missing: a device entry needs its {key} number; add it")
    return (integer(d["major"], f"{path}.major", 0, (1 << 12) - 1),
            integer(d["minor"], f"{path}.minor", 0, (1 << 20) - 1))


def _hugepages(value: object, path: str) -> tuple[tuple[str, int], ...]:
    out = []
    for i, h in enumerate(seq(value, path)):
        p = f"{path}[{i}]"
        hh = obj(h, p)
        check_fields(hh, p, frozenset({"pageSize", "limit"}))
        if get(hh, "pageSize") is None or get(hh, "limit") is None:
            raise SpecError(p, "a hugepage limit needs pageSize and limit; add both")
        size = string(hh["pageSize"], f"{p}.pageSize")
        if not (size[:-2].isdigit() and size[-2:] in PAGE_SIZES):
            raise SpecError(f"{p}.pageSize", f"{size!r} is no page size: write it as the kernel names it "
                                             "(\"2MB\", \"1GB\")")
        out.append((size, integer(hh["limit"], f"{p}.limit", *U64)))
    return tuple(out)


def _network(value: object, path: str) -> Network:
    n = obj(value, path)
    check_fields(n, path, frozenset({"classID", "priorities"}), what="linux.resources.network")
    prios = []
    if get(n, "priorities") is not None:
        for i, e in enumerate(seq(n["priorities"], f"{path}.priorities")):
            p = f"{path}.priorities[{i}]"
            ee = obj(e, p)
            check_fields(ee, p, frozenset({"name", "priority"}))
            name = string(ee.get("name", ""), f"{p}.name")
            if not name or "/" in name or " " in name:
                raise SpecError(f"{p}.name", f"{name!r} is no interface name; name the interface")
            prios.append((name, uint32(ee.get("priority", 0), f"{p}.priority")))
    class_id = uint32(n["classID"], f"{path}.classID") if get(n, "classID") is not None else None
    return Network(class_id=class_id, priorities=tuple(prios))


def _rdma(value: object, path: str) -> tuple[Rdma, ...]:
    r = obj(value, path)
    out = []
    for device, limits in r.items():
        p = key_path(path, device)
        lim = obj(limits, p)
        check_fields(lim, p, frozenset({"hcaHandles", "hcaObjects"}))
        out.append(Rdma(device=device,
                        hca_handles=uint32(lim["hcaHandles"], f"{p}.hcaHandles")
                        if get(lim, "hcaHandles") is not None else None,
                        hca_objects=uint32(lim["hcaObjects"], f"{p}.hcaObjects")
                        if get(lim, "hcaObjects") is not None else None))
    return tuple(out)


def _unified(value: object, path: str) -> tuple[tuple[str, str], ...]:
    u = obj(value, path)
    out = []
    for key, val in u.items():
        p = key_path(path, key)
        if "/" in key or "." not in key or key.startswith("."):
            raise SpecError(p, f"{key!r} is no cgroup2 file name (controller.file, e.g. "
                               "\"memory.high\"); fix the key")
        out.append((key, string(val, p)))
    return tuple(out)
