"""``clonekit explain``: what a child made with these flags shares, copies or gets anew."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .check import add_common

    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    add_common(parser, auto_signal=True)


def run(args: argparse.Namespace) -> int:
    from clonekit.errors import UsageError
    from clonekit.sharing import explain

    from .check import resolve

    try:
        flags, sig = resolve(args, auto_signal=True)
        explanation = explain(flags, via=args.via, exit_signal=sig)  # type: ignore[arg-type]
    except UsageError as bad:
        print(f"clonekit explain: {bad}", file=sys.stderr)
        return 2
    if args.json:
        import json

        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print(explanation.render())
    return 0
