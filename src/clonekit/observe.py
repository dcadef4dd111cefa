"""Watch clone flags happen: make a native task with any flag set and report what was observed.

The task and its observer run in a helper process forked for the probe (see _native/probe.c),
so CLONE_VM, CLONE_THREAD, CLONE_SETTLS or CLONE_PARENT never touch the Python process.  This
module names the verdicts (in :mod:`clonekit.sharing`'s vocabulary) from the raw facts and
compares them with what :func:`clonekit.explain` predicts: they must never differ.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .flags import CloneFlag, parse_flags
from .signals import signal_name as _signame

__all__ = ["PRESETS", "Preset", "ProbeResult", "probe"]

F = CloneFlag


@dataclass(frozen=True)
class Preset:
    name: str
    flags: CloneFlag
    exit_signal: int
    about: str


def _presets() -> dict[str, Preset]:
    from .sharing import LIBC_SETS

    # glibc's own calls (one table for explain and probe), then clone(2)'s teaching examples
    presets = [Preset(s.name, s.flags, s.exit_signal, s.about) for s in LIBC_SETS.values()] + [
        Preset("counter", F.VM | F.FILES | F.SIGHAND, signal.SIGCHLD,
               "clone(2) teaching example: a thread-like child sharing memory, fds and handlers"),
        Preset("tid-vs-tgid", F.VM | F.SIGHAND | F.THREAD, 0,
               "clone(2) teaching example: a thread has its own TID but the group's TGID"),
        Preset("uts", F.NEWUTS, signal.SIGCHLD,
               "clone(2) teaching example: a child renames its host in its own UTS namespace"),
    ]
    named = {p.name: p for p in presets}
    named["thread"] = named["pthread_create"]
    return named


PRESETS: dict[str, Preset] = _presets()

_NS = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")


@dataclass
class ProbeResult:
    """What a real task made with ``flags`` was seen to share, copy or get anew."""

    flags: CloneFlag
    exit_signal: int
    observed: dict[str, str | None]          # key -> verdict, None where not observable
    explained: dict[str, str]                 # key -> what clonekit.explain predicts
    facts: dict[str, Any] = field(repr=False)  # the raw facts, for the curious

    @property
    def mismatches(self) -> list[str]:
        """Keys where observation and explanation differ (must stay empty)."""
        return [k for k, v in self.observed.items()
                if v is not None and k in self.explained and self.explained[k] != v]

    @property
    def tid(self) -> int:
        return int(self.facts["child"]["tid"])

    @property
    def tgid(self) -> int:
        return int(self.facts["child"]["pid"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "flags": str(self.flags),
            "flags_value": int(self.flags),
            "exit_signal": self.exit_signal,
            "resources": [
                {"key": k, "explained": self.explained.get(k), "observed": v,
                 "agrees": v is None or self.explained.get(k) in (None, v)}
                for k, v in self.observed.items()
            ],
            "child": {"tid": self.tid, "tgid": self.tgid, "ppid": self.facts["child"]["ppid"],
                      "hostname": self.facts["child"]["hostname"]},
            "caller": {"pid": self.facts["helper_pid"], "ppid": self.facts["helper_ppid"],
                       "hostname": self.facts["helper_hostname"]},
            "mismatches": self.mismatches,
        }

    def render(self) -> str:
        rows = [("resource", "explained", "observed", "")]
        for k, v in self.observed.items():
            exp = self.explained.get(k, "")
            mark = "" if v is None or exp in ("", v) else "<-- DIFFERS"
            rows.append((k, exp, "(not observable)" if v is None else v, mark))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"probe of {self.flags} (exit signal {_signame(self.exit_signal)})"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3]
                  for r in rows]
        child, caller = self.facts["child"], self.facts
        lines.append(
            f"child: tid {child['tid']} tgid {child['pid']} ppid {child['ppid']} "
            f"hostname {child['hostname']!r}; caller: pid {caller['helper_pid']} "
            f"hostname {caller['helper_hostname']!r}"
        )
        return "\n".join(line.rstrip() for line in lines)


def probe(flags: int | str | CloneFlag, *, exit_signal: int | None = None,
          cgroup_fd: int = -1) -> ProbeResult:
    """Make a native task with ``flags`` (any set the kernel accepts) and observe it.

    ``flags`` may also name a preset (``"thread"``, ``"fork"``, ``"vfork"``, ``"posix_spawn"``,
    ``"counter"``, ``"tid-vs-tgid"``, ``"uts"``), which brings its own exit signal.
    A refused call raises :class:`clonekit.CloneFlagsError` with the kernel's errno and rule.
    """
    from . import _native

    if isinstance(flags, str) and flags.lower() in PRESETS:
        preset = PRESETS[flags.lower()]
        flags, default_signal = preset.flags, preset.exit_signal
    else:
        flags = parse_flags(flags)
        default_signal = 0 if flags & (F.THREAD | F.PARENT) else signal.SIGCHLD
    sig = default_signal if exit_signal is None else exit_signal
    if isinstance(sig, bool) or not isinstance(sig, int):
        raise UsageError(f"exit_signal must be a signal number, not {sig!r}")
    facts = _native.probe(int(flags), int(sig), cgroup_fd)
    if facts["clone_errno"]:
        raise _refusal(facts["clone_errno"], flags, int(sig))
    from .sharing import explain

    explained = {row.key: row.verdict for row in explain(flags, exit_signal=sig).rows}
    return ProbeResult(flags, int(sig), _verdicts(flags, facts), explained, facts)


def _verdicts(flags: CloneFlag, f: dict[str, Any]) -> dict[str, str | None]:
    child = f["child"]
    own = {"shared": True, "copied": False}
    v: dict[str, str | None] = {
        "memory": _pick(f["memory_seen"], own),
        "fd_table": _pick(f["fd_seen"], own),
        "fs_info": _pick(f["umask_seen"], own),
        "signal_handlers": (
            "reset" if child["sig_handler"] == 0  # SIG_DFL: CLEAR_SIGHAND reset our handler
            else "shared" if f["sighand_seen"] else "copied"
        ),
        "thread_group": "joined" if child["pid"] == f["helper_pid"] else "new",
        "parent": _parent(f),
        "sysvsem_undo": None if f["sem_value"] < 0 else ("shared" if f["sem_value"] else "new"),
        "io_context": None,   # no cheap, reliable observation from user space
        "tracing": None,      # needs a tracer attached to the caller
        "tls": "set" if child["tls"] != f["helper_tls"] else "inherited",
        "parent_tid_write": "written" if f["parent_tid_word"] == f["child_pid"] else "none",
        "child_tid_write": "written" if child["child_tid_word"] == child["tid"] else "none",
        "child_tid_clear": (
            None if f["tid_cleared"] < 0 else ("cleared" if f["tid_cleared"] else "none")
        ),
        "vfork_suspend": "suspended" if f["suspended"] else "none",
        "exit_signal": (
            None if f["exit_signal_received"] < 0
            else _signame(f["exit_signal_received"]) if f["exit_signal_received"] else "none"
        ),
        "pidfd": "returned" if f["pidfd_returned"] else "none",
    }
    for kind in _NS:
        mine, theirs = f["helper_ns"][kind], child["ns"][kind]
        v[f"ns.{kind}"] = None if not (mine and theirs) else ("shared" if mine == theirs else "new")
    return v


def _pick(seen: int, vocabulary: dict[str, bool]) -> str:
    return next(k for k, val in vocabulary.items() if val == bool(seen))


def _parent(f: dict[str, Any]) -> str | None:
    ppid = f["child"]["ppid"]
    if ppid == f["helper_pid"] or (ppid == 0 and f["reaped"]):
        return "caller"
    if ppid == f["helper_ppid"] or (ppid == 0 and not f["reaped"]):
        return "callers_parent"
    return None


def _refusal(err: int, flags: CloneFlag, exit_signal: int) -> Exception:
    from .errors import from_errno
    from .rules import CloneFlagsError, check

    try:
        check(flags, via="clone3", exit_signal=exit_signal)
    except CloneFlagsError as explained:
        if explained.errno == err:
            return explained
    return from_errno(err, "clone3", f"the kernel refused {flags}")
