"""``clonekit tree``: the process tree like ``pstree -p``, with threads in ``{}`` and, with
``--ns``, the namespace kinds in which a process differs from its parent (like ``pstree -S``)."""

from __future__ import annotations

import os
import sys

from .table import Command, Opt

TYPE_CHECKING = False  # not `from typing import ...`: typing costs more than a scan

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import Any

    from clonekit.proc.tree import TreeNode

# (single child, first of several, middle, last, vertical bar)
_ASCII = ("---", "-+-", " |-", " `-", " | ")
_UTF8 = ("───", "─┬─", " ├─", " └─", " │ ")

#: the options of add_arguments() for the small parser (tests/cli checks that they agree)
FAST = Command("tree", (
    Opt(("--ns",), "ns"), Opt(("-T", "--hide-threads"), "hide_threads"),
    Opt(("-t", "--thread-names"), "thread_names"), Opt(("--json",), "json"), Opt(("--dot",), "dot"),
    Opt(("-A", "--ascii"), "ascii"), Opt(("-U", "--unicode"), "unicode"),
), positional=("pid", str, "1"), exclusive=(("json", "dot"), ("ascii", "unicode")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pid", nargs="?", default="1", help="root of the tree (default: 1)")
    parser.add_argument(
        "--ns",
        action="store_true",
        help="mark where a process's namespaces differ from its parent's, like pstree -S: sleep(42,pid,uts)",
    )
    parser.add_argument("-T", "--hide-threads", action="store_true", help="leave threads out")
    parser.add_argument(
        "-t",
        "--thread-names",
        action="store_true",
        help="show each thread's own name (default: its process's name, like pstree)",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='print {"tree": {pid, comm, threads, children}}')
    out.add_argument("--dot", action="store_true", help="print the tree as a Graphviz dot graph")
    lines = parser.add_mutually_exclusive_group()
    lines.add_argument("-A", "--ascii", action="store_true", help="draw with ASCII characters")
    lines.add_argument("-U", "--unicode", action="store_true", help="draw with UTF-8 line characters")


def run(args: argparse.Namespace) -> int:
    from clonekit.errors import UsageError
    from clonekit.proc.tree import build_tree

    if not args.pid.isdigit() or int(args.pid) <= 0:
        raise UsageError(f"{args.pid!r} is not a process id (a positive integer, e.g. `clonekit tree 1`)")
    root = build_tree(int(args.pid), ns=args.ns)
    if hasattr(sys.stdout, "reconfigure"):  # a comm that is not UTF-8 must not crash the drawing
        sys.stdout.reconfigure(errors="backslashreplace")
    if args.hide_threads or not args.thread_names:
        for node in root.walk():
            if args.hide_threads:
                node.threads.clear()
            else:
                for thread in node.threads:
                    thread.comm = node.comm
    if args.json:
        from clonekit._jsonc import dumps  # json's C encoder without importing json (~10 ms)

        sys.stdout.write(dumps({"tree": _json(root, args.ns)}, indent=2) + "\n")
    elif args.dot:
        sys.stdout.write(_dot(root, args.ns))
    else:
        chars = _UTF8 if args.unicode or (not args.ascii and _utf8_locale()) else _ASCII
        sys.stdout.write("\n".join(_render(root, chars, args.ns)) + "\n")
    return 0


def _utf8_locale() -> bool:
    """pstree draws with UTF-8 line characters on a terminal whose locale's charset is UTF-8."""
    if not sys.stdout.isatty():
        return False
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = os.environ.get(var)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


# the order in which pstree -S lists the kinds
_PSTREE_ORDER = {k: i for i, k in enumerate(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"))}


def _label(node: TreeNode, ns: bool) -> str:
    marks = ""
    if ns and node.ns_changed:
        marks = "".join(f",{k}" for k in sorted(node.ns_changed, key=lambda k: _PSTREE_ORDER.get(k, 99)))
    return f"{node.name}({node.pid}{marks})"


def _render(root: TreeNode, chars: tuple[str, ...], ns: bool) -> list[str]:
    """pstree's layout: the first child on the parent's line, the others below it."""
    single, first, middle, last, bar = chars
    count = sum(1 for _ in root.walk())  # bounds the recursion depth of block()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), count + 200))

    def block(node: TreeNode) -> list[str]:
        label = _label(node, ns)
        kids = node.kids()
        if not kids:
            return [label]
        if len(kids) == 1:
            sub = block(kids[0])
            pad = " " * (len(label) + 3)
            return [label + single + sub[0], *(pad + s for s in sub[1:])]
        pad = " " * len(label)
        lines: list[str] = []
        n = len(kids)
        for i, kid in enumerate(kids):
            sub = block(kid)
            is_last = i == n - 1
            head = label + first if i == 0 else pad + (last if is_last else middle)
            cont = pad + ("   " if is_last else bar)
            lines.append(head + sub[0])
            lines.extend(cont + s for s in sub[1:])
        return lines

    return block(root)


def _json(node: TreeNode, ns: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": node.pid, "ppid": node.ppid, "comm": node.comm}
    if ns:
        out["ns"] = node.ns
        out["ns_changed"] = node.ns_changed
    if not node.is_thread:
        out["threads"] = [_json(t, ns) | {"tid": t.pid} for t in sorted(node.threads, key=lambda t: t.pid)]
        out["children"] = [_json(c, ns) for c in node.kids() if not c.is_thread]
    return out


def _dot(root: TreeNode, ns: bool) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    lines = [
        "digraph clonekit_tree {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    for node in root.walk():
        ident = f"t{node.pid}" if node.is_thread else f"p{node.pid}"
        attrs = [f'label="{esc(node.name)}\\n{node.pid}"']
        if node.is_thread:
            attrs.append("style=dashed")
        if ns and node.ns_changed:
            attrs += ["color=red", "penwidth=2"]
        lines.append(f"  {ident} [{', '.join(attrs)}];")
        for kid in node.kids():
            kid_id = f"t{kid.pid}" if kid.is_thread else f"p{kid.pid}"
            edge = []
            if kid.is_thread:
                edge.append("style=dashed")
            if ns and kid.ns_changed:
                edge += [f'label="new {",".join(kid.ns_changed)}"', "color=red", "fontcolor=red"]
            lines.append(f"  {ident} -> {kid_id}" + (f" [{', '.join(edge)}]" if edge else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
