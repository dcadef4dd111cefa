"""The eight namespace kinds: their names, CLONE_NEW* flags, /proc entries and nsfs type codes.

Pure data, no syscalls.  ``Kind`` is a ``str`` enum so ``Kind.NET == "net"``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ..errors import UsageError
from ..flags import CloneFlag

__all__ = ["KERNEL_ORDER", "Kind", "kinds_from_flags", "kinds_to_flags", "parse_kinds"]


class Kind(enum.StrEnum):
    """A namespace kind, valued by its name in ``/proc/PID/ns/``."""

    MNT = "mnt"
    UTS = "uts"
    IPC = "ipc"
    NET = "net"
    PID = "pid"
    USER = "user"
    CGROUP = "cgroup"
    TIME = "time"

    @property
    def flag(self) -> CloneFlag:
        """The ``CLONE_NEW*`` bit (also the nsfs ``NS_GET_NSTYPE`` answer)."""
        return _FLAGS[self]

    @property
    def proc_name(self) -> str:
        """The entry in ``/proc/PID/ns/`` that names the namespace the task is in."""
        return self.value

    @property
    def proc_child_name(self) -> str:
        """The entry for the namespace the task's *children* get (pid and time differ)."""
        if self in (Kind.PID, Kind.TIME):
            return f"{self.value}_for_children"
        return self.value

    @property
    def long_name(self) -> str:
        """util-linux's option word: ``--mount`` for mnt, ``--net`` for net, ..."""
        return "mount" if self is Kind.MNT else self.value


_FLAGS = {
    Kind.MNT: CloneFlag.NEWNS,
    Kind.UTS: CloneFlag.NEWUTS,
    Kind.IPC: CloneFlag.NEWIPC,
    Kind.NET: CloneFlag.NEWNET,
    Kind.PID: CloneFlag.NEWPID,
    Kind.USER: CloneFlag.NEWUSER,
    Kind.CGROUP: CloneFlag.NEWCGROUP,
    Kind.TIME: CloneFlag.NEWTIME,
}

#: The order in which the kernel installs namespaces for ``setns(pidfd, mask)``
#: (kernel/nsproxy.c): the user namespace first so the others are judged with its privileges.
KERNEL_ORDER: tuple[Kind, ...] = (
    Kind.USER, Kind.MNT, Kind.UTS, Kind.IPC, Kind.PID, Kind.CGROUP, Kind.NET, Kind.TIME,
)

_ALIASES = {"mount": Kind.MNT, "ns": Kind.MNT, "newns": Kind.MNT, "network": Kind.NET}


def _one(item: object) -> Kind:
    if isinstance(item, Kind):
        return item
    if isinstance(item, CloneFlag) or (isinstance(item, int) and not isinstance(item, bool)):
        found = kinds_from_flags(int(item))
        if len(found) == 1 and found[0].flag == int(item):
            return found[0]
        raise UsageError(f"{item!r} is not a single CLONE_NEW* flag")
    if isinstance(item, str):
        word = item.strip().lower()
        if word.startswith("clone_"):
            word = word[len("clone_"):]
        if word.startswith("new") and word not in _ALIASES:
            word = word[3:]
        kind = _ALIASES.get(word)
        if kind is not None:
            return kind
        try:
            return Kind(word)
        except ValueError:
            pass
    valid = ", ".join(k.value for k in Kind)
    raise UsageError(f"unknown namespace kind {item!r}: valid kinds are {valid}")


def parse_kinds(value: object) -> tuple[Kind, ...]:
    """Kinds from a Kind, a name (``"net"``, ``"mount"``, ``"CLONE_NEWNET"``), a comma list,
    CLONE_NEW* flags, or an iterable of those.  The result is in :data:`KERNEL_ORDER`."""
    found: set[Kind] = set()
    if isinstance(value, (Kind, str)) and not isinstance(value, Kind):
        items: Iterable[object] = [w for w in str(value).replace("|", ",").split(",") if w.strip()]
    elif isinstance(value, Kind):
        items = [value]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = kinds_from_flags(value, strict=True)
    elif isinstance(value, Iterable):
        items = value
    else:
        raise UsageError(f"namespace kinds must be names, Kinds or CLONE_NEW* flags, not {value!r}")
    for item in items:
        found.add(_one(item))
    return tuple(k for k in KERNEL_ORDER if k in found)


def kinds_from_flags(flags: int, *, strict: bool = False) -> tuple[Kind, ...]:
    """The kinds whose CLONE_NEW* bit is set in ``flags`` (kernel order)."""
    if strict:
        extra = int(flags) & ~sum(int(k.flag) for k in Kind)
        if extra:
            raise UsageError(f"flags {flags:#x} hold bits {extra:#x} that are not CLONE_NEW* flags")
    return tuple(k for k in KERNEL_ORDER if int(flags) & int(k.flag))


def kinds_to_flags(kinds: Iterable[Kind]) -> int:
    """OR of the CLONE_NEW* bits of ``kinds``."""
    total = 0
    for kind in kinds:
        total |= int(kind.flag)
    return total
