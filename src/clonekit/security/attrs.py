"""Process attributes a container's config sets: ``oomScoreAdj``, ``ioPriority``, ``scheduler``,
``linux.personality`` and ``execCPUAffinity``.  Records plus their kernel values; each applied
to the calling process."""

from __future__ import annotations

import os

from .._record import record

__all__ = ["IO_CLASSES", "PERSONALITY_DOMAINS", "SCHED_FLAGS", "SCHED_POLICIES", "CpuAffinity",
           "IoPriority", "Personality", "Scheduler", "apply_io_priority", "apply_oom_score_adj",
           "apply_personality", "apply_scheduler", "parse_cpu_list"]

IO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}

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
        why = exc.strerror
        if exc.errno == 1:
            why = "a real-time policy, a higher priority or a lower nice needs CAP_SYS_NICE"
        elif exc.errno == 16:  # EBUSY
            why = "SCHED_DEADLINE: the system's deadline bandwidth is used up (admission control)"
        raise OSError(exc.errno, f"scheduler {s.policy}: {why}") from None


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
