"""A group's usage in runc's ``events --stats`` shape (runc 1.1's types/events.go ``Stats``).

Read-only: nothing here writes to a group.  On a hybrid or legacy host the v1 controllers are
read (as runc's v1 manager does; the cgroup2 mount of a hybrid host carries no usage of its
own), on a cgroup2-only host the unified group.  Go's ``omitempty`` is kept: a zero number, an
empty list or map is left out where runc leaves it out, so the documents compare key for key.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .group import Cgroup

__all__ = ["collect", "collect_dirs"]

Doc = dict[str, object]
MAX_UINT64 = (1 << 64) - 1
_USER_HZ = 100  # cpuacct.stat counts USER_HZ ticks; runc converts them with 100 too

# v1 blkio: runc tries these groups of files in order and takes the first whose first file has
# entries (BFQ debug, BFQ, CFQ, throttle recursive, throttle)
_BLKIO_GROUPS = (
    ("blkio.bfq.", ("sectors_recursive", "io_service_time_recursive", "io_wait_time_recursive",
                    "io_merged_recursive", "io_queued_recursive", "time_recursive",
                    "io_serviced_recursive", "io_service_bytes_recursive")),
    ("blkio.bfq.", ("io_serviced_recursive", "io_service_bytes_recursive")),
    ("blkio.", ("sectors_recursive", "io_service_time_recursive", "io_wait_time_recursive",
                "io_merged_recursive", "io_queued_recursive", "time_recursive",
                "io_serviced_recursive", "io_service_bytes_recursive")),
    ("blkio.throttle.", ("io_serviced_recursive", "io_service_bytes_recursive")),
    ("blkio.throttle.", ("io_serviced", "io_service_bytes")),
)
_BLKIO_KEYS = {
    "sectors_recursive": "sectorsRecursive", "io_service_time_recursive": "ioServiceTimeRecursive",
    "io_wait_time_recursive": "ioWaitTimeRecursive", "io_merged_recursive": "ioMergedRecursive",
    "io_queued_recursive": "ioQueueRecursive", "time_recursive": "ioTimeRecursive",
    "io_serviced_recursive": "ioServicedRecursive", "io_service_bytes_recursive": "ioServiceBytesRecursive",
    "io_serviced": "ioServicedRecursive", "io_service_bytes": "ioServiceBytesRecursive",
}
_CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                 "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level")


def collect(cgroup: Cgroup) -> dict[str, object]:
    """The group's stats document (runc's ``data`` of a ``stats`` event)."""
    dirs = cgroup.paths
    if any(key != "unified" and not key.startswith("name=") for key in dirs):
        by_controller = {c: d for key, d in dirs.items() if not key.startswith("name=")
                         for c in key.split(",") if key != "unified"}
        return collect_dirs(by_controller, version=1)
    v2 = dirs.get("unified")
    return collect_dirs({"unified": v2} if v2 else {}, version=2)


def collect_dirs(dirs: dict[str, str], *, version: int) -> dict[str, object]:
    """Stats from v1 controller directories (``{"memory": dir, "cpuacct": dir, ...}``) or, with
    ``version=2``, from ``{"unified": dir}``.  A controller without a directory reads as empty."""
    if version == 2:
        d = dirs.get("unified")
        return _v2(d) if d else _document({}, {}, _memory({}, None, None, None, None), {}, {}, {})
    return _document(_cpu_v1(dirs.get("cpu"), dirs.get("cpuacct")), _cpuset_v1(dirs.get("cpuset")),
                     _memory_v1(dirs.get("memory")), _pids(dirs.get("pids")), _blkio_v1(dirs.get("blkio")),
                     _hugetlb_v1(dirs.get("hugetlb")))


def _document(cpu: Doc, cpuset: Doc, memory: Doc, pids: Doc, blkio: Doc, hugetlb: Doc) -> Doc:
    return {"cpu": cpu or {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
            "cpuset": cpuset or _cpuset_zero(), "memory": memory, "pids": pids, "blkio": blkio,
            "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}


# -- v1 -------------------------------------------------------------------------------------------

def _cpu_v1(cpu: str | None, cpuacct: str | None) -> dict[str, object]:
    usage: dict[str, object] = {}
    if cpuacct is not None:
        _put(usage, "total", _int(cpuacct, "cpuacct.usage"))
        _put(usage, "percpu", [int(x) for x in (_text(cpuacct, "cpuacct.usage_percpu") or "").split()])
        kernel, user = [], []
        for line in (_text(cpuacct, "cpuacct.usage_all") or "").split("\n")[1:]:  # "cpu user system"
            fields = line.split()
            if len(fields) == 3:
                user.append(int(fields[1]))
                kernel.append(int(fields[2]))
        _put(usage, "percpu_kernel", kernel)
        _put(usage, "percpu_user", user)
        ticks = _flat(cpuacct, "cpuacct.stat")
        usage["kernel"] = ticks.get("system", 0) * (1_000_000_000 // _USER_HZ)
        usage["user"] = ticks.get("user", 0) * (1_000_000_000 // _USER_HZ)
    else:
        usage = {"kernel": 0, "user": 0}
    stat = _flat(cpu, "cpu.stat") if cpu is not None else {}
    return {"usage": usage, "throttling": _throttling(stat.get("nr_periods", 0), stat.get("nr_throttled", 0),
                                                      stat.get("throttled_time", 0))}


def _throttling(periods: int, throttled: int, time_ns: int) -> dict[str, object]:
    out: dict[str, object] = {}
    _put(out, "periods", periods)
    _put(out, "throttledPeriods", throttled)
    _put(out, "throttledTime", time_ns)
    return out


def _cpuset_zero() -> dict[str, object]:
    return {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
            "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
            "sched_relax_domain_level": 0}


def _cpuset_v1(d: str | None) -> dict[str, object]:
    if d is None:
        return {}
    out: dict[str, object] = {}
    _put(out, "cpus", _cpu_list(_text(d, "cpuset.cpus") or ""))
    out["cpu_exclusive"] = _int(d, "cpuset.cpu_exclusive")
    _put(out, "mems", _cpu_list(_text(d, "cpuset.mems") or ""))
    for flag in _CPUSET_FLAGS[1:]:
        out[flag] = _int(d, f"cpuset.{flag}")
    return out


def _memory_v1(d: str | None) -> dict[str, object]:
    if d is None:
        return _memory({}, None, None, None, None)
    raw = _flat(d, "memory.stat")
    return _memory(raw, _entry_v1(d, "memory."), _entry_v1(d, "memory.memsw."), _entry_v1(d, "memory.kmem."),
                   _entry_v1(d, "memory.kmem.tcp."), cache=raw.get("cache", 0))


def _entry_v1(d: str, prefix: str) -> dict[str, object] | None:
    if not os.path.exists(os.path.join(d, prefix + "limit_in_bytes")):
        return None
    return _entry(_int(d, prefix + "limit_in_bytes"), _int(d, prefix + "usage_in_bytes"),
                  _int(d, prefix + "max_usage_in_bytes"), _int(d, prefix + "failcnt"))


def _entry(limit: int, usage: int, peak: int, failcnt: int) -> dict[str, object]:
    out: dict[str, object] = {"limit": limit}
    _put(out, "usage", usage)
    _put(out, "max", peak)
    out["failcnt"] = failcnt
    return out


def _memory(raw: dict[str, int], usage: Doc | None, swap: Doc | None, kernel: Doc | None, tcp: Doc | None,
            *, cache: int = 0) -> Doc:
    out: dict[str, object] = {}
    _put(out, "cache", cache)
    zero = {"limit": 0, "failcnt": 0}
    out.update(usage=usage or zero, swap=swap or zero, kernel=kernel or zero, kernelTCP=tcp or zero)
    _put(out, "raw", dict(sorted(raw.items())))
    return out


def _pids(d: str | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if d is not None:
        _put(out, "current", _int(d, "pids.current"))
        _put(out, "limit", _int(d, "pids.max"))
    return out


def _blkio_v1(d: str | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if d is None:
        return out
    for prefix, names in _BLKIO_GROUPS:
        first = _blkio_entries(d, prefix + names[0])
        if not first:
            continue
        _put(out, _BLKIO_KEYS[names[0]], first)
        for name in names[1:]:
            _put(out, _BLKIO_KEYS[name], _blkio_entries(d, prefix + name))
        break
    return out


def _blkio_entries(d: str, name: str) -> list[dict[str, object]]:
    """``8:0 Read 4096`` / ``8:0 4096`` lines (``Total N`` skipped), as runc's getBlkioStat."""
    entries: list[dict[str, object]] = []
    for line in (_text(d, name) or "").split("\n"):
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        entry: dict[str, object] = {}
        _put(entry, "major", int(fields[0]))
        _put(entry, "minor", int(fields[1]))
        _put(entry, "op", fields[2] if len(fields) == 4 else "")
        _put(entry, "value", int(fields[-1]))
        entries.append(entry)
    return entries


def _hugetlb_v1(d: str | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if d is None:
        return out
    for size in _page_sizes():
        entry: dict[str, object] = {}
        _put(entry, "usage", _int(d, f"hugetlb.{size}.usage_in_bytes"))
        _put(entry, "max", _int(d, f"hugetlb.{size}.max_usage_in_bytes"))
        entry["failcnt"] = _int(d, f"hugetlb.{size}.failcnt")
        out[size] = entry
    return out


def _page_sizes() -> list[str]:
    """Huge page sizes as the hugetlb files name them (hugepages-2048kB -> 2MB)."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    out = []
    for name in sorted(names):
        kb = int(name.removeprefix("hugepages-").removesuffix("kB"))
        for unit, size in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % size == 0:
                out.append(f"{kb // size}{unit}")
                break
    return out


# -- v2 -------------------------------------------------------------------------------------------

def _v2(d: str) -> dict[str, object]:
    stat = _flat(d, "cpu.stat")
    usage: dict[str, object] = {}
    _put(usage, "total", stat.get("usage_usec", 0) * 1000)
    usage["kernel"] = stat.get("system_usec", 0) * 1000
    usage["user"] = stat.get("user_usec", 0) * 1000
    throttling = _throttling(stat.get("nr_periods", 0), stat.get("nr_throttled", 0),
                             stat.get("throttled_usec", 0) * 1000)
    cpu: Doc = {"usage": usage, "throttling": throttling}
    raw = _flat(d, "memory.stat")
    memory = _memory({}, None, None, None, None)
    if os.path.exists(os.path.join(d, "memory.current")):
        mem_limit, mem_usage = _int(d, "memory.max"), _int(d, "memory.current")
        events = _flat(d, "memory.events")
        usage_entry = _entry(mem_limit, mem_usage, _int(d, "memory.peak"), events.get("max", 0))
        swap_entry = None
        if os.path.exists(os.path.join(d, "memory.swap.current")):
            # runc reports memory+swap, as v1's memsw does, so the numbers mean the same on both
            swap_limit = _int(d, "memory.swap.max")
            both = MAX_UINT64 if MAX_UINT64 in (swap_limit, mem_limit) else swap_limit + mem_limit
            swap_entry = _entry(both, _int(d, "memory.swap.current") + mem_usage, 0,
                                _flat(d, "memory.swap.events").get("max", 0))
        memory = _memory(raw, usage_entry, swap_entry, None, None, cache=raw.get("file", 0))
    blkio: dict[str, object] = {}
    served: list[dict[str, object]] = []
    done: list[dict[str, object]] = []
    for line in (_text(d, "io.stat") or "").split("\n"):
        fields = line.split()
        if not fields:
            continue
        major, _, minor = fields[0].partition(":")
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        for key, op, into in (("rbytes", "Read", served), ("wbytes", "Write", served),
                              ("rios", "Read", done), ("wios", "Write", done)):
            if key in values:
                entry: dict[str, object] = {}
                _put(entry, "major", int(major))
                _put(entry, "minor", int(minor))
                entry["op"] = op
                _put(entry, "value", int(values[key]))
                into.append(entry)
    _put(blkio, "ioServiceBytesRecursive", served)
    _put(blkio, "ioServicedRecursive", done)
    hugetlb: dict[str, object] = {}
    for size in _page_sizes():
        if os.path.exists(os.path.join(d, f"hugetlb.{size}.current")):
            entry = {}
            _put(entry, "usage", _int(d, f"hugetlb.{size}.current"))
            entry["failcnt"] = _flat(d, f"hugetlb.{size}.events").get("max", 0)
            hugetlb[size] = entry
    return _document(cpu, {}, memory, _pids(d), blkio, hugetlb)


# -- reading --------------------------------------------------------------------------------------

def _put(into: dict[str, object], key: str, value: object) -> None:
    """Go's omitempty: zero numbers, empty strings, lists and maps are left out."""
    if value:
        into[key] = value


def _text(d: str, name: str) -> str | None:
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:  # absent (a controller file this kernel lacks) or the group just went
        return None


def _int(d: str, name: str) -> int:
    """A one-number file; ``max`` (no limit) reads as the largest uint64, as runc reports it."""
    text = (_text(d, name) or "").strip()
    if text == "max":
        return MAX_UINT64 if not name.startswith("pids.") else 0
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _flat(d: str, name: str) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, cpu.stat, memory.events)."""
    out = {}
    for line in (_text(d, name) or "").split("\n"):
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _cpu_list(text: str) -> list[int]:
    """``0-3,8`` -> [0, 1, 2, 3, 8]."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
