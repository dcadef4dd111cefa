"""The runtime's command line as data.

argparse is built from these tables for help and error messages; on the hot path a small
parser reads them directly, because importing argparse (with re, gettext and locale) costs a
runtime that containerd starts several times per container ~10 ms each time.  Anything the
small parser does not know for certain (--help, a bad choice, "--", bundled short options) it
leaves to argparse, so both always agree.
"""

from __future__ import annotations

from types import SimpleNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


class Opt:
    """One option: ``takes`` is None for a flag, else the value's type (str or int)."""

    __slots__ = ("choices", "default", "dest", "help", "metavar", "names", "takes")

    def __init__(self, names: tuple[str, ...], dest: str, *, takes: type | None = None,
                 default: object = None, choices: tuple[str, ...] | None = None, help: str = "",
                 metavar: str | None = None) -> None:
        self.names, self.dest, self.takes, self.choices = names, dest, takes, choices
        self.default = False if takes is None and default is None else default
        self.help, self.metavar = help, metavar


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
        help="AF_UNIX socket for the pty master (process.terminal true: not supported yet)"),
    Opt(("--preserve-fds",), "preserve_fds", takes=int, default=0, metavar="N",
        help="pass fds 3 .. 3+N-1 to the container"),
    Opt(("--no-pivot",), "no_pivot", help="MS_MOVE + chroot instead of pivot_root"),
    Opt(("--no-new-keyring",), "no_new_keyring", help="keep the caller's session keyring"),
)
_FORMAT = Opt(("--format", "-f"), "format", takes=str, default="table", choices=("table", "json"))

#: verb -> (options, required positionals, optional positionals as (dest, default, help))
VERBS: dict[str, tuple[tuple[Opt, ...], tuple[str, ...], tuple[tuple[str, str, str], ...]]] = {
    "create": (_CREATE, ("container_id",), ()),
    "run": ((Opt(("--detach", "-d"), "detach", help="do not wait for the container"),
             Opt(("--keep",), "keep", help="do not delete the container when it ends"), *_CREATE),
            ("container_id",), ()),
    "start": ((), ("container_id",), ()),
    "state": ((), ("container_id",), ()),
    "kill": ((Opt(("--all", "-a"), "all", help="signal every process of the container"),),
             ("container_id",), (("signal", "SIGTERM", "name or number (default SIGTERM)"),)),
    "delete": ((Opt(("--force", "-f"), "force", help="kill the container if it runs"),),
               ("container_id",), ()),
    "list": ((_FORMAT, Opt(("--quiet", "-q"), "quiet", help="only the ids")), (), ()),
    "ps": ((_FORMAT,), ("container_id",), ()),
    "features": ((), (), ()),
    "spec": ((Opt(("--bundle", "-b"), "bundle", takes=str, default=".", help="where to write config.json"),
              Opt(("--rootless",), "spec_rootless", help="a config for an unprivileged user")), (), ()),
}


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, opts: tuple[Opt, ...]) -> None:
    for o in opts:
        if o.takes is None:
            parser.add_argument(*o.names, dest=o.dest, action="store_true", help=o.help)
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
    i += 1
    while i < len(argv):
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
        if o.takes is int:
            if not text.isdigit():
                return None
            setattr(ns, o.dest, int(text))
        else:
            setattr(ns, o.dest, text)
    return i
