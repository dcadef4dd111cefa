"""The command line as data, and a small parser that reads it.

The runtime's verbs: argparse is built from these tables for help and error messages; on the hot
path a small parser reads them directly, because importing argparse (with re, gettext and locale)
costs a runtime that containerd starts several times per container ~10 ms each time.  The
namespace commands (unshare, nsenter, lsns, tasks, tree) keep their argparse definitions for
help and errors and describe their options a second time as a :class:`Command` for
:func:`fast_command` (tests/cli check that both agree).  Anything the small parsers do not know
for certain (--help, a bad choice, an abbreviation, a value that looks like an option) they
leave to argparse, so both always agree.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from types import SimpleNamespace
else:
    SimpleNamespace = type(sys.implementation)  # types.SimpleNamespace without importing types


class Opt:
    """One option: ``takes`` is None for a flag, else the value's type (str, int or float).

    For :class:`Command` only: ``append`` collects every value in a list (argparse's "append");
    ``const`` makes the value optional (argparse's nargs="?": the option alone means ``const``)."""

    __slots__ = ("append", "choices", "const", "default", "dest", "help", "metavar", "names", "takes")

    def __init__(self, names: tuple[str, ...], dest: str, *, takes: type | None = None,
                 default: object = None, choices: tuple[str, ...] | None = None, help: str = "",
                 metavar: str | None = None, append: bool = False, const: object = None) -> None:
        self.names, self.dest, self.takes, self.choices = names, dest, takes, choices
        self.default = False if takes is None and default is None else default
        self.help, self.metavar = help, metavar
        self.append, self.const = append, const


GLOBAL = (
    Opt(("--root",), "root", takes=str, metavar="DIR",
        help="state directory (default /run/clonekit, or $XDG_RUNTIME_DIR/clonekit when rootless)"),
    Opt(("--log",), "log", takes=str, metavar="FILE", help="also write errors to FILE"),
    Opt(("--log-format",), "log_format", takes=str, default="text", choices=("text", "json")),
    Opt(("--debug",), "debug", help="log what is done, step by step"),
    Opt(("--systemd-cgroup",), "systemd_cgroup",
        help="use systemd for cgroups (not supported: clonekit manages cgroupfs itself)"),
    Opt(("--cgroup-manager",), "cgroup_manager", takes=str, default="cgroupfs",
        choices=("cgroupfs", "systemd", "disabled")),
    Opt(("--rootless",), "rootless", takes=str, default="auto", choices=("auto", "true", "false")),
    Opt(("--criu",), "criu", takes=str, metavar="PATH", help="(accepted for runc compatibility)"),
)

_CREATE = (
    Opt(("--bundle", "-b"), "bundle", takes=str, default=".", help="the bundle directory (default: .)"),
    Opt(("--config", "-f"), "config", takes=str, metavar="FILE",
        help="config file (crun; default: BUNDLE/config.json)"),
    Opt(("--pid-file",), "pid_file", takes=str, metavar="FILE", help="write the init's pid to FILE"),
    Opt(("--console-socket",), "console_socket", takes=str, metavar="PATH",
        help="AF_UNIX socket that receives the pty master (process.terminal true, detached)"),
    Opt(("--preserve-fds",), "preserve_fds", takes=int, default=0, metavar="N",
        help="pass fds 3 .. 3+N-1 to the container"),
    Opt(("--no-pivot",), "no_pivot", help="MS_MOVE + chroot instead of pivot_root"),
    Opt(("--no-new-keyring",), "no_new_keyring", help="keep the caller's session keyring"),
)
_FORMAT = Opt(("--format", "-f"), "format", takes=str, default="table", choices=("table", "json"))
_EXEC = (
    Opt(("--console-socket",), "console_socket", takes=str, metavar="PATH",
        help="AF_UNIX socket for the pty master (with --tty)"),
    Opt(("--cwd",), "cwd", takes=str, metavar="DIR", help="working directory in the container"),
    Opt(("--env", "-e"), "env", takes=str, append=True, metavar="NAME=VALUE",
        help="add an environment variable (repeatable)"),
    Opt(("--tty", "-t"), "tty", help="allocate a pseudo-terminal"),
    Opt(("--user", "-u"), "user", takes=str, metavar="UID[:GID]", help="run as this user"),
    Opt(("--additional-gids", "-g"), "additional_gids", takes=int, append=True, metavar="GID",
        help="add a supplementary group (repeatable)"),
    Opt(("--process", "-p"), "process", takes=str, metavar="FILE",
        help="the whole process as a runtime-spec process JSON object"),
    Opt(("--detach", "-d"), "detach", help="do not wait for the process"),
    Opt(("--pid-file",), "pid_file", takes=str, metavar="FILE", help="write the process's pid to FILE"),
    Opt(("--process-label",), "process_label", takes=str, metavar="LABEL", help="its SELinux label"),
    Opt(("--apparmor",), "apparmor", takes=str, metavar="PROFILE", help="its AppArmor profile"),
    Opt(("--no-new-privs",), "no_new_privs", help="set no_new_privs for the process"),
    Opt(("--cap", "-c"), "cap", takes=str, append=True, metavar="CAP",
        help="add a capability to every set (repeatable)"),
    Opt(("--preserve-fds",), "preserve_fds", takes=int, default=0, metavar="N",
        help="pass fds 3 .. 3+N-1 to the process"),
    Opt(("--ignore-paused",), "ignore_paused", help="exec even into a paused container"),
)

_UPDATE = (
    Opt(("--resources", "-r"), "resources", takes=str, metavar="FILE",
        help="a linux.resources JSON object from FILE, or - for stdin (every other option is ignored)"),
    Opt(("--blkio-weight",), "blkio_weight", takes=str, metavar="N", help="blkio weight, 10 to 1000"),
    Opt(("--cpu-period",), "cpu_period", takes=str, metavar="USEC", help="CFS period"),
    Opt(("--cpu-quota",), "cpu_quota", takes=str, metavar="USEC", help="CFS quota per period (-1: none)"),
    Opt(("--cpu-share", "--cpu-shares"), "cpu_share", takes=str, metavar="N", help="CPU shares"),
    Opt(("--cpu-rt-period",), "cpu_rt_period", takes=str, metavar="USEC", help="realtime period"),
    Opt(("--cpu-rt-runtime",), "cpu_rt_runtime", takes=str, metavar="USEC", help="realtime runtime"),
    Opt(("--cpuset-cpus",), "cpuset_cpus", takes=str, metavar="LIST", help="CPUs to use (0-3,8)"),
    Opt(("--cpuset-mems",), "cpuset_mems", takes=str, metavar="LIST", help="memory nodes to use"),
    Opt(("--memory",), "memory", takes=str, metavar="SIZE", help="memory limit (64m, 1g; -1: none)"),
    Opt(("--memory-reservation",), "memory_reservation", takes=str, metavar="SIZE", help="soft limit"),
    Opt(("--memory-swap",), "memory_swap", takes=str, metavar="SIZE",
        help="memory + swap limit (-1: unlimited swap)"),
    Opt(("--kernel-memory",), "kernel_memory", takes=str, metavar="SIZE", help="(ignored, as by runc)"),
    Opt(("--kernel-memory-tcp",), "kernel_memory_tcp", takes=str, metavar="SIZE",
        help="(ignored, as by runc)"),
    Opt(("--pids-limit",), "pids_limit", takes=str, metavar="N", help="maximum number of processes"),
    Opt(("--l3-cache-schema",), "l3_cache_schema", takes=str, help="(refused: no Intel RDT)"),
    Opt(("--mem-bw-schema",), "mem_bw_schema", takes=str, help="(refused: no Intel RDT)"),
)

#: verb -> (options, required positionals, optional positionals as (dest, default, help))
VERBS: dict[str, tuple[tuple[Opt, ...], tuple[str, ...], tuple[tuple[str, str, str], ...]]] = {
    "create": (_CREATE, ("container_id",), ()),
    "run": ((Opt(("--detach", "-d"), "detach", help="do not wait for the container"),
             Opt(("--keep",), "keep", help="do not delete the container when it ends"), *_CREATE),
            ("container_id",), ()),
    "start": ((), ("container_id",), ()),
    "state": ((), ("container_id",), ()),
    "pause": ((), ("container_id",), ()),
    "resume": ((), ("container_id",), ()),
    "kill": ((Opt(("--all", "-a"), "all", help="signal every process of the container"),),
             ("container_id",), (("signal", "SIGTERM", "name or number (default SIGTERM)"),)),
    "delete": ((Opt(("--force", "-f"), "force", help="kill the container if it runs"),),
               ("container_id",), ()),
    "list": ((_FORMAT, Opt(("--quiet", "-q"), "quiet", help="only the ids")), (), ()),
    "ps": ((_FORMAT,), ("container_id",), ()),
    "features": ((), (), ()),
    "exec": (_EXEC, ("container_id",), ()),
    "events": ((Opt(("--interval",), "interval", takes=str, default="5s", metavar="DURATION",
                    help="how often to print stats (Go duration: 5s, 500ms; default 5s)"),
                Opt(("--stats",), "stats", help="print the stats once and exit")), ("container_id",), ()),
    "update": (_UPDATE, ("container_id",), ()),
    "spec": ((Opt(("--bundle", "-b"), "bundle", takes=str, default=".", help="where to write config.json"),
              Opt(("--rootless",), "spec_rootless", help="a config for an unprivileged user")), (), ()),
}

#: verbs whose words after the required positionals all go to one list (the program and its
#: arguments, options included): verb -> (dest, help)
REMAINDER: dict[str, tuple[str, str]] = {"exec": ("program", "the program to run and its arguments"),
                                         "ps": ("ps_args", "options for ps(1) (default -ef)")}


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, opts: tuple[Opt, ...]) -> None:
    for o in opts:
        if o.takes is None:
            parser.add_argument(*o.names, dest=o.dest, action="store_true", help=o.help)
        elif o.append:
            parser.add_argument(*o.names, dest=o.dest, type=o.takes, action="append",
                                metavar=o.metavar, help=o.help or None)
        else:
            parser.add_argument(*o.names, dest=o.dest, type=o.takes, default=o.default,
                                choices=o.choices, metavar=o.metavar, help=o.help or None)


def add_verb(parser: argparse.ArgumentParser, verb: str) -> None:
    opts, required, optional = VERBS[verb]
    add_options(parser, opts)
    for dest in required:
        parser.add_argument(dest, metavar=dest.upper())
    for dest, default, help_text in optional:
        parser.add_argument(dest, nargs="?", default=default, help=help_text)
    if verb in REMAINDER:
        import argparse

        dest, help_text = REMAINDER[verb]
        parser.add_argument(dest, nargs=argparse.REMAINDER, metavar=dest.upper(), help=help_text)


def fast_parse(argv: list[str]) -> SimpleNamespace | None:
    """argv parsed without argparse, or None when argparse should decide (help, errors)."""
    ns = SimpleNamespace(**{o.dest: o.default for o in GLOBAL})
    i = _options(argv, 0, GLOBAL, ns)
    if i is None or i >= len(argv) or argv[i] not in VERBS:
        return None
    ns.command = argv[i]
    opts, required, optional = VERBS[ns.command]
    for o in opts:
        setattr(ns, o.dest, o.default)
    words: list[str] = []
    remainder = REMAINDER.get(ns.command)
    i += 1
    while i < len(argv):
        if remainder is not None and len(words) == len(required):
            if argv[i] == "--":
                return None  # argparse decides what "--" means there
            setattr(ns, remainder[0], argv[i:])  # the program's own words, options included
            i = len(argv)
            break
        if argv[i].startswith("-") and argv[i] != "-":
            j = _options(argv, i, opts, ns)
            if j is None:
                return None
            i = j
        else:
            words.append(argv[i])
            i += 1
    if not len(required) <= len(words) <= len(required) + len(optional):
        return None
    if remainder is not None and not hasattr(ns, remainder[0]):
        setattr(ns, remainder[0], [])
    for dest, value in zip(required, words, strict=False):
        setattr(ns, dest, value)
    rest = words[len(required):]
    for k, (dest, default, _help) in enumerate(optional):
        setattr(ns, dest, rest[k] if k < len(rest) else default)
    return ns


def _options(argv: list[str], i: int, opts: tuple[Opt, ...], ns: SimpleNamespace) -> int | None:
    """Read options from argv[i:] into ns up to the first word; None if anything is unusual."""
    by_name = {name: o for o in opts for name in o.names}
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, inline = argv[i].partition("=")
        o = by_name.get(name)
        if o is None:
            return None  # unknown, --help, "--", bundled short flags: argparse decides
        if o.takes is None:
            if eq:
                return None
            setattr(ns, o.dest, True)
            i += 1
            continue
        if eq:
            text, i = inline, i + 1
        elif i + 1 < len(argv):
            text, i = argv[i + 1], i + 2
        else:
            return None
        if o.choices is not None and text not in o.choices:
            return None
        value: object = text
        if o.takes is int:
            if not text.isdigit():
                return None
            value = int(text)
        _store(ns, o, value)
    return i


# ------------------------------------------------------------------ util-linux style commands
class Command:
    """A util-linux style command line for :func:`fast_command`.

    ``opts``: its options.  ``optional``: long flags that also take an optional "=VALUE"
    (``--mount=FILE``), mapped to the dest of the value (None when absent).  ``short_files``:
    short flags whose attached "/path", "./path" or "=path" (nsenter's ``-m/proc/1/ns/mnt``)
    goes to the named dest.  Then either ``remainder``, the dest of everything from the first
    word on ("--" included, like argparse.REMAINDER: the program and its arguments), or at most
    one ``positional`` as (dest, type, default).  ``exclusive``: pairs of flag dests that cannot
    both be set (argparse's mutually exclusive groups)."""

    __slots__ = ("by_name", "exclusive", "name", "optional", "opts", "positional", "remainder",
                 "short_files")

    def __init__(self, name: str, opts: tuple[Opt, ...], *, optional: dict[str, str] | None = None,
                 short_files: dict[str, str] | None = None, remainder: str | None = None,
                 positional: tuple[str, type, object] | None = None,
                 exclusive: tuple[tuple[str, str], ...] = ()) -> None:
        self.name, self.opts, self.remainder, self.positional = name, opts, remainder, positional
        self.optional = optional or {}
        self.short_files = short_files or {}
        self.exclusive = exclusive
        self.by_name = {n: o for o in opts for n in o.names}


class _Unusual(Exception):
    """Something for argparse to decide (and explain)."""


def _convert(o: Opt, text: str) -> object:
    try:
        value = o.takes(text) if o.takes is not None else text
    except (TypeError, ValueError):
        raise _Unusual from None
    if o.choices is not None and value not in o.choices:
        raise _Unusual
    return value


def _store(ns: SimpleNamespace, o: Opt, value: object) -> None:
    if o.append:
        value = [*(getattr(ns, o.dest) or ()), value]
    setattr(ns, o.dest, value)


def fast_command(argv: list[str], cmd: Command) -> SimpleNamespace | None:
    """``clonekit [global options] CMD ...`` parsed without argparse into the namespace argparse
    would make, or None when argparse should decide (help, errors, unusual spellings)."""
    ns = SimpleNamespace(**{o.dest: o.default for o in GLOBAL})
    i = _options(argv, 0, GLOBAL, ns)
    if i is None or i >= len(argv) or argv[i] != cmd.name:
        return None
    ns.command = cmd.name
    # the command's defaults replace the global ones of the same name, as argparse's subparser
    for o in cmd.opts:
        setattr(ns, o.dest, o.default)
    for dest in (*cmd.optional.values(), *cmd.short_files.values()):
        setattr(ns, dest, None)
    try:
        words = _command_words(argv, i + 1, cmd, ns)
    except _Unusual:
        return None
    for a, b in cmd.exclusive:
        if getattr(ns, a) and getattr(ns, b):
            return None
    if cmd.remainder is not None:
        setattr(ns, cmd.remainder, words)
    elif cmd.positional is not None:
        dest, kind, default = cmd.positional
        if len(words) > 1:
            return None
        try:
            setattr(ns, dest, kind(words[0]) if words else default)
        except (TypeError, ValueError):
            return None
    elif words:
        return None
    return ns


def _command_words(argv: list[str], i: int, cmd: Command, ns: SimpleNamespace) -> list[str]:
    """Read argv[i:] into ns; return the words (for a remainder: everything from the first)."""
    n = len(argv)
    words: list[str] = []
    by_name = cmd.by_name
    while i < n:
        tok = argv[i]
        if tok[:1] != "-" or tok == "-" or tok == "--":
            if cmd.remainder is not None:
                if _ambiguous(argv, i, cmd):
                    raise _Unusual
                return argv[i:]
            if tok == "--":
                raise _Unusual
            words.append(tok)
            i += 1
            continue
        if tok[1] == "-":  # --long, --long=VALUE
            name, eq, inline = tok.partition("=")
            o = by_name.get(name)
            if o is None:
                raise _Unusual  # unknown, an abbreviation, --help
            if o.takes is None:
                if eq:
                    dest = cmd.optional.get(name)
                    if dest is None:
                        raise _Unusual
                    setattr(ns, dest, inline)
                setattr(ns, o.dest, True)
                i += 1
            else:
                i = _value(argv, i + 1, o, inline if eq else None, ns)
            continue
        if len(tok) > 2 and tok[:2] in cmd.short_files and tok[2] in "/.=":
            setattr(ns, by_name[tok[:2]].dest, True)
            setattr(ns, cmd.short_files[tok[:2]], tok[2:].removeprefix("="))
            i += 1
            continue
        for j in range(1, len(tok)):  # -x, -xyz (flags bundled), -xVALUE
            o = by_name.get("-" + tok[j])
            if o is None:
                raise _Unusual
            if o.takes is None:
                setattr(ns, o.dest, True)
                continue
            attached: str | None = tok[j + 1:] or None
            if j > 1 and attached is None and (cmd.optional or cmd.short_files):
                raise _Unusual  # -fR DIR: unshare/nsenter's argparse rewriting takes DIR for the program
            if j > 1 and attached is not None and attached[0] == "=":
                raise _Unusual  # argparse reads -fS=5 as -f -S "=5" (but -S=5 as -S 5)
            if attached is not None and attached[0] == "=":
                attached = attached[1:]
            i = _value(argv, i + 1, o, attached, ns)
            break
        else:
            i += 1
    return words


def _value(argv: list[str], i: int, o: Opt, attached: str | None, ns: SimpleNamespace) -> int:
    """Store the value of ``o`` (attached, or the word at argv[i]); the index after it."""
    if attached is not None:
        _store(ns, o, _convert(o, attached))
        return i
    nxt = argv[i] if i < len(argv) else None
    if nxt is not None and nxt[:1] != "-":
        _store(ns, o, _convert(o, nxt))
        return i + 1
    if o.const is None or nxt in ("-", "--"):
        raise _Unusual  # no value (argparse explains), or a "-5" argparse may take as one
    _store(ns, o, _convert(o, str(o.const)) if isinstance(o.const, str) else o.const)
    return i


def _ambiguous(argv: list[str], i: int, cmd: Command) -> bool:
    """Does a word of the program's arguments (before any "--") abbreviate two options of
    clonekit or of the command?  argparse reads every word, the program's too, and refuses
    those ("ambiguous option: --ro could match --root, --rootless"): it must say so, as before."""
    for word in argv[i:]:
        if word == "--":
            return False
        if word[:2] != "--":
            continue
        prefix = word.partition("=")[0]
        for names in (_TOP_NAMES, (*cmd.by_name, "--help", "--_value")):
            if prefix not in names and sum(1 for name in names if name.startswith(prefix)) > 1:
                return True
    return False


_TOP_NAMES = (*(n for o in GLOBAL for n in o.names), "--help", "--version")
