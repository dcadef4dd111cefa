"""``clonekit lsns``: util-linux lsns(8)'s listing over :func:`clonekit.ns.listing.list_namespaces`."""

from __future__ import annotations

import sys

from .table import Command, Opt

TYPE_CHECKING = False  # typing and argparse stay off the start-up path
if TYPE_CHECKING:
    import argparse
    from typing import Any

COLUMNS = {
    "NS": "namespace identifier (inode number)",
    "TYPE": "kind of namespace",
    "PATH": "path to the namespace",
    "NPROCS": "number of processes in the namespace",
    "PID": "lowest PID in the namespace",
    "PPID": "PPID of the PID",
    "COMMAND": "command line of the PID",
    "UID": "UID of the PID",
    "USER": "username of the PID",
    "NETNSID": "namespace ID as used by network subsystem",
    "NSFS": "nsfs mountpoint (a persisted namespace)",
    "PNS": "parent namespace identifier (inode number)",
    "ONS": "owner namespace identifier (inode number)",
}
DEFAULT = ["NS", "TYPE", "NPROCS", "PID", "PPID", "USER", "COMMAND"]
_RIGHT = {"NS", "NPROCS", "PID", "PPID", "UID", "PNS", "ONS"}

#: the options of add_arguments() for the small parser (tests/cli checks that they agree)
FAST = Command("lsns", (
    Opt(("-J", "--json"), "json"), Opt(("-l", "--list"), "list"), Opt(("-n", "--noheadings"), "noheadings"),
    Opt(("-o", "--output"), "output", takes=str), Opt(("--output-all",), "output_all"),
    Opt(("-p", "--task"), "task", takes=int), Opt(("-r", "--raw"), "raw"),
    Opt(("-t", "--type"), "type", takes=str, default=[], append=True),
    Opt(("-u", "--notruncate"), "notruncate"), Opt(("-W", "--nowrap"), "nowrap"),
    Opt(("-T", "--tree"), "tree", takes=str, choices=("owner", "parent"), const="owner"),
), positional=("namespace", int, None))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "clonekit lsns [options] [<namespace>]"
    parser.add_argument("namespace", nargs="?", type=int, help="show only the namespace with this inode")
    parser.add_argument("-J", "--json", action="store_true", help="JSON output (util-linux's shape)")
    parser.add_argument("-l", "--list", action="store_true", help="list format (no tree)")
    parser.add_argument("-n", "--noheadings", action="store_true", help="don't print headings")
    parser.add_argument("-o", "--output", metavar="LIST", help=f"columns: {','.join(COLUMNS)} (+LIST adds)")
    parser.add_argument("--output-all", action="store_true", help="output all columns")
    parser.add_argument("-p", "--task", type=int, metavar="PID", help="the namespaces of this process")
    parser.add_argument("-r", "--raw", action="store_true", help="raw output (no alignment)")
    parser.add_argument("-t", "--type", action="append", default=[], metavar="TYPE",
                        help="namespace type (mnt, net, ipc, user, pid, uts, cgroup, time); repeatable")
    parser.add_argument("-u", "--notruncate", action="store_true", help="accepted for util-linux "
                        "compatibility (clonekit never truncates)")
    parser.add_argument("-W", "--nowrap", action="store_true", help="accepted for util-linux compatibility")
    parser.add_argument("-T", "--tree", nargs="?", const="owner", choices=("owner", "parent"),
                        help="tree of namespaces: by owning user namespace (default) or by parent")


def _columns(args: argparse.Namespace, rows: list[Any]) -> list[str]:
    from clonekit.errors import UsageError

    if args.output_all:
        return list(COLUMNS)
    spec = args.output
    base = list(DEFAULT)
    if args.type == ["net"]:  # like util-linux: network namespaces get their ids and mounts
        base[base.index("COMMAND"):base.index("COMMAND")] = ["NETNSID", "NSFS"]
    elif any(r.nsfs for r in rows):
        base.insert(base.index("COMMAND"), "NSFS")
    if spec is None:
        return base
    if spec.startswith("+"):
        chosen, spec = base, spec[1:]
    else:
        chosen = []
    for name in spec.split(","):
        name = name.strip().upper()
        if not name:
            continue
        if name not in COLUMNS:
            raise UsageError(f"unknown column {name!r}: available columns are {', '.join(COLUMNS)}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def run(args: argparse.Namespace) -> int:
    from clonekit.ns.listing import list_namespaces, namespace_tree

    kinds = args.type or None
    rows_for_cols: list[Any] = []
    columns_wanted = args.output or ""
    relations = bool(args.tree) or args.output_all or any(c in columns_wanted.upper() for c in ("PNS", "ONS"))
    rows = list_namespaces(kinds, pid=args.task, inode=args.namespace, relations=relations)
    rows_for_cols = rows
    columns = _columns(args, rows_for_cols)
    keys = [c.lower() for c in columns]
    if "netnsid" in keys:
        from clonekit.ns.listing import fill_netnsids

        fill_netnsids(rows)
    tree = None
    if args.tree and not args.list:
        tree = namespace_tree(rows, args.tree)
    if args.json:
        _print_json(rows, keys, tree)
        return 0
    table = []
    order = tree if tree is not None else [(0, r) for r in rows]
    prefixes = tree_prefixes([d for d, _ in order])
    for (_depth, row), prefix in zip(order, prefixes, strict=True):
        cells = []
        for i, key in enumerate(keys):
            value = getattr(row, key)
            text = "" if value is None else str(value)
            cells.append(prefix + text if i == 0 else text)
        table.append(cells)
    out = sys.stdout
    if args.raw:
        if not args.noheadings:
            out.write(" ".join(columns) + "\n")
        for cells in table:
            out.write(" ".join(c.replace(" ", "\\x20") for c in cells) + "\n")
        return 0
    all_rows = ([] if args.noheadings else [columns]) + table
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(columns))]
    for cells in all_rows:
        parts = []
        for i, (cell, name) in enumerate(zip(cells, columns, strict=True)):
            last = i == len(columns) - 1
            if name in _RIGHT and not (name == "NS" and tree is not None):
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell if last else cell.ljust(widths[i]))
        out.write(" ".join(parts).rstrip() + "\n")
    return 0


def tree_prefixes(depths: list[int]) -> list[str]:
    """The "├─", "└─" and "│ " drawing in front of each line of a tree given in pre-order."""
    n = len(depths)
    last = []
    for i, d in enumerate(depths):
        j = i + 1
        while j < n and depths[j] > d:
            j += 1
        last.append(j >= n or depths[j] < d)
    out = []
    open_levels: list[bool] = []  # per level: does the ancestor at that level have later siblings
    for d, is_last in zip(depths, last, strict=True):
        del open_levels[max(d - 1, 0):]
        if d == 0:
            out.append("")
            continue
        out.append("".join("│ " if more else "  " for more in open_levels) + ("└─" if is_last else "├─"))
        open_levels.append(not is_last)
    return out


def _print_json(rows: list[Any], keys: list[str], tree: list[tuple[int, Any]] | None) -> None:
    from clonekit._jsonc import dumps  # json's C encoder without importing json (~10 ms)

    if tree is None:
        data = [r.as_dict(keys) for r in rows]
    else:
        data = []
        stack: list[tuple[int, dict[str, Any]]] = []
        for depth, row in tree:
            item = row.as_dict(keys)
            while stack and stack[-1][0] >= depth:
                stack.pop()
            if stack:
                stack[-1][1].setdefault("children", []).append(item)
            else:
                data.append(item)
            stack.append((depth, item))
    sys.stdout.write(dumps({"namespaces": data}, indent=3) + "\n")  # json.dump(indent=3)'s text
