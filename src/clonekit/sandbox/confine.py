"""The sandbox's confinement as child ops, in runc's order (see ``security.confine``): limits,
the bounding set, groups/gid/uid, the remaining capability sets emptied, no-new-privs, the fds
of the caller closed on exec, and the seccomp filter last, so the fewest of our own syscalls run
under it."""

from __future__ import annotations

import struct

from ..security import caps
from .nr import (
    CLOSE_RANGE_CLOEXEC,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    SECCOMP_SET_MODE_FILTER,
)
from .ops import Ops, c_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..security.rlimits import Rlimit
    from ..security.seccomp import Filter

__all__ = ["build", "parent_death"]

_CAP_V3 = 0x20080522
SIGKILL = 9


def parent_death(ops: Ops) -> None:
    """SIGKILL the sandbox when the thread that made it goes (a killed caller takes it along);
    a change of uid clears this, so it is set again after one."""
    ops.call("set the parent-death signal", "prctl", PR_SET_PDEATHSIG, SIGKILL)


def build(ops: Ops, *, set_ids: tuple[int, int] | None, limits: tuple[Rlimit, ...], cwd: str,
          seccomp: Filter | None) -> None:
    from ..security.rlimits import RLIMITS

    for lim in limits:
        ops.call(f"rlimit {lim.type}", "prlimit64", 0, RLIMITS[lim.type],
                 struct.pack("=QQ", lim.soft, lim.hard), 0)
    for number in range(caps.last_cap() + 1):
        ops.call(f"drop capability {number} from the bounding set", "prctl", PR_CAPBSET_DROP, number)
    ops.call("clear the ambient capabilities", "prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if set_ids is not None:
        uid, gid = set_ids
        ops.call("clear the supplementary groups", "setgroups", 0, 0)
        ops.call(f"set the gid {gid}", "setresgid", gid, gid, gid)
        ops.call(f"set the uid {uid}", "setresuid", uid, uid, uid)
        parent_death(ops)
    ops.call("drop every capability", "capset", struct.pack("=Ii", _CAP_V3, 0), bytes(24))
    ops.call("set no_new_privs", "prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    ops.call(f"chdir {cwd}", "chdir", c_str(cwd))
    ops.call("close the caller's fds on exec", "close_range", 3, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)
    if seccomp is not None:
        ops.call("install the seccomp filter", "seccomp", SECCOMP_SET_MODE_FILTER, seccomp.flags,
                 (1, seccomp.program))
