"""The process tree (``pstree -p``) with threads and the places where namespaces change.

:func:`build_tree` scans /proc once (one ``stat`` per task, no ``status``) and links processes
to their parents.  With ``ns=True`` it also reads every process's (and thread's) namespace
inodes and records, on each node, which kinds differ from its parent (``pstree -S``'s marks).
"""

from __future__ import annotations

from clonekit.proc.errors import NoSuchProcess
from clonekit.proc.stat import NS_KINDS, ns_link_inode, procfs
from clonekit.proc.tasks import _check_pid, iter_tasks

TYPE_CHECKING = False  # collections.abc imports all of collections; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Iterable


class TreeNode:
    """A process (or, with ``is_thread``, a thread) in the tree.

    ``children`` are processes sorted like pstree sorts them (by name, then pid); ``threads``
    the other threads of the process; ``ns`` maps kind -> inode (only with ``ns=True``) and
    ``ns_changed`` lists the kinds in which this node differs from its parent (for a thread:
    from its process).  For a thread, ``pid`` is its TID and ``ppid`` its process's pid.
    """

    __slots__ = ("children", "comm", "is_thread", "ns", "ns_changed", "pid", "ppid", "threads")

    def __init__(self, pid: int, ppid: int, comm: str, is_thread: bool = False) -> None:
        self.pid = pid
        self.ppid = ppid
        self.comm = comm
        self.is_thread = is_thread
        self.threads: list[TreeNode] = []
        self.children: list[TreeNode] = []
        self.ns: dict[str, int] = {}
        self.ns_changed: list[str] = []

    def __repr__(self) -> str:
        kind = "thread" if self.is_thread else "process"
        return f"TreeNode({kind} {self.pid} {self.comm!r}, {len(self.children)} children)"

    @property
    def name(self) -> str:
        """What pstree prints: the comm, in braces for a thread."""
        return f"{{{self.comm}}}" if self.is_thread else self.comm

    def walk(self) -> Iterable[TreeNode]:
        """This node, then its threads and descendants, depth first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.kids()))

    def kids(self) -> list[TreeNode]:
        """Child processes and threads in pstree's order (by name then pid; threads' ``{`` sorts last)."""
        return sorted(self.children + self.threads, key=lambda n: (n.name, n.pid))


def build_tree(root: int | None = 1, *, ns: bool = False, kinds: Iterable[str] = NS_KINDS) -> TreeNode:
    """The tree of processes under ``root`` (pid 1 by default) with their threads.

    ``root=None`` gives a synthetic node with pid 0 whose children are all processes without a
    visible parent (pid 1, kthreadd, or the inits of other pid namespaces seen with a private
    /proc).  A missing ``root`` raises :class:`NoSuchProcess`.  Processes that exit during the
    scan are left out.
    """
    if root is not None:
        _check_pid(root)
    nodes: dict[int, TreeNode] = {}
    threads: list[TreeNode] = []
    for t in iter_tasks(cmdline=False, nspid=False, uid=False):
        if t.tid == t.tgid:
            nodes[t.tgid] = TreeNode(t.tgid, t.ppid, t.comm)
        else:
            threads.append(TreeNode(t.tid, t.tgid, t.comm, is_thread=True))
    for th in threads:
        leader = nodes.get(th.ppid)
        if leader is not None:
            leader.threads.append(th)
    top = TreeNode(0, 0, "")
    for node in nodes.values():
        parent = nodes.get(node.ppid)
        if parent is None or parent is node:
            top.children.append(node)
        else:
            parent.children.append(node)
    if root is None:
        start = top
    else:
        found = nodes.get(root)
        if found is None:
            raise NoSuchProcess(root)
        start = found
    if ns:
        _mark_namespaces(start, tuple(kinds))
    return start


def _inodes(base: str, kinds: tuple[str, ...]) -> dict[str, int]:
    """``{kind: inode}`` from ``base`` + kind; kinds that cannot be read are left out."""
    out: dict[str, int] = {}
    inode = ns_link_inode
    for kind in kinds:
        try:
            out[kind] = inode(base + kind)
        except PermissionError:  # no ptrace access: none of them will be readable
            return out
        except OSError:  # exited meanwhile, or a kind this kernel lacks
            continue
    return out


def _mark_namespaces(start: TreeNode, kinds: tuple[str, ...]) -> None:
    root = procfs()
    above: dict[str, int] | None = None
    if start.pid and start.ppid:  # the root is compared with its own parent, like pstree -S
        above = _inodes(f"{root}/{start.ppid}/ns/", kinds) or None
    stack: list[tuple[TreeNode, dict[str, int] | None]] = [(start, above)]
    while stack:
        node, parent_ns = stack.pop()
        if node.is_thread:
            node.ns = _inodes(f"{root}/{node.ppid}/task/{node.pid}/ns/", kinds)
        elif node.pid:
            node.ns = _inodes(f"{root}/{node.pid}/ns/", kinds)
        mine = node.ns
        if parent_ns and mine:
            node.ns_changed = [k for k in kinds if k in mine and k in parent_ns and mine[k] != parent_ns[k]]
        for kid in node.children:
            stack.append((kid, mine or None))
        for th in node.threads:
            stack.append((th, mine or None))
