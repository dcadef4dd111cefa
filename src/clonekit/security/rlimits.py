"""Resource limits (``process.rlimits``): the names of include/uapi/asm-generic/resource.h,
set with prlimit before the process gives up its privileges (raising a hard limit needs
CAP_SYS_RESOURCE)."""

from __future__ import annotations

from .._record import record

__all__ = ["RLIMITS", "Rlimit", "apply"]

#: OCI type -> resource number
RLIMITS: dict[str, int] = {name: number for number, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
))}

INFINITY = (1 << 64) - 1  # RLIM_INFINITY


@record(frozen=True)
class Rlimit:
    type: str     # "RLIMIT_NOFILE"
    soft: int
    hard: int


def apply(limits: tuple[Rlimit, ...], pid: int = 0) -> None:
    from .. import _native

    for lim in limits:
        try:
            _native.prlimit(pid, RLIMITS[lim.type], lim.soft, lim.hard)
        except OSError as exc:
            why = exc.strerror
            if exc.errno == 1:  # EPERM
                why = ("raising a hard limit above the current one needs CAP_SYS_RESOURCE, which "
                       "the runtime does not have here; ask for a hard limit no higher than the "
                       "runtime's own (`ulimit -H`)")
            elif exc.errno == 22:  # EINVAL
                why = "the soft limit is above the hard limit, or the kernel refuses this value"
            raise OSError(exc.errno, f"rlimit {lim.type} soft={lim.soft} hard={lim.hard}: {why}") from None
