"""Process attributes a container's config sets: ``oomScoreAdj``, ``ioPriority``, ``scheduler``,
``linux.personality``, ``execCPUAffinity`` and ``linux.memoryPolicy``.  Records plus their kernel
values; each applied to the calling process."""

from __future__ import annotations

import os

from .._record import record

__all__ = ["IO_CLASSES", "MPOL_FLAGS", "MPOL_MODES", "PERSONALITY_DOMAINS", "SCHED_FLAGS",
           "SCHED_POLICIES", "CpuAffinity", "IoPriority", "MemoryPolicy", "Personality", "Scheduler",
           "apply_io_priority", "apply_memory_policy", "apply_oom_score_adj", "apply_personality",
           "apply_scheduler", "memory_policy_rule", "parse_cpu_list"]

IO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}

#: include/uapi/linux/mempolicy.h: the modes set_mempolicy takes, and its mode flags
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
#: the modes and flags newer than the rest, with the kernel that brought them
MPOL_SINCE = {"MPOL_F_NUMA_BALANCING": "5.12", "MPOL_PREFERRED_MANY": "5.15",
              "MPOL_WEIGHTED_INTERLEAVE": "6.9"}
#: the modes that need at least one node (mm/mempolicy.c: mpol_new refuses an empty mask)
MPOL_NEED_NODES = frozenset({"MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                             "MPOL_PREFERRED_MANY"})
#: NUMA balancing (migrating pages towards the CPU that uses them) works within a bound set
MPOL_BALANCING_MODES = frozenset({"MPOL_BIND", "MPOL_PREFERRED_MANY"})

#: the execution domains runc (and so the runtime-spec's users) know
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


@record(frozen=True)
class IoPriority:
    io_class: str        # IOPRIO_CLASS_RT / BE / IDLE
    priority: int        # 0 (highest) .. 7

    @property
    def value(self) -> int:
        return IO_CLASSES[self.io_class] << IOPRIO_CLASS_SHIFT | self.priority


@record(frozen=True)
class Scheduler:
    policy: str
    nice: int = 0
    priority: int = 0
    flags: tuple[str, ...] = ()
    runtime: int = 0     # ns, SCHED_DEADLINE
    deadline: int = 0
    period: int = 0


@record(frozen=True)
class Personality:
    domain: str          # LINUX or LINUX32


@record(frozen=True)
class MemoryPolicy:
    """linux.memoryPolicy: the NUMA policy the container's process starts with (set_mempolicy;
    kept across fork and execve)."""

    mode: str                         # a name of MPOL_MODES
    nodes: frozenset[int] = frozenset()
    flags: tuple[str, ...] = ()       # names of MPOL_FLAGS

    @property
    def value(self) -> int:
        out = MPOL_MODES[self.mode]
        for name in self.flags:
            out |= MPOL_FLAGS[name]
        return out

    @property
    def nodemask(self) -> bytes:
        """Bit n = node n, little-endian, as the kernel reads its array of unsigned longs."""
        if not self.nodes:
            return b""
        bits = 0
        for node in self.nodes:
            bits |= 1 << node
        size = (max(self.nodes) // 64 + 1) * 8
        return bits.to_bytes(size, "little")


def memory_policy_rule(mode: str, nodes: frozenset[int], flags: tuple[str, ...]) -> str | None:
    """The rule set_mempolicy would break (it answers EINVAL), in plain words; None when only
    the nodes this machine has can decide (the kernel checks those when it is called)."""
    given = set(flags)
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= given:
        return ("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other (one keeps node "
                "numbers as written, the other reads them relative to the allowed nodes); keep one")
    if "MPOL_F_NUMA_BALANCING" in given and mode not in MPOL_BALANCING_MODES:
        return (f"MPOL_F_NUMA_BALANCING works only with {' or '.join(sorted(MPOL_BALANCING_MODES))} "
                f"(balancing moves pages within a bound set of nodes), not {mode}")
    placed = given & {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"}
    if mode == "MPOL_DEFAULT" and nodes:
        return "MPOL_DEFAULT takes no nodes (it means: the system's default, local allocation)"
    if mode == "MPOL_LOCAL" and (nodes or placed):
        return ("MPOL_LOCAL takes no nodes and no node flags (it allocates on the node of the CPU "
                "that asks)")
    if mode in MPOL_NEED_NODES and not nodes:
        return f"{mode} needs at least one node (e.g. \"0\" or \"0-3,7\")"
    if mode == "MPOL_PREFERRED" and not nodes and placed:
        return (f"MPOL_PREFERRED without nodes means local allocation, which takes no "
                f"{' or '.join(sorted(placed))}")
    if any(node >= 1 << 15 for node in nodes):  # maxnode beyond a page of bits
        return f"node {max(nodes)} is beyond any node number the kernel takes"
    return None


def apply_memory_policy(p: MemoryPolicy) -> None:
    from .. import _native

    try:
        _native.set_mempolicy(p.value, p.nodemask)
    except OSError as exc:
        why = exc.strerror
        if exc.errno == 22:  # EINVAL: the rules are checked at parse time; so it is the nodes
            newer = [f"{name} (Linux {version})" for name, version in MPOL_SINCE.items()
                     if name == p.mode or name in p.flags]
            why = memory_policy_rule(p.mode, p.nodes, p.flags) or (
                f"none of the nodes {_node_list(p.nodes)} can be used here (this process may use "
                f"memory nodes {_mems_allowed()}; the kernel numbers up to its MAX_NUMNODES)"
                + (f", or this kernel is older than {' and '.join(newer)}" if newer else "")
                + "; name nodes of this machine (/sys/devices/system/node/has_memory)")
        raise OSError(exc.errno, f"linux.memoryPolicy {p.mode} {_node_list(p.nodes) or '(no nodes)'}"
                                 f"{' ' + '|'.join(p.flags) if p.flags else ''}: {why}") from None


def _node_list(nodes: frozenset[int]) -> str:
    return ",".join(str(n) for n in sorted(nodes))


def _mems_allowed() -> str:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Mems_allowed_list:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@record(frozen=True)
class CpuAffinity:
    initial: frozenset[int] | None = None   # before the process joins its cgroups
    final: frozenset[int] | None = None     # just before execve


def apply_oom_score_adj(value: int) -> None:
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"oomScoreAdj: cannot open /proc/self/oom_score_adj: "
                                 f"{exc.strerror}") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as exc:
        why = exc.strerror
        if exc.errno == 13:  # EACCES
            why = ("lowering the OOM score below the runtime's own needs CAP_SYS_RESOURCE, which the "
                   f"runtime does not have here (its own is {_read_oom()}); ask for a value no lower")
        raise OSError(exc.errno, f"oomScoreAdj {value}: {why}") from None
    finally:
        os.close(fd)


def _read_oom() -> str:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def apply_io_priority(prio: IoPriority) -> None:
    from .. import _native

    try:
        _native.ioprio_set(IOPRIO_WHO_PROCESS, 0, prio.value)
    except OSError as exc:
        why = exc.strerror
        if exc.errno == 1:
            why = "the real-time I/O class needs CAP_SYS_ADMIN (or CAP_SYS_NICE)"
        raise OSError(exc.errno, f"ioPriority {prio.io_class} {prio.priority}: {why}") from None


def apply_scheduler(s: Scheduler) -> None:
    from .. import _native

    flags = 0
    for name in s.flags:
        flags |= SCHED_FLAGS[name]
    try:
        _native.sched_setattr(0, SCHED_POLICIES[s.policy], flags, s.nice, s.priority, s.runtime,
                              s.deadline, s.period)
    except OSError as exc:
        raise OSError(exc.errno, f"scheduler {s.policy}: {_scheduler_refusal(s, exc)}") from None


def _scheduler_refusal(s: Scheduler, exc: OSError) -> str:
    """Why sched_setattr said no, from what the kernel checks (kernel/sched/syscalls.c)."""
    if exc.errno == 1:  # EPERM
        rt = _rt_runtime() if s.policy in ("SCHED_FIFO", "SCHED_RR") else -1
        if rt is None:  # the group's files are out of sight (after pivot_root): both causes
            return ("a real-time policy needs CAP_SYS_NICE, and under RT group scheduling (the v1 cpu "
                    "controller) a cgroup whose cpu.rt_runtime_us is above 0; a new group has 0: set "
                    "linux.resources.cpu.realtimeRuntime")
        if rt == 0:
            return ("the process's cpu cgroup gives real-time tasks no time (cpu.rt_runtime_us is 0, "
                    "the default of a new group under RT group scheduling): the kernel refuses a "
                    "real-time policy there even with CAP_SYS_NICE; set "
                    "linux.resources.cpu.realtimeRuntime (and realtimePeriod)")
        if s.policy == "SCHED_DEADLINE":
            return ("a deadline task needs CAP_SYS_NICE and must be allowed on every CPU of its root "
                    "domain (no execCPUAffinity or cpuset narrower than that)")
        return "a real-time policy, a higher priority or a lower nice needs CAP_SYS_NICE"
    if exc.errno == 16:  # EBUSY
        return "SCHED_DEADLINE: the system's deadline bandwidth is used up (admission control)"
    if exc.errno == 95:  # EOPNOTSUPP
        return ("this kernel has no utilization clamping (CONFIG_UCLAMP_TASK), which "
                "SCHED_FLAG_UTIL_CLAMP_MIN/MAX ask for; remove those flags")
    if exc.errno == 22 and s.policy == "SCHED_DEADLINE":
        low, high = _sysctl_int("sched_deadline_period_min_us"), _sysctl_int("sched_deadline_period_max_us")
        period = s.period or s.deadline
        if low is not None and high is not None and not low * 1000 <= period <= high * 1000:
            return (f"the period ({period} ns) is outside what this kernel allows "
                    f"(kernel.sched_deadline_period_min_us..max_us: {low}..{high} us)")
    return exc.strerror or str(exc)


def _rt_runtime() -> int | None:
    """cpu.rt_runtime_us of this process's v1 cpu group (None: no such file, no RT group scheduling)."""
    try:
        with open("/proc/self/cgroup") as f:
            group = next((line.split(":", 2)[2].strip() for line in f
                          if "cpu" in line.split(":", 2)[1].split(",")), None)
        if group is None:
            return None
        for top in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"):
            try:
                with open(f"{top}{group.rstrip('/')}/cpu.rt_runtime_us") as f:
                    return int(f.read())
            except OSError:
                continue
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysctl_int(name: str) -> int | None:
    try:
        with open(f"/proc/sys/kernel/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def apply_personality(p: Personality) -> None:
    from .. import _native

    try:
        _native.personality(PERSONALITY_DOMAINS[p.domain])
    except OSError as exc:
        raise OSError(exc.errno, f"personality {p.domain}: {exc.strerror}") from None


def apply_affinity(cpus: frozenset[int], which: str) -> None:
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        raise OSError(exc.errno, f"execCPUAffinity.{which} {sorted(cpus)}: {exc.strerror} (CPUs "
                                 f"allowed here: {sorted(os.sched_getaffinity(0))})") from None


def parse_cpu_list(text: str) -> frozenset[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7} (the kernel's cpulist format); ValueError when it is not one."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a CPU number or range")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"{part!r} is a range that ends before it starts")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)
