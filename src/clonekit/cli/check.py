"""``clonekit check``: would the kernel accept these clone flags?  Prints "accepted" (exit 0) or
"ERRNO: rule" (exit 1); bad input is one line on stderr (exit 2)."""

from __future__ import annotations

import argparse
import signal
import sys

from clonekit.signals import parse_signal

VIAS = ("clone3", "clone", "unshare")


def add_common(parser: argparse.ArgumentParser, *, auto_signal: bool) -> None:
    """The options check and explain share."""
    parser.add_argument("--via", choices=VIAS, default="clone3",
                        help="the system call whose rules apply (default: clone3)")
    default = ("0 for CLONE_THREAD/CLONE_PARENT or a glibc set's own, else SIGCHLD" if auto_signal
               else "SIGCHLD, or a glibc set's own")
    parser.add_argument("--exit-signal", metavar="SIG", default=None,
                        help=f"exit signal by name (SIGCHLD, chld, rtmin+1) or number (default: {default})")
    parser.add_argument("flags", nargs="+", metavar="FLAGS",
                        help="clone flags: 'CLONE_VM|CLONE_FS', 'vm,fs', 'newpid', 0x100, or a glibc "
                             "entry point (fork, vfork, posix_spawn, pthread_create)")


def resolve(args: argparse.Namespace, *, auto_signal: bool) -> tuple[object, int | None]:
    """(flags, exit signal) from the command line; glibc entry points bring their own signal.
    Legacy clone's low byte is its exit signal: such bits stay in the flags, and the signal is
    None (check and explain take it from them) unless --exit-signal is given."""
    from clonekit.flags import CloneFlag, parse_flags, split_legacy_word
    from clonekit.sharing import LIBC_SETS

    text = "|".join(args.flags)
    libc = LIBC_SETS.get(text.strip().lower())
    low = 0
    if libc is not None:
        flags = libc.flags
    elif args.via == "clone":
        flags, low = split_legacy_word(text)
    else:
        flags = parse_flags(text)
    if args.exit_signal is not None:
        return int(flags) | low, parse_signal(args.exit_signal, any_number=True)
    if libc is not None:
        return flags, libc.exit_signal
    if low:
        return int(flags) | low, None
    if auto_signal and flags & (CloneFlag.THREAD | CloneFlag.PARENT):
        return flags, 0
    return flags, int(signal.SIGCHLD)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, auto_signal=False)


def run(args: argparse.Namespace) -> int:
    from clonekit.errors import UsageError
    from clonekit.rules import CloneFlagsError, check

    try:
        flags, sig = resolve(args, auto_signal=False)
        reading = check(flags, via=args.via, exit_signal=sig)  # type: ignore[arg-type]
    except CloneFlagsError as refused:
        print(refused)
        return 1
    except UsageError as bad:
        print(f"clonekit check: {bad}", file=sys.stderr)
        return 2
    print(f"accepted: {reading}" if reading else "accepted")
    return 0
