"""Capabilities: the five sets of a container's process, applied as runc applies them.

Order (runc's ``finalizeNamespace``): drop what the bounding set does not list, keep the
permitted set across the change of uid (``PR_SET_KEEPCAPS``), change uid/gid, then ``capset``
the effective, permitted and inheritable sets and raise the ambient ones.  A name the kernel
does not know (newer than it) is left out with a warning, as runc does; a name that is no
capability at all is refused when the config is read.
"""

from __future__ import annotations

from .._record import record

__all__ = ["CAPABILITIES", "Capabilities", "apply", "drop_bounding", "keep_across_setuid",
           "last_cap", "names_known_here"]

#: Every capability of include/uapi/linux/capability.h, by number.
CAPABILITIES: dict[str, int] = {name: number for number, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
))}

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


@record(frozen=True)
class Capabilities:
    """The five sets as bit masks (bit n = capability n).  ``unknown`` holds names this kernel
    does not have, ``not_raisable`` ambient names that are not both permitted and inheritable
    (the kernel refuses to raise those): both are left out with a warning, as runc does."""

    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0
    unknown: tuple[str, ...] = ()
    not_raisable: tuple[str, ...] = ()

    @classmethod
    def from_names(cls, sets: dict[str, tuple[str, ...]], last: int | None = None) -> Capabilities:
        """Masks from names (already checked to be in :data:`CAPABILITIES`); names above the
        kernel's last capability go to ``unknown``."""
        last = last_cap() if last is None else last
        masks = dict.fromkeys(SETS, 0)
        unknown: list[str] = []
        for which, names in sets.items():
            for name in names:
                number = CAPABILITIES[name]
                if number > last:
                    if name not in unknown:
                        unknown.append(name)
                    continue
                masks[which] |= 1 << number
        raisable = masks["permitted"] & masks["inheritable"]
        not_raisable = tuple(_name(n) for n in range(last + 1) if (masks["ambient"] & ~raisable) >> n & 1)
        masks["ambient"] &= raisable
        return cls(**masks, unknown=tuple(unknown), not_raisable=not_raisable)

    def names(self, which: str) -> list[str]:
        mask = getattr(self, which)
        return [name for name, number in CAPABILITIES.items() if mask >> number & 1]


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except OSError:  # no /proc: assume every capability we know
            _last_cap = len(CAPABILITIES) - 1
    return _last_cap


def names_known_here() -> list[str]:
    """The capabilities of this kernel, for ``features``."""
    return [name for name, number in CAPABILITIES.items() if number <= last_cap()]


def drop_bounding(caps: Capabilities) -> None:
    """Drop every capability the bounding set does not list (needs CAP_SETPCAP)."""
    from .. import _native

    for number in range(last_cap() + 1):
        if not caps.bounding >> number & 1:
            try:
                _native.prctl(PR_CAPBSET_DROP, number)
            except OSError as exc:
                raise OSError(exc.errno, f"drop {_name(number)} from the bounding set: "
                                         f"{exc.strerror}") from None


def keep_across_setuid(keep: bool) -> None:
    """A change from uid 0 to another uid clears the permitted set unless KEEPCAPS is on."""
    from .. import _native

    _native.prctl(PR_SET_KEEPCAPS, int(keep))


def apply(caps: Capabilities) -> None:
    """Set effective, permitted and inheritable, then raise the ambient set (after setuid)."""
    from .. import _native

    try:
        _native.capset(caps.effective, caps.permitted, caps.inheritable)
    except OSError as exc:
        _, have, _ = _native.capget()
        missing = [_name(n) for n in range(last_cap() + 1) if (caps.permitted & ~have) >> n & 1]
        why = (f"the runtime itself lacks {', '.join(missing)} (a process can only keep capabilities "
               "it has); remove them from the config or run the runtime with them" if missing else
               "effective and inheritable must be within permitted")
        raise OSError(exc.errno, f"capset: {exc.strerror}: {why}") from None
    _native.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for number in range(last_cap() + 1):
        if caps.ambient >> number & 1:
            try:
                _native.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)
            except OSError as exc:
                raise OSError(exc.errno, f"raise ambient {_name(number)}: {exc.strerror} (an ambient "
                                         "capability must also be permitted and inheritable)") from None


def _name(number: int) -> str:
    for name, n in CAPABILITIES.items():
        if n == number:
            return name
    return f"capability {number}"
