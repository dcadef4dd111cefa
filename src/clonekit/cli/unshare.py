"""``clonekit unshare``: util-linux unshare(1)'s options over :func:`clonekit.ns.newns.run`."""

from __future__ import annotations

import sys

from .table import Command, Opt

TYPE_CHECKING = False  # typing, argparse and enum stay off the start-up path
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

# long options that take an optional "=VALUE" (util-linux optional_argument) -> where VALUE goes
_OPTIONAL_VALUE = {
    "--mount": "mnt_file", "--uts": "uts_file", "--ipc": "ipc_file", "--net": "net_file",
    "--pid": "pid_file", "--user": "user_file", "--cgroup": "cgroup_file", "--time": "time_file",
    "--mount-proc": "mount_proc_dir", "--kill-child": "kill_child_signal",
}
# options whose value is the next word
_TAKES_VALUE = {"-R", "--root", "-w", "--wd", "-S", "--setuid", "-G", "--setgid", "--propagation",
                "--setgroups", "--map-user", "--map-group", "--map-users", "--map-groups",
                "--monotonic", "--boottime"}

_KINDS = (("-m", "--mount", "mnt", "mounts"), ("-u", "--uts", "uts", "UTS (hostname etc)"),
          ("-i", "--ipc", "ipc", "System V IPC"), ("-n", "--net", "net", "network"),
          ("-p", "--pid", "pid", "pid"), ("-U", "--user", "user", "user"),
          ("-C", "--cgroup", "cgroup", "cgroup"), ("-T", "--time", "time", "time"))

#: the options of add_arguments() for the small parser (tests/cli checks that they agree)
FAST = Command("unshare", (
    *(Opt((short, long), kind) for short, long, kind, _text in _KINDS),
    Opt(("-f", "--fork"), "fork"), Opt(("--mount-proc",), "mount_proc"),
    Opt(("-r", "--map-root-user"), "map_root_user"), Opt(("-c", "--map-current-user"), "map_current_user"),
    Opt(("--map-user",), "map_user", takes=str), Opt(("--map-group",), "map_group", takes=str),
    Opt(("--map-users",), "map_users", takes=str, default=[], append=True),
    Opt(("--map-groups",), "map_groups", takes=str, default=[], append=True),
    Opt(("--map-auto",), "map_auto"),
    Opt(("--setgroups",), "setgroups", takes=str, choices=("allow", "deny")),
    Opt(("--propagation",), "propagation", takes=str, default="private",
        choices=("private", "shared", "slave", "unchanged")),
    Opt(("--kill-child",), "kill_child"),
    Opt(("-R", "--root"), "root", takes=str), Opt(("-w", "--wd"), "wd", takes=str),
    Opt(("--monotonic",), "monotonic", takes=float), Opt(("--boottime",), "boottime", takes=float),
    Opt(("--keep-caps",), "keep_caps"),
    Opt(("-S", "--setuid"), "setuid", takes=str), Opt(("-G", "--setgid"), "setgid", takes=str),
), optional=_OPTIONAL_VALUE, remainder="program")


def rewrite_optional_values(argv: Sequence[str], optional: dict[str, str], takes_value: set[str],
                            short_files: dict[str, str] | None = None) -> list[str]:
    """Turn ``--mount=FILE`` into ``--mount --_value=mnt_file=FILE`` before argparse sees it
    (argparse has no optional-argument options that leave a following program name alone);
    :func:`install_rewriter` then sets ``args.mnt_file``.  Stops at the program."""
    out: list[str] = []
    i = 0
    args = list(argv)
    while i < len(args):
        tok = args[i]
        if tok == "--" or not tok.startswith("-") or tok == "-":
            out.extend(args[i:])
            break
        name, eq, value = tok.partition("=")
        if tok.startswith("--") and eq and name in optional:
            out += [name, f"--_value={optional[name]}={value}"]
        elif short_files and not tok.startswith("--") and len(tok) > 2 and tok[:2] in short_files \
                and tok[2] in "/.=":
            out += [tok[:2], f"--_value={short_files[tok[:2]]}={tok[2:].removeprefix('=')}"]
        else:
            out.append(tok)
            if tok in takes_value and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
        i += 1
    return out


def install_rewriter(parser: argparse.ArgumentParser, rewrite: Callable[[Sequence[str]], list[str]],
                     dests: Sequence[str]) -> None:
    """Make ``parser`` (a subcommand parser) rewrite its words first, and turn the hidden
    ``--_value=DEST=VALUE`` words into ``args.DEST`` (default None)."""
    import argparse

    parser.add_argument("--_value", dest="_values", action="append", default=[], help=argparse.SUPPRESS)
    parser.set_defaults(**dict.fromkeys(dests))
    original = parser.parse_known_args

    def parse_known_args(args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed, extra = original(rewrite(list(args) if args is not None else sys.argv[1:]), namespace)
        for item in parsed._values:
            dest, _, value = item.partition("=")
            setattr(parsed, dest, value)
        return parsed, extra

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import argparse

    parser.usage = "clonekit unshare [options] [<program> [<argument>...]]"
    for short, long, kind, text in _KINDS:
        parser.add_argument(short, long, dest=kind, action="store_true",
                            help=f"unshare the {text} namespace; {long}=FILE also bind-mounts it on FILE")
    parser.add_argument("-f", "--fork", action="store_true", help="fork before launching the program")
    parser.add_argument("--mount-proc", action="store_true",
                        help="mount proc on /proc (or --mount-proc=DIR) first (implies --mount)")
    parser.add_argument("-r", "--map-root-user", action="store_true",
                        help="map the current user to root (implies --user)")
    parser.add_argument("-c", "--map-current-user", action="store_true",
                        help="map the current user to itself (implies --user)")
    parser.add_argument("--map-user", metavar="UID|NAME", help="map the current user to UID (implies --user)")
    parser.add_argument("--map-group", metavar="GID|NAME",
                        help="map the current group to GID (implies --user)")
    parser.add_argument("--map-users", metavar="OUTER,INNER,COUNT", action="append", default=[],
                        help="map COUNT users from OUTER to INNER (also INNER:OUTER:COUNT, or 'auto')")
    parser.add_argument("--map-groups", metavar="OUTER,INNER,COUNT", action="append", default=[],
                        help="map COUNT groups from OUTER to INNER (also INNER:OUTER:COUNT, or 'auto')")
    parser.add_argument("--map-auto", action="store_true",
                        help="map the first /etc/subuid and /etc/subgid ranges of the user (implies --user)")
    parser.add_argument("--setgroups", choices=("allow", "deny"),
                        help="control setgroups(2) in the user namespace")
    parser.add_argument("--propagation", default="private",
                        choices=("private", "shared", "slave", "unchanged"),
                        help="mount propagation in the new mount namespace (default private)")
    parser.add_argument("--kill-child", action="store_true",
                        help="kill the forked child (SIGKILL, or --kill-child=SIG) when clonekit dies "
                        "(implies --fork)")
    parser.add_argument("-R", "--root", metavar="DIR", help="run the program with root directory DIR")
    parser.add_argument("-w", "--wd", metavar="DIR", help="change the working directory to DIR")
    parser.add_argument("--monotonic", type=float, metavar="SECONDS", help="CLOCK_MONOTONIC offset (time ns)")
    parser.add_argument("--boottime", type=float, metavar="SECONDS", help="CLOCK_BOOTTIME offset (time ns)")
    parser.add_argument("--keep-caps", action="store_true",
                        help="keep the capabilities of the user namespace across exec")
    parser.add_argument("-S", "--setuid", metavar="UID", help="set the uid in the new namespaces")
    parser.add_argument("-G", "--setgid", metavar="GID", help="set the gid in the new namespaces")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="program and arguments (default: $SHELL)")
    install_rewriter(parser, lambda argv: rewrite_optional_values(argv, _OPTIONAL_VALUE, _TAKES_VALUE),
                     list(_OPTIONAL_VALUE.values()))


def _id_maps(args: argparse.Namespace, spec: Any) -> None:
    import os

    from clonekit.ns.idmap import IdMap, IdRange, auto_map, parse_range, resolve_gid, resolve_uid

    uid_singles: list[IdRange] = []
    gid_singles: list[IdRange] = []
    euid, egid = os.geteuid(), os.getegid()
    if args.map_root_user:
        uid_singles.append(IdRange(0, euid))
        gid_singles.append(IdRange(0, egid))
    if args.map_current_user:
        uid_singles.append(IdRange(euid, euid))
        gid_singles.append(IdRange(egid, egid))
    if args.map_user is not None:
        uid_singles = [IdRange(resolve_uid(args.map_user), euid)]
    if args.map_group is not None:
        gid_singles = [IdRange(resolve_gid(args.map_group), egid)]

    def ranges(values: list[str], which: str, singles: list[IdRange]) -> list[IdRange]:
        out = []
        for value in values + (["auto"] if args.map_auto else []):
            r = auto_map(which) if value == "auto" else parse_range(value, which)
            if value == "auto" and any(s.inside == 0 for s in singles):
                r = IdRange(1, r.outside, r.count)  # root is taken by -r: shift the block up by one
            out.append(r)
        return out

    uid_ranges = ranges(args.map_users, "uid", uid_singles)
    gid_ranges = ranges(args.map_groups, "gid", gid_singles)
    if uid_singles or uid_ranges:
        spec.uid_map = IdMap(uid_singles + uid_ranges)
    if gid_singles or gid_ranges:
        spec.gid_map = IdMap(gid_singles + gid_ranges)


def spec_from_args(args: argparse.Namespace) -> Any:
    import os

    from clonekit.ns.kinds import Kind
    from clonekit.ns.newns import UnshareSpec

    spec = UnshareSpec()
    kinds = []
    for _short, _long, kind, _text in _KINDS:
        path = getattr(args, f"{kind}_file")
        if getattr(args, kind) or path is not None:
            kinds.append(Kind(kind))
            if path:
                spec.persist[Kind(kind)] = os.path.abspath(path)
    if (args.map_root_user or args.map_current_user or args.map_user is not None or args.map_group is not None
            or args.map_users or args.map_groups or args.map_auto):
        _id_maps(args, spec)
    spec.kinds = tuple(kinds)
    spec.setgroups = args.setgroups
    spec.propagation = args.propagation
    spec.fork = args.fork
    if args.mount_proc or args.mount_proc_dir:
        spec.mount_proc = args.mount_proc_dir or "/proc"
    if args.kill_child or args.kill_child_signal:
        from clonekit.signals import parse_signal  # signal imports enum: only when a name is given

        spec.kill_child = parse_signal(args.kill_child_signal) if args.kill_child_signal else 9
    spec.root = args.root
    spec.wd = args.wd
    spec.monotonic = args.monotonic
    spec.boottime = args.boottime
    spec.keep_caps = args.keep_caps
    if args.setuid is not None or args.setgid is not None:
        from clonekit.ns.idmap import resolve_gid, resolve_uid

        spec.uid = resolve_uid(args.setuid) if args.setuid is not None else None
        spec.gid = resolve_gid(args.setgid) if args.setgid is not None else None
    return spec


def program_of(args: argparse.Namespace) -> list[str]:
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    return program


def run(args: argparse.Namespace) -> int:
    from clonekit.ns._child import ExecError
    from clonekit.ns.newns import run as run_unshared

    spec = spec_from_args(args)
    try:
        return run_unshared(program_of(args), spec)
    except ExecError as exc:
        print(f"clonekit unshare: {exc}", file=sys.stderr)
        return exc.exit_status
