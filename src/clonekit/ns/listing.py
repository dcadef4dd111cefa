"""The data behind ``clonekit lsns``: every namespace that a process is in (or that a bind mount
keeps alive), with its process count and its lowest-pid process — util-linux lsns's model.

One pass over /proc through :mod:`clonekit.proc` (``iter_pids``, ``ns_inode``): per process only
``stat(/proc/PID/ns/KIND)`` for the kinds asked; the details (ppid, user, command) are read,
with ``Process``, for the one representative process of each namespace.
"""

from __future__ import annotations

import os

from .._record import field, record
from .kinds import KERNEL_ORDER, parse_kinds

TYPE_CHECKING = False  # collections.abc imports all of collections; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["NamespaceRow", "list_namespaces", "namespace_tree"]


@record  # not a dataclass: importing dataclasses costs lsns ~15 ms, more than its scan
class NamespaceRow:
    """One line of lsns."""

    ns: int
    type: str
    nprocs: int
    pid: int | None
    ppid: int | None = None
    uid: int | None = None
    user: str | None = None
    command: str | None = None
    path: str | None = None
    nsfs: str | None = None
    netnsid: int | str | None = None
    pns: int | None = None
    ons: int | None = None
    pids: list[int] = field(default_factory=list)

    def as_dict(self, columns: Iterable[str]) -> dict[str, object]:
        return {c: getattr(self, c) for c in columns}


def _details(row: NamespaceRow) -> None:
    from ..proc import Process
    from ..proc.errors import ProcError

    if row.pid is None:
        return
    try:
        proc = Process(row.pid)
        row.ppid = proc.ppid
        row.uid = proc.uid
        row.user = proc.user
        row.command = " ".join(proc.cmdline) or proc.comm
    except ProcError:
        pass


def _relations(row: NamespaceRow) -> None:
    import fcntl

    from .namespace import NS_GET_PARENT, NS_GET_USERNS

    if row.path is None:
        return
    try:
        fd = os.open(row.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for attr, request in (("pns", NS_GET_PARENT), ("ons", NS_GET_USERNS)):
            try:
                other = fcntl.ioctl(fd, request)
            except OSError:
                setattr(row, attr, 0)
                continue
            try:
                setattr(row, attr, os.fstat(other).st_ino)
            finally:
                os.close(other)
    finally:
        os.close(fd)


RTM_NEWNSID = 88
RTM_GETNSID = 90
NETNSA_NSID = 1
NETNSA_FD = 3
NLM_F_REQUEST = 1
NLMSG_ERROR = 2


def fill_netnsids(rows: list[NamespaceRow]) -> None:
    """Set ``netnsid`` of the net rows: the id the caller's network namespace gives each one
    (RTM_GETNSID over rtnetlink), or "unassigned" — util-linux's NETNSID column."""
    import _socket  # the C module: `socket` imports enum and selectors (~5 ms) for nothing used here
    import struct

    nets = [r for r in rows if r.type == "net" and r.path]
    if not nets:
        return
    try:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                              _socket.NETLINK_ROUTE)
    except OSError:
        return
    try:
        sock.settimeout(1.0)
        for seq, row in enumerate(nets, 1):
            assert row.path is not None
            try:
                fd = os.open(row.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                attr = struct.pack("=HHI", 8, NETNSA_FD, fd)
                body = struct.pack("=Bxxx", _socket.AF_UNSPEC) + attr
                sock.send(struct.pack("=IHHII", 16 + len(body), RTM_GETNSID, NLM_F_REQUEST, seq, 0) + body)
                reply = sock.recv(4096)
            except OSError:
                continue
            finally:
                os.close(fd)
            _length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", reply)
            if kind != RTM_NEWNSID:
                continue
            offset = 16 + 4
            while offset + 4 <= len(reply):
                alen, atype = struct.unpack_from("=HH", reply, offset)
                if alen < 4:
                    break
                if atype == NETNSA_NSID:
                    (nsid,) = struct.unpack_from("=i", reply, offset + 4)
                    row.netnsid = "unassigned" if nsid < 0 else nsid
                offset += (alen + 3) & ~3
    finally:
        sock.close()


def list_namespaces(kinds: object = None, *, pid: int | None = None, inode: int | None = None,
                    relations: bool = False, details: bool = True,
                    include_persisted: bool = True) -> list[NamespaceRow]:
    """Namespaces visible to the caller, sorted by inode (like lsns).

    ``kinds`` limits the kinds; ``pid`` keeps only the namespaces of that process (counts still
    cover every process); ``inode`` keeps one namespace.  ``relations`` fills ``pns``/``ons``
    (parent and owner inodes, through the nsfs ioctls).  Namespaces with no process that a bind
    mount keeps alive are listed with ``nprocs`` 0 and their mount in ``nsfs``."""
    from ..proc import iter_pids, ns_inode
    from ..proc.errors import ProcError
    from ..proc.stat import procfs

    wanted = KERNEL_ORDER if kinds is None else parse_kinds(kinds)
    names = [(k.value, k) for k in wanted]
    root = procfs()
    table: dict[tuple[str, int], list[int]] = {}
    for p in iter_pids():
        for name, _kind in names:
            try:
                ino = ns_inode(p, name)
            except ProcError:
                # not allowed to look, a kind this kernel lacks, exited while we looked -- or a
                # zombie, whose mnt..net links are gone with its nsproxy while pid and user still
                # resolve (util-linux lists those too): the next kind, not the next process
                continue
            key = (name, ino)
            entry = table.get(key)
            if entry is None:
                table[key] = [1, p]
            else:
                entry[0] += 1
                if p < entry[1]:
                    entry[1] = p
    mine: set[tuple[str, int]] | None = None
    if pid is not None:
        from .errors import NoSuchProcessError

        if not os.path.exists(f"{root}/{pid}"):
            raise NoSuchProcessError(f"no process with pid {pid} (it exited, or never existed)")
        mine = set()
        for name, _kind in names:
            try:
                mine.add((name, ns_inode(pid, name)))
            except ProcError:
                continue
    mounts: dict[tuple[str, int], str] = {}
    if include_persisted:
        from .pin import persisted

        try:
            for path, ns in persisted():
                mounts.setdefault((ns.kind.value, ns.inode), path)
        except OSError:
            pass
    rows = []
    for (name, ino), (count, low) in table.items():
        if mine is not None and (name, ino) not in mine:
            continue
        if inode is not None and ino != inode:
            continue
        rows.append(NamespaceRow(ino, name, count, low, path=f"{root}/{low}/ns/{name}",
                                 nsfs=mounts.get((name, ino))))
    if mine is None:
        kinds_shown = {n for n, _ in names}
        for (name, ino), path in mounts.items():
            if (name, ino) in table or name not in kinds_shown or (inode is not None and ino != inode):
                continue
            rows.append(NamespaceRow(ino, name, 0, None, path=path, nsfs=path))
    rows.sort(key=lambda r: (r.ns, r.type))
    for row in rows:
        if details:
            _details(row)
        if relations:
            _relations(row)
    return rows


def namespace_tree(rows: list[NamespaceRow], relation: str = "owner") -> list[tuple[int, NamespaceRow]]:
    """(depth, row) in tree order: by ``owner`` (each namespace under the user namespace that owns
    it) or by ``parent`` (pid and user namespaces under their parents).  Rows need ``relations``."""
    by_ino = {(r.type, r.ns): r for r in rows}
    users = {r.ns: r for r in rows if r.type == "user"}

    def up(r: NamespaceRow) -> NamespaceRow | None:
        if relation == "owner":
            if r.type == "user":
                return users.get(r.pns or 0)
            return users.get(r.ons or 0)
        if r.type in ("pid", "user"):
            return by_ino.get((r.type, r.pns or 0))
        return None

    children: dict[int, list[NamespaceRow]] = {}
    roots = []
    for r in rows:
        parent = up(r)
        if parent is None or parent is r:
            roots.append(r)
        else:
            children.setdefault(id(parent), []).append(r)
    out: list[tuple[int, NamespaceRow]] = []

    def walk(r: NamespaceRow, depth: int) -> None:
        out.append((depth, r))
        kids = children.get(id(r), [])
        # user namespaces after the namespaces they own, like a directory listing
        for k in sorted(kids, key=lambda x: (x.type == "user", x.ns)):
            walk(k, depth + 1)

    for r in roots:
        walk(r, 0)
    return out

