"""Signal names and numbers as people write them: "SIGCHLD", "chld", "17", "0", "SIGRTMIN+2"."""

from __future__ import annotations

import signal

from .errors import UsageError

__all__ = ["parse_signal", "signal_name"]


def parse_signal(text: str | int, *, any_number: bool = False) -> int:
    """A signal from what people write: "SIGCHLD", "chld", "17", "0x11", "none", "SIGRTMIN+2",
    "SIGRTMAX-1".  Numbers must be real signals (0..NSIG-1) unless ``any_number`` (for asking
    the kernel what it does with a bad one)."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        word = str(text).strip()
        if word.lower() == "none":
            return 0
        try:
            number = int(word, 0)
        except ValueError:
            return _by_name(word, text)
    if not any_number and not 0 <= number < signal.NSIG:
        raise UsageError(f"signal {number} is out of range: Linux signals are 0 to {signal.NSIG - 1}")
    return number


def _by_name(word: str, shown: object) -> int:
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, sign in (("SIGRTMIN", "+"), ("SIGRTMAX", "-")):
        if name.startswith(base + sign) and name[len(base) + 1:].isdigit():
            offset = int(name[len(base) + 1:])
            value = getattr(signal, base) + (offset if sign == "+" else -offset)
            if signal.SIGRTMIN <= value <= signal.SIGRTMAX:
                return int(value)
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(
            f"unknown signal {shown!r}: use a name such as SIGCHLD, TERM or USR1 (with or without "
            f"SIG, any case; SIGRTMIN+N and SIGRTMAX-N too) or a number from 0 to {signal.NSIG - 1}"
        ) from None


def signal_name(number: int) -> str:
    """"SIGCHLD" for 17; "SIGRTMIN+3"-style or the number for others."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return str(number)
