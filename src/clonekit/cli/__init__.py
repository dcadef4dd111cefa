"""The ``clonekit`` command: parses, calls the library, prints.  No logic lives here.

Each subcommand is a module of this package with ``add_arguments(parser)`` and
``run(args) -> int`` (or, for a module serving several verbs such as ``oci``, ``VERBS`` mapping
each verb to its pair); it is imported only when chosen, so start-up stays small.  argparse is
built only for help and errors: the runtime verbs (``VERBS``) and the commands with a ``FAST``
table are read by the small parsers of :mod:`.table` first.  The global
options are runc's (and crun's ``--cgroup-manager``), so clonekit is a drop-in for either.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

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
    # the OCI runtime, runc's command line
    "create": ("oci", "create a container from a bundle (it waits for `start`)"),
    "start": ("oci", "run the user's program in a created container"),
    "state": ("oci", "print a container's state (runtime-spec JSON)"),
    "kill": ("oci", "send a signal to a container's init (or --all its processes)"),
    "delete": ("oci", "remove a stopped container (--force: also a running one)"),
    "pause": ("oci", "freeze every process of a container"),
    "resume": ("oci", "thaw a paused container"),
    "run": ("oci", "create and start a container, wait for it, delete it"),
    "list": ("oci", "list containers"),
    "ps": ("oci", "list a container's processes"),
    "features": ("oci", "print the OCI features document"),
    "spec": ("oci", "write a default config.json"),
    "exec": ("oci", "run another process in a running container"),
    "events": ("oci", "a container's cgroup stats (--stats once, else every --interval) and OOMs"),
    "update": ("oci", "change a running container's cgroup limits (runc's flags, or -r JSON)"),
    "sandbox": ("sandbox", "run a command in a fresh, locked-down sandbox (memory/pids/cpu/time limits)"),
    # images
    "bundle": ("bundle", "write a bundle (config.json + rootfs) from an OCI image or a docker/oci archive"),
}

# global options that take a value: skipped when looking for the subcommand (see table.GLOBAL)
_GLOBAL_VALUES = {"--root", "--log", "--log-format", "--rootless", "--cgroup-manager", "--criu"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    import argparse  # only when parsing needs it: help, errors, the non-runtime commands

    class _Formatter(argparse.HelpFormatter):
        """A fixed width: the default asks shutil for the terminal size (~3 ms of imports)."""

        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=int(os.environ.get("COLUMNS", "100")))

    parser = argparse.ArgumentParser(
        prog="clonekit", description="Linux clone()/clone3(), namespaces and containers for Python.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", "-v", action="version", version=_version())
    from .table import GLOBAL, add_options

    add_options(parser.add_argument_group("runtime options (runc's and crun's)"), GLOBAL)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # with a command chosen, only its parser is built (each costs argparse and gettext work);
    # without one, all of them, for --help
    for name in [command] if command else COMMANDS:
        help_text = COMMANDS[name][1]
        sp = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        if name == command:
            mod = _module(name)
            add = mod.VERBS[name][0] if hasattr(mod, "VERBS") else mod.add_arguments
            add(sp)
    return parser


def _version() -> str:
    from clonekit import __version__

    return f"clonekit {__version__}"


def _chosen(argv: list[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUES:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _module(command: str) -> Any:
    # __import__ rather than importlib.import_module: importlib (and the warnings it imports)
    # would be the only reason to load it
    name = f"{__name__}.{COMMANDS[command][0]}"
    __import__(name)
    return sys.modules[name]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0] in ("--version", "-v"):
        print(_version())  # what argparse's version action prints, without argparse
        return 0
    command = _chosen(argv)
    parsed = None
    module = None
    if command is not None:
        module = _module(command)
        # the small parsers; None: unusual input, argparse decides and explains
        if hasattr(module, "VERBS"):
            from .table import fast_parse

            parsed = fast_parse(argv)
        elif hasattr(module, "FAST"):
            from .table import fast_command

            parsed = fast_command(argv, module.FAST)
    args = parsed if parsed is not None else build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    if module is None or args.command != command:
        module = _module(args.command)
    run = module.VERBS[args.command][1] if hasattr(module, "VERBS") else module.run
    from clonekit.errors import Error

    if getattr(args, "log", None):  # the library's notices follow --log too (see say)
        from clonekit.runtime.notices import set_sink

        set_sink(lambda message, level="notice": say(args, level, message))
    try:
        return int(run(args) or 0)
    except Error as exc:  # user-facing failures: one clear line, no traceback
        # on stderr and in --log, as runc: podman shows stderr, containerd's shim reads the log
        message = f"clonekit {args.command}: {exc}"
        print(message, file=sys.stderr)
        _log(args, "error", message)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def program() -> None:
    """The `clonekit` command: main(), then exit without the interpreter's teardown (nothing
    is left to clean up, and a runtime launched per container should not pay for it)."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def say(args: object, level: str, message: str) -> None:
    """A notice or warning (always) or a debug line (with --debug): in --log when it is given,
    else on stderr.  Never both: under conmon and containerd's shim the runtime's stderr is the
    container's own, and a runtime's line there would read as the container's output."""
    if level == "debug" and not getattr(args, "debug", False):
        return
    if getattr(args, "log", None):
        _log(args, _LOGRUS_LEVEL.get(level, level), message)
    else:
        print(f"clonekit: {level}: {message}", file=sys.stderr)


# the log's readers parse logrus levels (panic fatal error warning info debug trace): a notice is
# logrus' "info"
_LOGRUS_LEVEL = {"notice": "info"}


def _log(args: object, level: str, message: str) -> None:
    """--log FILE: containerd and podman read the runtime's errors from there.  runc's two
    formats (logrus): text ``time="..." level=... msg="..."``, or with --log-format json one
    object a line with level, msg and time -- an RFC 3339 time that Go's parser accepts (the
    shim decodes every line, and one bad time makes every error of the runtime unreadable)."""
    path = getattr(args, "log", None)
    if not path:
        return
    stamp = _rfc3339_now()
    if getattr(args, "log_format", "text") == "json":
        from clonekit._jsonc import dumps  # json.dumps' text, without importing json

        line = dumps({"level": level, "msg": message, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg={_quoted(message)}'
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one write: lines of concurrent runtimes never mix
        finally:
            os.close(fd)
    except OSError as exc:
        print(f"clonekit: cannot write the log {path}: {exc.strerror}", file=sys.stderr)


def _rfc3339_now() -> str:
    """UTC with nanoseconds and "Z", e.g. 2026-12-03T09:21:38.123456789Z (RFC 3339; Go's
    time.RFC3339Nano; never strftime's "+0000", which Go refuses)."""
    import time

    ns = time.time_ns()
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ns // 1_000_000_000))}.{ns % 1_000_000_000:09d}Z"


def _quoted(text: str) -> str:
    """A logrus text value in double quotes, escaped as Go's %q does for the usual characters."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'
