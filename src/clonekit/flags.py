"""Every bit of ``include/uapi/linux/sched.h`` as an :class:`enum.IntFlag`, and its parser.

Pure data: no syscalls and no imports of clonekit's other modules.
"""

from __future__ import annotations

import enum

from .errors import UsageError

__all__ = ["CSIGNAL", "CloneFlag", "parse_flags"]

#: The low byte of legacy clone()'s flags: the exit signal, not a flag.
CSIGNAL = 0xFF


class CloneFlag(enum.IntFlag):
    """The ``CLONE_*`` bits, named without their ``CLONE_`` prefix."""

    NEWTIME = 0x00000080
    VM = 0x00000100
    FS = 0x00000200
    FILES = 0x00000400
    SIGHAND = 0x00000800
    PIDFD = 0x00001000
    PTRACE = 0x00002000
    VFORK = 0x00004000
    PARENT = 0x00008000
    THREAD = 0x00010000
    NEWNS = 0x00020000
    SYSVSEM = 0x00040000
    SETTLS = 0x00080000
    PARENT_SETTID = 0x00100000
    CHILD_CLEARTID = 0x00200000
    DETACHED = 0x00400000
    UNTRACED = 0x00800000
    CHILD_SETTID = 0x01000000
    NEWCGROUP = 0x02000000
    NEWUTS = 0x04000000
    NEWIPC = 0x08000000
    NEWUSER = 0x10000000
    NEWPID = 0x20000000
    NEWNET = 0x40000000
    IO = 0x80000000
    CLEAR_SIGHAND = 0x100000000
    INTO_CGROUP = 0x200000000

    @property
    def names(self) -> list[str]:
        """The ``CLONE_*`` names of the set bits, lowest bit first."""
        return [f"CLONE_{f.name}" for f in CloneFlag if f.value & self.value]

    def __str__(self) -> str:
        return "|".join(self.names) or "0"


ALL_FLAGS = CloneFlag(sum(f.value for f in CloneFlag))
NAMESPACE_FLAGS = (
    CloneFlag.NEWNS | CloneFlag.NEWCGROUP | CloneFlag.NEWUTS | CloneFlag.NEWIPC
    | CloneFlag.NEWUSER | CloneFlag.NEWPID | CloneFlag.NEWNET | CloneFlag.NEWTIME
)


def _valid_names() -> str:
    return ", ".join(f.name.lower() for f in CloneFlag if f.name)


def parse_flags(value: object) -> CloneFlag:
    """Read flags from an int, a CloneFlag, or text in the forms people write.

    Accepted text: ``"CLONE_VM|CLONE_FS"``, ``"vm,fs"``, ``"newpid"``, ``"0x100"``, ``"256"``,
    ``"vm+fs"`` or space-separated; an empty string or ``"0"`` means no flags.
    Unknown names and bits outside sched.h raise :class:`UsageError` listing the valid names.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(
            f"clone flags must be an int, a CloneFlag or text like 'vm|fs', not {type(value).__name__}"
        )
    if isinstance(value, int):
        return _from_int(value, repr(value))
    total = 0
    for token in value.replace(",", "|").replace("+", "|").replace(" ", "|").split("|"):
        token = token.strip()
        if not token:
            continue
        total |= _token_value(token)
    return _from_int(total, repr(value))


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
