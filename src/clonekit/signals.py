"""Signal names and numbers as people write them: "SIGCHLD", "chld", "17", "0"."""

from __future__ import annotations

import signal

from .errors import UsageError

__all__ = ["parse_signal", "signal_name"]


def parse_signal(text: str | int) -> int:
    """A signal number from a name (with or without SIG, any case) or a number (0..64)."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        value = str(text).strip()
        try:
            number = int(value, 0)
        except ValueError:
            name = value.upper()
            if not name.startswith("SIG"):
                name = "SIG" + name
            try:
                return int(signal.Signals[name])
            except KeyError:
                raise UsageError(
                    f"unknown signal {text!r}: use a name such as SIGCHLD, TERM, USR1 or a "
                    f"number from 0 to {signal.NSIG - 1}"
                ) from None
    if not 0 <= number < signal.NSIG:
        raise UsageError(f"signal {number} is out of range: Linux signals are 0 to {signal.NSIG - 1}")
    return number


def signal_name(number: int) -> str:
    """"SIGCHLD" for 17; "SIGRTMIN+3"-style or the number for others."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return str(number)
