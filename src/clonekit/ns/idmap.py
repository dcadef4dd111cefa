"""User and group id maps of user namespaces (``/proc/PID/uid_map``, ``gid_map``, ``setgroups``).

An :class:`IdMap` is a tuple of :class:`IdRange` (inside, outside, count).  Maps are written from
*outside* the new namespace by a process that may: directly when it has CAP_SETUID/CAP_SETGID
over the parent namespace or the map is just its own id, otherwise through the setuid helpers
``newuidmap``/``newgidmap`` which check ``/etc/subuid``/``/etc/subgid``.
"""

from __future__ import annotations

import errno
import os
import shutil

from ..errors import UsageError
from .errors import CAP_SETGID, CAP_SETUID, has_cap, idmap_error, missing_helper

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "IdMap",
    "IdRange",
    "auto_map",
    "parse_range",
    "read_map",
    "resolve_gid",
    "resolve_uid",
    "subid_ranges",
    "write_maps",
]

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


class IdRange:
    """``count`` ids starting at ``inside`` in the namespace are ``outside`` ... in its parent.
    Unpacks as (inside, outside, count)."""

    __slots__ = ("count", "inside", "outside")

    def __init__(self, inside: int, outside: int, count: int = 1) -> None:
        for name, value in (("inside", inside), ("outside", outside), ("count", count)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 0xFFFFFFFF:
                raise UsageError(f"id range {name} must be an integer 0..4294967295, not {value!r}")
        if count == 0:
            raise UsageError("an id range must map at least one id (count 0)")
        self.inside = inside
        self.outside = outside
        self.count = count

    def __iter__(self) -> Iterator[int]:
        return iter((self.inside, self.outside, self.count))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdRange):
            return NotImplemented
        return tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"IdRange(inside={self.inside}, outside={self.outside}, count={self.count})"

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"


class IdMap(tuple[IdRange, ...]):
    """An ordered set of non-overlapping :class:`IdRange`."""

    def __new__(cls, ranges: Iterable[IdRange | tuple[int, int, int]] = ()) -> IdMap:
        items = []
        for r in ranges:
            items.append(IdRange(*r))
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                if a.inside < b.inside + b.count and b.inside < a.inside + a.count:
                    raise UsageError(f"id ranges overlap inside the namespace: {a.line()} and {b.line()}")
                if a.outside < b.outside + b.count and b.outside < a.outside + a.count:
                    raise UsageError(f"id ranges overlap outside the namespace: {a.line()} and {b.line()}")
        return super().__new__(cls, items)

    @classmethod
    def single(cls, inside: int, outside: int) -> IdMap:
        return cls([IdRange(inside, outside, 1)])

    def text(self) -> str:
        """The text the kernel expects in uid_map/gid_map."""
        return "".join(r.line() + "\n" for r in self)

    def helper_args(self) -> list[str]:
        """Arguments of newuidmap/newgidmap after the pid."""
        out: list[str] = []
        for r in self:
            out += [str(r.inside), str(r.outside), str(r.count)]
        return out

    def __add__(self, other: object) -> IdMap:
        if not isinstance(other, tuple):
            return NotImplemented
        return IdMap(list(self) + list(other))

    def is_self_map(self, own: int) -> bool:
        """One id, and it is ``own`` outside: what a process may map without privilege."""
        return len(self) == 1 and self[0].count == 1 and self[0].outside == own


def read_map(pid: int | str = "self", which: str = "uid_map") -> IdMap:
    """The current map of a process (``which`` is uid_map or gid_map)."""
    with open(f"/proc/{pid}/{which}") as f:
        return IdMap([IdRange(*map(int, line.split())) for line in f if line.strip()])


def resolve_uid(value: str | int) -> int:
    """A uid from a number or a user name."""
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    import pwd

    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise UsageError(f"no user named {value!r} (not in the passwd database)") from None


def resolve_gid(value: str | int) -> int:
    """A gid from a number or a group name."""
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    import grp

    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise UsageError(f"no group named {value!r} (not in the group database)") from None


def parse_range(text: str, what: str = "uid") -> IdRange:
    """One range as util-linux writes it: ``outer,inner,count`` (2.38) or ``inner:outer:count``
    (2.39+)."""
    sep = "," if "," in text else ":"
    parts = text.split(sep)
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise UsageError(
            f"bad {what} range {text!r}: write OUTER,INNER,COUNT (e.g. 100000,0,65536) or "
            "INNER:OUTER:COUNT (e.g. 0:100000:65536)")
    a, b, count = (int(p) for p in parts)
    outer, inner = (a, b) if sep == "," else (b, a)
    return IdRange(inner, outer, count)


def subid_ranges(user: str | int | None = None, path: str = SUBUID) -> list[tuple[int, int]]:
    """(start, count) ranges that /etc/subuid (or subgid) grants ``user`` (name or uid;
    default: the effective user)."""
    import pwd

    uid = os.geteuid() if user is None else resolve_uid(user)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    out = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) != 3 or fields[0].startswith("#"):
                    continue
                if fields[0] in (name, str(uid)) and fields[1].isdigit() and fields[2].isdigit():
                    out.append((int(fields[1]), int(fields[2])))
    except FileNotFoundError:
        pass
    return out


def auto_map(which: str = "uid", user: str | int | None = None) -> IdRange:
    """``--map-auto``: the first subordinate range of the user, mapped from 0 inside."""
    path = SUBUID if which == "uid" else SUBGID
    ranges = subid_ranges(user, path)
    if not ranges:
        import pwd

        uid = os.geteuid() if user is None else resolve_uid(user)
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        raise UsageError(
            f"--map-auto: {path} has no range for user {name!r}; add a line such as "
            f"'{name}:100000:65536' (e.g. usermod --add-sub{which}s 100000-165535 {name})")
    start, count = ranges[0]
    return IdRange(0, start, count)


# ------------------------------------------------------------------------------ writing
def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_setgroups(pid: int | str, policy: str) -> None:
    """Write "allow" or "deny" to /proc/PID/setgroups (before gid_map)."""
    if policy not in ("allow", "deny"):
        raise UsageError(f"setgroups must be 'allow' or 'deny', not {policy!r}")
    path = f"/proc/{pid}/setgroups"
    try:
        _write(path, policy)
    except OSError as exc:
        if exc.errno == errno.EPERM and policy == "allow":
            raise UsageError(
                "setgroups 'allow' is impossible here: the gid map is written without CAP_SETGID in "
                "the parent namespace, which requires 'deny' (drop --setgroups allow, or run "
                "privileged / map groups through newgidmap)") from None
        from ..errors import KernelError

        raise KernelError(exc.errno or 0, os.strerror(exc.errno or 0), step="write setgroups",
                          filename=path) from None


def writer_for(which: str, idmap: IdMap, *, setgroups: str | None, in_ns: bool = False,
               own: int | None = None) -> str:
    """How ``idmap`` can be written by this process: "direct" (a plain write) or "helper"
    (newuidmap/newgidmap).  ``in_ns``: the writer is the process inside the new namespace;
    ``own``: its euid/egid as seen *before* it entered (inside, unmapped ids read as 65534)."""
    if own is None:
        own = os.geteuid() if which == "uid_map" else os.getegid()
    cap = CAP_SETUID if which == "uid_map" else CAP_SETGID
    if idmap.is_self_map(own) and (which == "uid_map" or setgroups == "deny"):
        return "direct"
    if not in_ns and has_cap(cap):
        return "direct"
    return "helper"


def write_map(pid: int, which: str, idmap: IdMap, *, setgroups: str | None = None,
              in_ns: bool = False, own: int | None = None) -> str:
    """Write one map of ``pid``; returns how ("direct" or "helper")."""
    how = writer_for(which, idmap, setgroups=setgroups, in_ns=in_ns, own=own)
    target = "self" if in_ns else pid
    if how == "direct":
        try:
            _write(f"/proc/{target}/{which}", idmap.text())
        except OSError as exc:
            raise idmap_error(exc.errno or 0, which, pid, idmap.text(),
                              via="self" if in_ns else "direct") from None
        return how
    helper = "newuidmap" if which == "uid_map" else "newgidmap"
    ids = "uid" if which == "uid_map" else "gid"
    path = shutil.which(helper)
    if path is None:
        raise missing_helper(helper, ids)
    if in_ns:
        raise UsageError(f"{which} {idmap.text().strip()!r} must be written from outside the namespace")
    import subprocess

    proc = subprocess.run([path, str(pid), *idmap.helper_args()], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        from ..errors import KernelError

        detail = proc.stderr.strip().replace("\n", "; ") or f"exit status {proc.returncode}"
        raise KernelError(errno.EPERM, f"{helper} {pid} {' '.join(idmap.helper_args())} failed: {detail} "
                          f"(the ranges must be yours in /etc/sub{ids}, or your own {ids})",
                          step=f"write {which}", filename=f"/proc/{pid}/{which}")
    return how


def write_maps(pid: int, uid_map: IdMap | None = None, gid_map: IdMap | None = None, *,
               setgroups: str | None = None, in_ns: bool = False,
               own: tuple[int, int] | None = None) -> None:
    """Write setgroups, uid_map and gid_map of process ``pid`` (whose user namespace is new and
    has no maps yet), in the order the kernel needs.  ``setgroups`` None means: "deny" when the
    gid map can only be written that way, else leave it (the kernel default is "allow").
    ``own``: the writer's (euid, egid) before it entered the namespace (for ``in_ns``)."""
    uid, gid = own if own is not None else (os.geteuid(), os.getegid())
    if gid_map is not None and setgroups is None and (
            writer_for("gid_map", gid_map, setgroups="allow", in_ns=in_ns, own=gid) != "direct"
            and writer_for("gid_map", gid_map, setgroups="deny", in_ns=in_ns, own=gid) == "direct"):
        setgroups = "deny"
    target: int | str = "self" if in_ns else pid
    if setgroups is not None:
        write_setgroups(target, setgroups)
    if uid_map is not None:
        write_map(pid, "uid_map", uid_map, setgroups=setgroups, in_ns=in_ns, own=uid)
    if gid_map is not None:
        how = write_map(pid, "gid_map", gid_map, setgroups=setgroups, in_ns=in_ns, own=gid)
        if how == "helper" and setgroups == "allow":
            with open(f"/proc/{pid}/setgroups") as f:
                if f.read().strip() != "allow":
                    raise UsageError(
                        "setgroups 'allow' was refused: newgidmap writes 'deny' when the gid map holds "
                        "only your own gid (CVE-2018-7169); map subordinate gids too (--map-auto or "
                        "--map-groups) or drop --setgroups allow")
