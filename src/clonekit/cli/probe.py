"""clonekit probe [--json] [--exit-signal SIG] FLAGS|PRESET"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clonekit.observe import PRESETS

    parser.add_argument("flags", metavar="FLAGS|PRESET",
                        help=f"clone flags (e.g. 'vm|files|sighand') or a preset: {', '.join(PRESETS)}")
    parser.add_argument("--exit-signal", metavar="SIG",
                        help="exit signal (name or number; default: the preset's, else SIGCHLD, "
                             "or 0 with THREAD/PARENT)")
    parser.add_argument("--json", action="store_true", help="print the observations as JSON")


def run(args: argparse.Namespace) -> int:
    from clonekit.observe import probe
    from clonekit.signals import parse_signal

    sig = None if args.exit_signal is None else parse_signal(args.exit_signal)
    result = probe(args.flags, exit_signal=sig)
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.render())
    if result.mismatches:
        import sys

        print(f"clonekit probe: observation differs from explanation for {', '.join(result.mismatches)}"
              " — a bug in clonekit's explain table; please report it", file=sys.stderr)
        return 1
    return 0
