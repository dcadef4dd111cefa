"""/proc/self/mountinfo as records, and a mount's per-mount flags as MS_* bits.

The bits themselves are :mod:`clonekit.mountflags`'."""

from __future__ import annotations

import os

from .._record import record
from ..mountflags import (
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_RELATIME,
    MS_STRICTATIME,
)

__all__ = ["MountInfo", "current_flags", "read_mountinfo", "unescape"]

# per-mount option words of mountinfo field 6 -> MS_*
_OPT_FLAGS = {
    "ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME,
    "nosymfollow": MS_NOSYMFOLLOW,
}

# statvfs f_flag (ST_*) -> MS_* for the per-mount bits
_ST_FLAGS = tuple({
    os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME, 0x2000: MS_NOSYMFOLLOW,  # ST_NOSYMFOLLOW (5.10)
}.items())


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


@record(frozen=True)
class MountInfo:
    """One line of /proc/PID/mountinfo."""

    mount_id: int
    parent_id: int
    major_minor: str
    root: str
    mountpoint: str
    options: tuple[str, ...]          # per-mount: rw/ro, nosuid, relatime ...
    optional: tuple[str, ...]         # shared:N master:N propagate_from:N unbindable
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def flags(self) -> int:
        """The per-mount options as MS_* bits (strictatime when no atime word is present)."""
        bits = 0
        for opt in self.options:
            bits |= _OPT_FLAGS.get(opt, 0)
        if not bits & (MS_NOATIME | MS_RELATIME):
            bits |= MS_STRICTATIME
        return bits

    @property
    def propagation(self) -> str:
        """"shared", "slave", "shared,slave", "unbindable" or "private"."""
        kinds = [o.split(":")[0] for o in self.optional]
        names = []
        if "shared" in kinds:
            names.append("shared")
        if "master" in kinds:
            names.append("slave")
        if "unbindable" in kinds:
            names.append("unbindable")
        return ",".join(names) or "private"


def parse_line(line: str) -> MountInfo:
    fields = line.split()
    dash = fields.index("-", 6)
    return MountInfo(
        mount_id=int(fields[0]), parent_id=int(fields[1]), major_minor=fields[2],
        root=unescape(fields[3]), mountpoint=unescape(fields[4]),
        options=tuple(fields[5].split(",")), optional=tuple(fields[6:dash]),
        fstype=fields[dash + 1], source=unescape(fields[dash + 2]),
        super_options=tuple(fields[dash + 3].split(",")) if len(fields) > dash + 3 else (),
    )


def read_mountinfo(pid: int | str = "self") -> list[MountInfo]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [parse_line(line) for line in f if line.strip()]


def current_flags(fd: int) -> int:
    """The per-mount MS_* flags of the mount ``fd`` is on (fstatvfs; works on O_PATH fds)."""
    st = os.statvfs(fd)
    bits = 0
    for st_bit, ms_bit in _ST_FLAGS:
        if st.f_flag & st_bit:
            bits |= ms_bit
    return bits
