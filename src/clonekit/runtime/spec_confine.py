"""The confinement fields of config.json -> :class:`~clonekit.security.confine.Confinement`:
``process.capabilities``, ``rlimits``, ``oomScoreAdj``, ``ioPriority``, ``scheduler``,
``execCPUAffinity``, ``apparmorProfile``, ``selinuxLabel``, ``linux.personality`` and
``linux.memoryPolicy``.

Validated as the kernel and runc would validate them, each error naming its JSON path."""

from __future__ import annotations

from .._jsonc import dumps
from ..security import attrs, caps, lsm, rlimits
from ..security.confine import Confinement
from .jsonfields import (
    SPEC,
    SpecError,
    check_fields,
    get,
    integer,
    obj,
    seq,
    str_list,
    string,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["parse_confinement", "parse_memory_policy", "parse_personality"]

UINT64_MAX = (1 << 64) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
RLIMIT_KNOWN = frozenset({"type", "soft", "hard"})
IO_KNOWN = frozenset({"class", "priority"})
SCHED_KNOWN = frozenset({"policy", "nice", "priority", "flags", "runtime", "deadline", "period"})
AFFINITY_KNOWN = frozenset({"initial", "final"})
PERSONALITY_KNOWN = frozenset({"domain", "flags"})
MEMORY_POLICY_KNOWN = frozenset({"mode", "nodes", "flags"})
DL_PERIOD_BIT = 1 << 63  # the kernel refuses deadline and period with the top bit set


def parse_confinement(proc: dict[str, Any], no_new_privileges: bool,
                      personality: attrs.Personality | None = None) -> Confinement:
    """From the ``process`` object (already checked to be one); ``personality`` comes from
    ``linux.personality``."""
    g = proc.get
    return Confinement(
        # runc: no capabilities object means no capabilities at all
        capabilities=_capabilities(g("capabilities")),
        no_new_privileges=no_new_privileges,
        rlimits=_rlimits(proc["rlimits"]) if g("rlimits") is not None else (),
        oom_score_adj=(integer(proc["oomScoreAdj"], "$.process.oomScoreAdj", -1000, 1000,
                               "an integer (an OOM score adjustment, -1000 to 1000)")
                       if g("oomScoreAdj") is not None else None),
        io_priority=_io_priority(proc["ioPriority"]) if g("ioPriority") is not None else None,
        scheduler=_scheduler(proc["scheduler"]) if g("scheduler") is not None else None,
        cpu_affinity=(_affinity(proc["execCPUAffinity"]) if g("execCPUAffinity") is not None
                      else attrs.CpuAffinity()),
        apparmor_profile=_lsm_label(proc, "apparmorProfile", lsm.apparmor_enabled, "AppArmor"),
        selinux_label=_lsm_label(proc, "selinuxLabel", lsm.selinux_enabled, "SELinux"),
        personality=personality,
    )


def _capabilities(value: object) -> caps.Capabilities:
    path = "$.process.capabilities"
    if value is None:
        return caps.Capabilities()
    doc = obj(value, path)
    check_fields(doc, path, frozenset(caps.SETS), what="process.capabilities")
    sets: dict[str, tuple[str, ...]] = {}
    for which in caps.SETS:
        if get(doc, which) is None:
            continue
        names = str_list(doc[which], f"{path}.{which}")
        for i, name in enumerate(names):
            if name not in caps.CAPABILITIES:
                import difflib  # only on this error path

                close = difflib.get_close_matches(name.upper(), list(caps.CAPABILITIES), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SpecError(f"{path}.{which}[{i}]",
                                f"{dumps(name)} is not a Linux capability (names are like "
                                f"\"CAP_NET_BIND_SERVICE\"; `man 7 capabilities` lists them); {hint}"
                                "fix the name or remove it")
        sets[which] = names
    return caps.Capabilities.from_names(sets)


def _rlimits(value: object) -> tuple[rlimits.Rlimit, ...]:
    path = "$.process.rlimits"
    out: dict[str, rlimits.Rlimit] = {}
    for i, item in enumerate(seq(value, path)):
        p = f"{path}[{i}]"
        doc = obj(item, p)
        check_fields(doc, p, RLIMIT_KNOWN, what="an rlimit")
        kind = _one_of(doc, "type", p, rlimits.RLIMITS, "a resource limit of Linux")
        if kind in out:
            raise SpecError(f"{p}.type", f"{kind} is given twice: {SPEC} allows each type once; "
                                         "keep one")
        values = []
        for key in ("soft", "hard"):
            if get(doc, key) is None:
                raise SpecError(f"{p}.{key}", f"missing: {SPEC} requires both soft and hard limits")
            values.append(integer(doc[key], f"{p}.{key}", 0, UINT64_MAX,
                                  "a limit (0 to 18446744073709551615, the last meaning unlimited)"))
        soft, hard = values
        if soft > hard:
            raise SpecError(f"{p}.soft", f"{soft} is above the hard limit {hard}: the kernel refuses "
                                         "a soft limit above the hard one (EINVAL); lower it")
        out[kind] = rlimits.Rlimit(type=kind, soft=soft, hard=hard)
    return tuple(out.values())


def _one_of(doc: dict[str, Any], key: str, path: str, table: dict[str, int], what: str) -> str:
    """A required field whose value must be a name of ``table``."""
    if get(doc, key) is None:
        raise SpecError(f"{path}.{key}", f"missing: {what}, one of {', '.join(table)}")
    name = string(doc[key], f"{path}.{key}")
    if name not in table:
        raise SpecError(f"{path}.{key}", f"{dumps(name)} is not {what}: use one of {', '.join(table)}")
    return name


def _io_priority(value: object) -> attrs.IoPriority:
    path = "$.process.ioPriority"
    doc = obj(value, path)
    check_fields(doc, path, IO_KNOWN, what="process.ioPriority")
    io_class = _one_of(doc, "class", path, attrs.IO_CLASSES, "an I/O scheduling class")
    prio = 0
    if get(doc, "priority") is not None:
        prio = integer(doc["priority"], f"{path}.priority", 0, 7, "an I/O priority (0 to 7)")
    return attrs.IoPriority(io_class=io_class, priority=prio)


def _scheduler(value: object) -> attrs.Scheduler:
    path = "$.process.scheduler"
    doc = obj(value, path)
    check_fields(doc, path, SCHED_KNOWN, what="process.scheduler")
    policy = _one_of(doc, "policy", path, attrs.SCHED_POLICIES, "a scheduling policy")
    if policy == "SCHED_ISO":
        raise SpecError(f"{path}.policy", "SCHED_ISO is reserved and not implemented by Linux (the "
                                          "kernel returns EINVAL); use SCHED_OTHER or SCHED_BATCH")
    nice = integer(doc["nice"], f"{path}.nice", -20, 19, "a nice value (-20 to 19)") \
        if get(doc, "nice") is not None else 0
    prio = integer(doc["priority"], f"{path}.priority", INT32_MIN, INT32_MAX) \
        if get(doc, "priority") is not None else 0
    realtime = policy in ("SCHED_FIFO", "SCHED_RR")
    if realtime and not 1 <= prio <= 99:
        raise SpecError(f"{path}.priority", f"{prio}: {policy} needs a priority from 1 to 99 (the "
                                            "kernel refuses others with EINVAL); set one")
    if not realtime and prio != 0:
        raise SpecError(f"{path}.priority", f"{prio}: only SCHED_FIFO and SCHED_RR take a priority; "
                                            f"for {policy} it must be 0 (EINVAL); remove it")
    flags = str_list(doc["flags"], f"{path}.flags") if get(doc, "flags") is not None else ()
    for i, name in enumerate(flags):
        if name not in attrs.SCHED_FLAGS:
            raise SpecError(f"{path}.flags[{i}]", f"{dumps(name)} is not a scheduler flag: use "
                                                  f"{', '.join(attrs.SCHED_FLAGS)}")
    times = {}
    for key in ("runtime", "deadline", "period"):
        times[key] = integer(doc[key], f"{path}.{key}", 0, UINT64_MAX, "nanoseconds") \
            if get(doc, key) is not None else 0
    if policy == "SCHED_DEADLINE":
        runtime, deadline, period = times["runtime"], times["deadline"], times["period"] or times["deadline"]
        if not runtime or not deadline:
            raise SpecError(path, "SCHED_DEADLINE needs runtime and deadline (nanoseconds): the kernel "
                                  "refuses a deadline task without them (EINVAL); set both")
        if runtime < 1024 or not runtime <= deadline <= period:
            raise SpecError(path, f"SCHED_DEADLINE needs 1024 <= runtime <= deadline <= period (got "
                                  f"{runtime}, {deadline}, {period}): the kernel refuses others (EINVAL)")
        if (deadline | period) & DL_PERIOD_BIT:
            raise SpecError(path, "SCHED_DEADLINE: a deadline or period of 2^63 ns or more is refused by "
                                  "the kernel (EINVAL); no period is that long")
    elif any(times.values()):
        key = next(k for k, v in times.items() if v)
        # the kernel would ignore them; runc refuses them, and a value that does nothing is a mistake
        raise SpecError(f"{path}.{key}", f"only SCHED_DEADLINE takes runtime, deadline and period; "
                                         f"{policy} would ignore it (runc refuses it too); remove it")
    return attrs.Scheduler(policy=policy, nice=nice, priority=prio, flags=flags, **times)


def _affinity(value: object) -> attrs.CpuAffinity:
    path = "$.process.execCPUAffinity"
    doc = obj(value, path)
    check_fields(doc, path, AFFINITY_KNOWN, what="process.execCPUAffinity")
    out: dict[str, frozenset[int] | None] = {"initial": None, "final": None}
    for key in out:
        if get(doc, key) is None:
            continue
        text = string(doc[key], f"{path}.{key}")
        if not text:
            continue
        try:
            cpus = attrs.parse_cpu_list(text)
        except ValueError as exc:
            raise SpecError(f"{path}.{key}", f"{dumps(text)} is not a CPU list: {exc}; write it as "
                                             "the kernel does, e.g. \"0-3,7\"") from None
        if max(cpus) >= 8192:
            raise SpecError(f"{path}.{key}", f"CPU {max(cpus)} is beyond any machine's CPU count")
        out[key] = cpus
    return attrs.CpuAffinity(**out)


def _lsm_label(proc: dict[str, Any], key: str, enabled: Any, module: str) -> str | None:
    if get(proc, key) is None:
        return None
    label = string(proc[key], f"$.process.{key}")
    if not label:
        return None
    if not enabled():
        raise SpecError(f"$.process.{key}", f"{dumps(label)} asks for {module}, which is not enabled "
                                            "on this kernel: the container would run unconfined by it; "
                                            f"enable {module} or remove the field")
    return label


def parse_personality(value: object) -> attrs.Personality:
    path = "$.linux.personality"
    doc = obj(value, path)
    check_fields(doc, path, PERSONALITY_KNOWN, what="linux.personality")
    domain = _one_of(doc, "domain", path, attrs.PERSONALITY_DOMAINS,
                     "an execution domain the runtime-spec defines")
    if get(doc, "flags") is not None:
        flags = str_list(doc["flags"], f"{path}.flags")
        if flags:
            raise SpecError(f"{path}.flags", f"{SPEC} defines no personality flags yet, so none can be "
                                             "applied; remove them")
    return attrs.Personality(domain=domain)


def parse_memory_policy(value: object) -> attrs.MemoryPolicy:
    """linux.memoryPolicy, checked by the rules set_mempolicy applies (attrs.memory_policy_rule);
    whether the nodes exist is for the kernel to say when the init applies it."""
    path = "$.linux.memoryPolicy"
    doc = obj(value, path)
    check_fields(doc, path, MEMORY_POLICY_KNOWN, what="linux.memoryPolicy")
    mode = _one_of(doc, "mode", path, attrs.MPOL_MODES, "a memory policy mode")
    nodes: frozenset[int] = frozenset()
    if get(doc, "nodes") is not None:
        text = string(doc["nodes"], f"{path}.nodes").strip()
        if text:
            try:
                nodes = attrs.parse_cpu_list(text)
            except ValueError as exc:
                raise SpecError(f"{path}.nodes", f"{dumps(text)} is not a node list: "
                                                 f"{str(exc).replace('CPU', 'node')}; write it as "
                                                 "cpuset.mems does, e.g. \"0-3,7\"") from None
    flags = str_list(doc["flags"], f"{path}.flags") if get(doc, "flags") is not None else ()
    for i, name in enumerate(flags):
        if name not in attrs.MPOL_FLAGS:
            raise SpecError(f"{path}.flags[{i}]", f"{dumps(name)} is not a memory policy flag: use "
                                                  f"{', '.join(attrs.MPOL_FLAGS)}")
    flags = tuple(dict.fromkeys(flags))
    rule = attrs.memory_policy_rule(mode, nodes, flags)
    if rule is not None:
        raise SpecError(path, f"{rule}: set_mempolicy refuses this (EINVAL)")
    return attrs.MemoryPolicy(mode=mode, nodes=nodes, flags=flags)
