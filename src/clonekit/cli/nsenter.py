"""``clonekit nsenter``: util-linux nsenter(1)'s options over :func:`clonekit.ns.setns.run`."""

from __future__ import annotations

import sys

from .table import Command, Opt

TYPE_CHECKING = False  # typing and argparse stay off the start-up path
if TYPE_CHECKING:
    import argparse
    from typing import Any

_KINDS = (("-m", "--mount", "mnt"), ("-u", "--uts", "uts"), ("-i", "--ipc", "ipc"), ("-n", "--net", "net"),
          ("-p", "--pid", "pid"), ("-U", "--user", "user"), ("-C", "--cgroup", "cgroup"),
          ("-T", "--time", "time"))
_OPTIONAL_VALUE = {long: f"{kind}_file" for _s, long, kind in _KINDS}
_OPTIONAL_VALUE |= {"--root": "root_dir", "--wd": "wd_dir"}
_SHORT_FILES = {short: f"{kind}_file" for short, _l, kind in _KINDS} | {"-r": "root_dir", "-w": "wd_dir"}
_TAKES_VALUE = {"-t", "--target", "-S", "--setuid", "-G", "--setgid"}

#: the options of add_arguments() for the small parser (tests/cli checks that they agree)
FAST = Command("nsenter", (
    Opt(("-t", "--target"), "target", takes=int), Opt(("-a", "--all"), "all"),
    *(Opt((short, long), kind) for short, long, kind in _KINDS),
    Opt(("--preserve-credentials",), "preserve_credentials"),
    Opt(("-S", "--setuid"), "setuid", takes=str), Opt(("-G", "--setgid"), "setgid", takes=str),
    Opt(("-r", "--root"), "root_flag"), Opt(("-w", "--wd"), "wd_flag"), Opt(("-F", "--no-fork"), "no_fork"),
), optional=_OPTIONAL_VALUE, short_files=_SHORT_FILES, remainder="program")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import argparse

    from .unshare import install_rewriter, rewrite_optional_values

    parser.usage = "clonekit nsenter [options] [<program> [<argument>...]]"
    parser.add_argument("-t", "--target", type=int, metavar="PID",
                        help="target process to get namespaces from")
    parser.add_argument("-a", "--all", action="store_true", help="enter all namespaces of the target")
    for short, long, kind in _KINDS:
        parser.add_argument(short, long, dest=kind, action="store_true",
                            help=f"enter the {kind} namespace of the target; {long}=FILE: of that file")
    parser.add_argument("--preserve-credentials", action="store_true",
                        help="do not touch uids or gids (default after entering a user ns: become 0)")
    parser.add_argument("-S", "--setuid", metavar="UID", help="set the uid in the entered namespaces")
    parser.add_argument("-G", "--setgid", metavar="GID", help="set the gid in the entered namespaces")
    parser.add_argument("-r", "--root", dest="root_flag", action="store_true",
                        help="set the root directory to the target's (or --root=DIR)")
    parser.add_argument("-w", "--wd", dest="wd_flag", action="store_true",
                        help="set the working directory to the target's (or --wd=DIR)")
    parser.add_argument("-F", "--no-fork", action="store_true",
                        help="do not fork before exec'ing the program")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="program and arguments (default: $SHELL)")
    install_rewriter(parser, lambda argv: rewrite_optional_values(argv, _OPTIONAL_VALUE, _TAKES_VALUE,
                                                                  _SHORT_FILES),
                     list(_OPTIONAL_VALUE.values()))


def spec_from_args(args: argparse.Namespace) -> Any:
    import os

    from clonekit.errors import UsageError
    from clonekit.ns.kinds import Kind
    from clonekit.ns.setns import NsenterSpec

    spec = NsenterSpec(target=args.target, all=args.all, preserve_credentials=args.preserve_credentials,
                       fork=not args.no_fork)
    for _short, _long, kind in _KINDS:
        path = getattr(args, f"{kind}_file")
        if getattr(args, kind) or path is not None:
            spec.kinds[Kind(kind)] = os.path.abspath(path) if path else None
    if args.root_flag or args.root_dir is not None:
        spec.root = args.root_dir or ""
    if args.wd_flag or args.wd_dir is not None:
        spec.wd = args.wd_dir or ""
    if (spec.root == "" or spec.wd == "") and spec.target is None:
        raise UsageError("-r/-w without a directory use the target's root/cwd: add -t PID")

    def follow(value: str, which: str) -> int:
        if value == "follow":
            if spec.target is None:
                raise UsageError(f"{which} follow needs a target process: add -t PID")
            st = os.stat(f"/proc/{spec.target}")
            return st.st_uid if which == "--setuid" else st.st_gid
        from clonekit.ns.idmap import resolve_gid, resolve_uid  # only for -S/-G: idmap imports shutil

        return resolve_uid(value) if which == "--setuid" else resolve_gid(value)

    spec.uid = follow(args.setuid, "--setuid") if args.setuid is not None else None
    spec.gid = follow(args.setgid, "--setgid") if args.setgid is not None else None
    return spec


def run(args: argparse.Namespace) -> int:
    from clonekit.ns._child import ExecError
    from clonekit.ns.setns import run as run_nsenter

    from .unshare import program_of

    spec = spec_from_args(args)
    try:
        return run_nsenter(program_of(args), spec)
    except ExecError as exc:
        print(f"clonekit nsenter: {exc}", file=sys.stderr)
        return exc.exit_status
