"""Every bit of ``include/uapi/linux/sched.h`` as an :class:`enum.IntFlag`, and its parser.

Pure data: no syscalls and no imports of clonekit's other modules.
"""

from __future__ import annotations

import enum

from . import _bits
from .errors import UsageError

__all__ = ["CSIGNAL", "CloneFlag", "parse_flags", "split_legacy_word"]

#: The low byte of legacy clone()'s flags: the exit signal, not a flag.
CSIGNAL = 0xFF


class CloneFlag(enum.IntFlag):
    """The ``CLONE_*`` bits, named without their ``CLONE_`` prefix."""

    NEWTIME = _bits.NEWTIME
    VM = _bits.VM
    FS = _bits.FS
    FILES = _bits.FILES
    SIGHAND = _bits.SIGHAND
    PIDFD = _bits.PIDFD
    PTRACE = _bits.PTRACE
    VFORK = _bits.VFORK
    PARENT = _bits.PARENT
    THREAD = _bits.THREAD
    NEWNS = _bits.NEWNS
    SYSVSEM = _bits.SYSVSEM
    SETTLS = _bits.SETTLS
    PARENT_SETTID = _bits.PARENT_SETTID
    CHILD_CLEARTID = _bits.CHILD_CLEARTID
    DETACHED = _bits.DETACHED
    UNTRACED = _bits.UNTRACED
    CHILD_SETTID = _bits.CHILD_SETTID
    NEWCGROUP = _bits.NEWCGROUP
    NEWUTS = _bits.NEWUTS
    NEWIPC = _bits.NEWIPC
    NEWUSER = _bits.NEWUSER
    NEWPID = _bits.NEWPID
    NEWNET = _bits.NEWNET
    IO = _bits.IO
    CLEAR_SIGHAND = _bits.CLEAR_SIGHAND
    INTO_CGROUP = _bits.INTO_CGROUP

    @property
    def names(self) -> list[str]:
        """The ``CLONE_*`` names of the set bits, lowest bit first."""
        return [f"CLONE_{f.name}" for f in CloneFlag if f.value & self.value]

    def __str__(self) -> str:
        return "|".join(self.names) or "0"


ALL_FLAGS = CloneFlag(_bits.ALL)
NAMESPACE_FLAGS = CloneFlag(_bits.NAMESPACES)


def _valid_names() -> str:
    return ", ".join(f.name.lower() for f in CloneFlag if f.name)


def parse_flags(value: object) -> CloneFlag:
    """Read flags from an int, a CloneFlag, or text in the forms people write.

    Accepted text: ``"CLONE_VM|CLONE_FS"``, ``"vm,fs"``, ``"newpid"``, ``"0x100"``, ``"256"``,
    ``"vm+fs"`` or space-separated; an empty string or ``"0"`` means no flags.
    Unknown names and bits outside sched.h raise :class:`UsageError` listing the valid names.
    """
    return _from_int(_total(value), repr(value))


def split_legacy_word(value: object) -> tuple[CloneFlag, int]:
    """Legacy ``clone()``'s single word, read as the kernel reads it: (the flags above the low
    byte, the low byte).  The low byte (CSIGNAL) is the child's exit signal, whatever its bits
    are called elsewhere: ``0x40`` is signal 64, CLONE_NEWTIME (0x80) is signal 128.  Accepts
    what :func:`parse_flags` accepts; bits outside sched.h above the low byte raise UsageError."""
    total = _total(value)
    return _from_int(total & ~CSIGNAL, repr(value)), total & CSIGNAL


def _total(value: object) -> int:
    """The bits named by ``value`` (int, CloneFlag or text), not yet checked against sched.h."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(
            f"clone flags must be an int, a CloneFlag or text like 'vm|fs', not {type(value).__name__}"
        )
    if isinstance(value, int):
        return int(value)
    total = 0
    for token in value.replace(",", "|").replace("+", "|").replace(" ", "|").split("|"):
        token = token.strip()
        if not token:
            continue
        total |= _token_value(token)
    return total


def _token_value(token: str) -> int:
    try:
        return int(token, 0)
    except ValueError:
        pass
    name = token.upper()
    if name.startswith("CLONE_"):
        name = name[len("CLONE_"):]
    try:
        return CloneFlag[name].value
    except KeyError:
        raise UsageError(
            f"unknown clone flag {token!r}: valid names are {_valid_names()} "
            "(case-insensitive, with or without CLONE_), or a number such as 0x100"
        ) from None


def _from_int(number: int, shown: str) -> CloneFlag:
    if number < 0:
        raise UsageError(f"clone flags {shown} are negative: flags are an unsigned 64-bit mask")
    unknown = number & ~ALL_FLAGS.value
    if unknown:
        raise UsageError(
            f"clone flags {shown} have bits {unknown:#x} that include/uapi/linux/sched.h does not "
            f"define; the defined bits are {ALL_FLAGS.value:#x} ({_valid_names()})"
        )
    return CloneFlag(number)
