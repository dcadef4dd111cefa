"""/proc/self/mountinfo as records, and mount flags as numbers (MS_*, MOUNT_ATTR_*)."""

from __future__ import annotations

import os

from .._record import record

__all__ = ["MS", "MountInfo", "current_flags", "read_mountinfo", "unescape"]


class MS:
    """mount(2) flags (include/uapi/linux/mount.h)."""

    RDONLY = 0x1
    NOSUID = 0x2
    NODEV = 0x4
    NOEXEC = 0x8
    SYNCHRONOUS = 0x10
    REMOUNT = 0x20
    MANDLOCK = 0x40
    DIRSYNC = 0x80
    NOSYMFOLLOW = 0x100
    NOATIME = 0x400
    NODIRATIME = 0x800
    BIND = 0x1000
    MOVE = 0x2000
    REC = 0x4000
    SILENT = 0x8000
    UNBINDABLE = 0x20000
    PRIVATE = 0x40000
    SLAVE = 0x80000
    SHARED = 0x100000
    RELATIME = 0x200000
    STRICTATIME = 0x1000000
    LAZYTIME = 0x2000000

    PROPAGATION = UNBINDABLE | PRIVATE | SLAVE | SHARED
    ATIME = NOATIME | RELATIME | STRICTATIME
    # what MS_REMOUNT|MS_BIND can change on one mount
    PER_MOUNT = RDONLY | NOSUID | NODEV | NOEXEC | NOSYMFOLLOW | NOATIME | NODIRATIME | RELATIME | STRICTATIME


MNT_DETACH = 0x2

# MOUNT_ATTR_* (mount_setattr) -> MS_* for the per-mount bits
ATTR_RDONLY = 0x1
ATTR_NOSUID = 0x2
ATTR_NODEV = 0x4
ATTR_NOEXEC = 0x8
ATTR__ATIME = 0x70
ATTR_NOATIME = 0x10
ATTR_STRICTATIME = 0x20
ATTR_NODIRATIME = 0x80
ATTR_IDMAP = 0x100000
ATTR_NOSYMFOLLOW = 0x200000
ATTR_TO_MS = {
    ATTR_RDONLY: MS.RDONLY, ATTR_NOSUID: MS.NOSUID, ATTR_NODEV: MS.NODEV, ATTR_NOEXEC: MS.NOEXEC,
    ATTR_NODIRATIME: MS.NODIRATIME, ATTR_NOSYMFOLLOW: MS.NOSYMFOLLOW,
}

# per-mount option words of mountinfo field 6 -> MS_*
_OPT_FLAGS = {
    "ro": MS.RDONLY, "nosuid": MS.NOSUID, "nodev": MS.NODEV, "noexec": MS.NOEXEC,
    "noatime": MS.NOATIME, "nodiratime": MS.NODIRATIME, "relatime": MS.RELATIME,
    "nosymfollow": MS.NOSYMFOLLOW,
}

# statvfs f_flag (ST_*) -> MS_* for the per-mount bits
_ST_FLAGS = {
    os.ST_RDONLY: MS.RDONLY, os.ST_NOSUID: MS.NOSUID, os.ST_NODEV: MS.NODEV,
    os.ST_NOEXEC: MS.NOEXEC, os.ST_NOATIME: MS.NOATIME, os.ST_NODIRATIME: MS.NODIRATIME,
    os.ST_RELATIME: MS.RELATIME, 0x2000: MS.NOSYMFOLLOW,  # ST_NOSYMFOLLOW (5.10)
}


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
        if not bits & (MS.NOATIME | MS.RELATIME):
            bits |= MS.STRICTATIME
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
    for st_bit, ms_bit in _ST_FLAGS.items():
        if st.f_flag & st_bit:
            bits |= ms_bit
    return bits
