"""The ``clonekit`` command: parses, calls the library, prints.  No logic lives here.

Each subcommand is a module of this package with ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so start-up stays small.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("check", "would the kernel accept these clone flags? (errno + rule)"),
    "explain": ("explain", "what a child made with these flags shares, copies or gets new"),
    "probe": ("probe", "make a real child with these flags and report what was observed"),
    "unshare": ("unshare", "run a program in new namespaces (like util-linux unshare)"),
    "nsenter": ("nsenter", "run a program in other namespaces (like util-linux nsenter)"),
    "lsns": ("lsns", "list namespaces (like util-linux lsns)"),
    "tasks": ("tasks", "every task of every process (like ps -eLf)"),
    "tree": ("tree", "the process tree with threads and namespace borders (like pstree -p)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clonekit", description="Linux clone()/clone3(), namespaces and containers for Python."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen subcommand pays for its imports
            importlib.import_module(f".{module}", __name__).add_arguments(sp)
    return parser


def _version() -> str:
    from clonekit import __version__

    return f"clonekit {__version__}"


def _chosen(argv: list[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _chosen(argv)
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    module = importlib.import_module(f".{COMMANDS[args.command][0]}", __name__)
    from clonekit.errors import Error

    try:
        return int(module.run(args) or 0)
    except Error as exc:  # user-facing failures: one clear line, no traceback
        print(f"clonekit {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
