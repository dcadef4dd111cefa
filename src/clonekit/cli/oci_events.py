"""`clonekit events [--stats] [--interval 5s] ID`: runc's events, one JSON document a line."""

from __future__ import annotations

import sys

from clonekit._jsonc import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration (``5s``, ``1.5s``, ``100ms``, ``1m30s``) in seconds."""
    from clonekit.errors import UsageError

    total, i, sign = 0.0, 0, 1.0
    if text[:1] in "+-":
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
    if text == "0":
        return 0.0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        try:
            total += float(text[i:j]) * _UNITS[text[j:k]]
        except (ValueError, KeyError):
            raise UsageError(f"invalid duration {text!r}: write a number and a unit, like 5s, 500ms or "
                             "1m (units: ns us ms s m h)") from None
        i = k
    if not text:
        raise UsageError("invalid duration '': write a number and a unit, like 5s")
    return sign * total


def run(args: argparse.Namespace) -> int:
    from clonekit.runtime.events import stats, stream
    from clonekit.runtime.state import StateDir

    states = StateDir(args.root)

    def emit(event: dict[str, object]) -> None:
        sys.stdout.write(dumps(event, compact=True) + "\n")
        sys.stdout.flush()

    if args.stats:
        emit(stats(states, args.container_id))
        return 0
    try:
        stream(states, args.container_id, parse_duration(args.interval), emit)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    return 0
