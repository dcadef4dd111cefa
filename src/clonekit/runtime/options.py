"""Mount options of config.json, as runc and crun read them, translated to mount(2) and
mount_setattr(2) bits.

A ``mounts[].options`` word is one of:

* a mount flag (``ro``, ``nosuid``, ``relatime``, ...): sets or clears an ``MS_*`` bit;
* a propagation (``private``, ``rslave``, ...): applied by a separate mount(2) call;
* ``bind`` / ``rbind``: a bind mount (recursive for ``rbind``);
* a recursive attribute (``rro``, ``rnosuid``, ``rnoatime``, ...): an ``MOUNT_ATTR_*`` bit for
  ``mount_setattr(AT_RECURSIVE)``, which reaches every submount of a recursive bind;
* ``idmap`` / ``ridmap``: an idmapped bind mount (of the mount alone / of every mount below it
  too), with the mount's uid/gidMappings or the container's own;
* a word clonekit recognises but does not implement yet (``tmpcopyup``): see :data:`UNSUPPORTED`;
* anything else is filesystem data, passed to mount(2) as is (``mode=755``, ``size=65536k``,
  ``newinstance``, ``ptmxmode=0666``, ...).

Pure data and one pure function; no syscalls.
"""

from __future__ import annotations

# the bits live in clonekit.mountflags (include/uapi/linux/mount.h)
from ..mountflags import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_DIRSYNC,
    MS_I_VERSION,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_POSIXACL,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

#: word -> (clear?, MS_* bit). ``clear`` words undo the bit ("rw" clears MS_RDONLY).
FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID), "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV), "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC), "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME), "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "silent": (False, MS_SILENT), "loud": (True, MS_SILENT),
    "iversion": (False, MS_I_VERSION), "noiversion": (True, MS_I_VERSION),
    "acl": (False, MS_POSIXACL), "noacl": (True, MS_POSIXACL),
    "nosymfollow": (False, MS_NOSYMFOLLOW), "symfollow": (True, MS_NOSYMFOLLOW),
}

#: word -> MS_* propagation bits (with MS_REC for the r* forms)
PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

#: word -> MS_* bits of a bind mount
BIND: dict[str, int] = {"bind": MS_BIND, "rbind": MS_BIND | MS_REC}

#: word -> (clear?, MOUNT_ATTR_* bit) for mount_setattr(AT_RECURSIVE)
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY), "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID), "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV), "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC), "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME), "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

#: recursive atime words -> the atime value they select.  The atime field is an enum, not a
#: bitmap: the kernel wants the whole MOUNT_ATTR__ATIME field in attr_clr and the value in
#: attr_set (clearing a single atime bit is EINVAL), so every word selects a value.  The
#: "negative" words select what the kernel picks when the positive one is absent.
RECURSIVE_ATIME: dict[str, int] = {
    "rrelatime": MOUNT_ATTR_RELATIME, "rnorelatime": MOUNT_ATTR_STRICTATIME,
    "rnoatime": MOUNT_ATTR_NOATIME, "ratime": MOUNT_ATTR_RELATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME, "rnostrictatime": MOUNT_ATTR_RELATIME,
}

#: idmapped bind mounts (runtime-spec 1.2): "ridmap" reaches every mount of an rbind
IDMAP = frozenset({"idmap", "ridmap"})

#: words clonekit recognises but does not implement yet -> why
UNSUPPORTED: dict[str, str] = {
    "tmpcopyup": "tmpcopyup (crun's copy of the image's directory into a tmpfs) is not implemented yet",
}


def recognised() -> list[str]:
    """Every option word clonekit translates (for the features document), sorted."""
    words = {*FLAGS, *PROPAGATION, *BIND, *RECURSIVE, *RECURSIVE_ATIME, *IDMAP}
    return sorted(words)


class Translated:
    """The result of :func:`translate` (plain attributes; the caller builds the MountPlan)."""

    __slots__ = ("clear_flags", "data", "flags", "idmap", "propagation", "recursive_clear",
                 "recursive_set", "unsupported")

    def __init__(self) -> None:
        self.flags = 0
        self.clear_flags = 0
        self.propagation = 0
        self.data: list[str] = []
        self.recursive_set = 0
        self.recursive_clear = 0
        self.unsupported: list[tuple[int, str]] = []  # (index in options, word)
        self.idmap = ""  # "idmap" or "ridmap" (the last one given wins)


def translate(options: list[str] | tuple[str, ...]) -> Translated:
    """Fold ``options`` in order into flags; later words win over earlier ones ("ro" then "rw"
    leaves the mount writable), as with mount(8).  For propagation the last word wins."""
    out = Translated()
    for index, word in enumerate(options):
        flag = FLAGS.get(word)
        if flag is not None:
            clear, bit = flag
            if clear:
                out.flags &= ~bit
                out.clear_flags |= bit
            else:
                out.flags |= bit
                out.clear_flags &= ~bit
            continue
        bits = BIND.get(word)
        if bits is not None:
            out.flags |= bits
            continue
        prop = PROPAGATION.get(word)
        if prop is not None:
            out.propagation = prop
            continue
        rec = RECURSIVE.get(word)
        if rec is not None:
            clear, bit = rec
            if clear:
                out.recursive_set &= ~bit
                out.recursive_clear |= bit
            else:
                out.recursive_set |= bit
                out.recursive_clear &= ~bit
            continue
        atime = RECURSIVE_ATIME.get(word)
        if atime is not None:
            out.recursive_set = (out.recursive_set & ~MOUNT_ATTR__ATIME) | atime
            out.recursive_clear |= MOUNT_ATTR__ATIME
            continue
        if word in IDMAP:
            out.idmap = word
            continue
        if word in UNSUPPORTED:
            out.unsupported.append((index, word))
            continue
        out.data.append(word)
    return out
