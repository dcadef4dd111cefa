"""The OCI runtime verbs with runc's command line: create start state kill delete pause resume
run list ps features spec.  Parsing and printing only; clonekit.runtime does the work."""

from __future__ import annotations

import os
import sys

from clonekit._jsonc import dumps

from . import say
from .table import add_verb

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from clonekit.runtime.console import Foreground
    from clonekit.task import Task

# -- helpers -------------------------------------------------------------------------------------


def _states(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from clonekit.runtime.state import StateDir

    return StateDir(args.root)


def _rootless(args: argparse.Namespace) -> bool:
    """runc's "rootless cgroup manager" (--rootless auto): not root, or uid 0 of a user namespace
    other than the initial one (rootless podman), where only a delegated cgroup2 group can be
    used and device nodes are bind-mounted, never made."""
    if args.rootless == "auto":
        if os.geteuid() != 0:
            return True
        from clonekit.ns.userns import in_user_namespace

        return in_user_namespace()
    return args.rootless == "true"


def _check_cgroup_manager(args: argparse.Namespace) -> bool:
    """True when cgroups are managed (cgroupfs); systemd is refused with the reason."""
    if args.systemd_cgroup or args.cgroup_manager == "systemd":
        from clonekit.errors import UsageError

        raise UsageError("the systemd cgroup manager is not supported: clonekit places containers "
                         "with cgroupfs itself; drop --systemd-cgroup (or use --cgroup-manager "
                         "cgroupfs, or disabled)")
    return args.cgroup_manager != "disabled"


def _check_preserved_fds(count: int, listen: int = 0) -> tuple[int, ...]:
    """--preserve-fds N hands fds 3 .. 3+N-1 to the container (after ``listen`` fds of socket
    activation): those the caller has open.  Read now, before this process opens any of its
    own (which would take the free numbers there); returns the numbers to skip."""
    from clonekit.errors import UsageError
    from clonekit.runtime.program import absent_fds

    if count < 0:
        raise UsageError("--preserve-fds must be 0 or more")
    return absent_fds(3, listen + count)


def _do_create(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from clonekit.runtime.container import CreateOptions, create
    from clonekit.runtime.program import listen_fds
    from clonekit.runtime.spec import load_plan

    managed = _check_cgroup_manager(args)
    listen = listen_fds(os.environ, os.getpid())  # systemd socket activation, passed on as runc does
    absent = _check_preserved_fds(args.preserve_fds, listen)
    rootless = _rootless(args)
    # a config without a user namespace is refused only when we are not uid 0 at all (runc's
    # RootlessEUID): uid 0 of podman's user namespace makes the others itself
    plan = load_plan(args.bundle, args.config, rootless=os.geteuid() != 0)
    caps = plan.process.confinement.capabilities if plan.process is not None else None
    if caps is not None and caps.unknown:  # newer than this kernel: runc leaves them out too
        say(args, "warning", f"ignoring capabilities this kernel does not have: {', '.join(caps.unknown)}")
    if caps is not None and caps.not_raisable:  # runc warns and goes on too (`runc spec` writes them)
        say(args, "warning", "ambient capabilities not raised (an ambient capability must also be "
            f"permitted and inheritable): {', '.join(caps.not_raisable)}")
    say(args, "debug", f"config: root {plan.root}, namespaces "
        f"{', '.join(ns.kind + ('=' + ns.path if ns.path else '') for ns in plan.namespaces)}, "
        f"{len(plan.mounts)} mounts, cgroup {plan.cgroups_path or '(default)'}, rootless {rootless}")
    terminal = plan.process is not None and plan.process.terminal
    theirs, ours, host = _console_sockets(args, terminal)
    opts = CreateOptions(pid_file=args.pid_file, preserve_fds=args.preserve_fds, listen_fds=listen,
                         absent_fds=absent, no_pivot=args.no_pivot,
                         no_new_keyring=args.no_new_keyring, rootless=rootless, cgroups=managed,
                         console_fd=theirs)
    try:
        task = create(_states(args), args.container_id, args.bundle, plan, opts)
        if ours >= 0:  # a foreground run: the terminal is ours to connect (run_run)
            owned, host = host, -1  # _take_console's from here
            _take_console(args, task, ours, owned, pid_namespace=plan.namespace("pid") is not None)
    finally:
        for fd in (theirs, ours, host):
            if fd >= 0:
                os.close(fd)
    say(args, "debug", f"created container {args.container_id}: init pid {task.pid}")
    return task


def _take_console(args: argparse.Namespace, task, ours: int, host: int, *,  # type: ignore[no-untyped-def]
                  pid_namespace: bool) -> None:
    """The master the init sent, joined to the caller's terminal (args.console), before start.
    ``host`` is ours to close; on failure the container is deleted."""
    from clonekit.runtime.console import Foreground, receive_master
    from clonekit.runtime.container import delete

    try:
        try:
            master = receive_master(ours)
        except BaseException:
            os.close(host)
            raise
        args.console = Foreground(master, host, pid_namespace=pid_namespace)  # closes both if it fails
    except BaseException:
        delete(_states(args), args.container_id, force=True)
        task.wait()
        task.close()
        raise


def _console_sockets(args: argparse.Namespace, terminal: bool) -> tuple[int, int, int]:
    """runc's terminal rules, then the console socket: (the init's end, ours, the caller's
    terminal); -1 where there is none.  ``create`` and ``run -d`` send the master to
    --console-socket; a foreground ``run`` keeps it to connect the caller's terminal."""
    from clonekit.errors import UsageError

    detach = args.command == "create" or getattr(args, "detach", False)
    if detach and terminal and not args.console_socket:
        raise UsageError("cannot allocate tty if clonekit will detach without setting console socket: "
                         "process.terminal is true; pass --console-socket PATH (or use `run` in the "
                         "foreground, or set process.terminal to false)")
    if (not detach or not terminal) and args.console_socket:
        raise UsageError("cannot use console socket if clonekit will not detach or allocate tty: "
                         + ("process.terminal is false; set it to true or drop --console-socket"
                            if not terminal else "drop --console-socket, or add --detach"))
    if not terminal:
        return -1, -1, -1
    from clonekit.runtime import console

    if detach:
        return console.connect(args.console_socket), -1, -1
    host = console.host_terminal()  # before anything is made, as runc: no terminal, no container
    try:
        ours, theirs = console.socketpair()
    except BaseException:
        os.close(host)
        raise
    return theirs, ours, host


# -- verbs ---------------------------------------------------------------------------------------


def run_create(args: argparse.Namespace) -> int:
    task = _do_create(args)
    task._is_child = False  # the init outlives us: its parent is whoever reaps our orphans
    task.close()
    return 0


def run_run(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import delete, start

    task = _do_create(args)
    states = _states(args)
    try:
        start(states, args.container_id)
    except BaseException:
        delete(states, args.container_id, force=True)
        task.wait()
        task.close()
        if getattr(args, "console", None) is not None:
            args.console.close()
        raise
    if args.detach:
        task._is_child = False
        task.close()
        return 0
    code = wait_in_foreground(task, getattr(args, "console", None))
    if not args.keep:
        from clonekit.errors import Error

        try:
            delete(states, args.container_id, force=True)
        except Error as exc:  # the container's own status matters more than our cleanup's
            say(args, "warning", f"run: {exc}")
    return code


def wait_in_foreground(task: Task, console: Foreground | None) -> int:
    """Wait for the container's process (`run`, `exec` without -d): the usual termination
    signals are forwarded to it as runc forwards them, the caller's terminal is connected to its
    pty when it has one (and restored at the end); its exit status, 128+N for signal N."""
    import _signal  # `signal` would import enum

    def forward(sig: int, _frame: object) -> None:
        task.send_signal(sig)

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT):
        _signal.signal(sig, forward)
    with task:
        if console is None:
            code = task.wait()
        else:
            try:
                code = console.run(task)
            finally:
                console.close()
    return code if code >= 0 else 128 - code


def run_start(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import start

    start(_states(args), args.container_id)
    say(args, "debug", f"started container {args.container_id}")
    return 0


def run_state(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import state

    print(dumps(state(_states(args), args.container_id), indent=2))
    return 0


def run_kill(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import kill
    from clonekit.signals import parse_signal

    kill(_states(args), args.container_id, parse_signal(args.signal), all_processes=args.all)
    return 0


def run_pause(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import pause

    pause(_states(args), args.container_id)
    say(args, "debug", f"paused container {args.container_id}")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import resume

    resume(_states(args), args.container_id)
    say(args, "debug", f"resumed container {args.container_id}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import delete

    delete(_states(args), args.container_id, force=args.force)
    say(args, "debug", f"deleted container {args.container_id}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from clonekit.runtime.container import list_states

    docs = list_states(_states(args))
    if args.quiet:
        for d in docs:
            print(d["id"])
    elif args.format == "json":  # runc names the owner here (its `state` leaves it empty)
        print(dumps([d | {"owner": _owner(d)} for d in docs]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(str(d["id"]), str(d["pid"]), str(d["status"]), str(d["bundle"]), str(d["created"]),
                  _owner(d)) for d in docs]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _owner(doc: dict[str, object]) -> str:
    owner = str(doc.get("owner") or "0")
    try:
        import pwd

        return pwd.getpwuid(int(owner)).pw_name
    except (KeyError, ValueError):
        return owner


def run_ps(args: argparse.Namespace) -> int:
    from .oci_ps import run

    return run(args)


def run_features(args: argparse.Namespace) -> int:
    from clonekit.runtime.features import features_document

    print(dumps(features_document(), indent=2))
    return 0


def run_spec(args: argparse.Namespace) -> int:
    from clonekit.runtime.defaults import write_spec

    write_spec(args.bundle, rootless=args.spec_rootless)
    return 0


def run_exec(args: argparse.Namespace) -> int:
    from .oci_exec import run

    return run(args)


def run_events(args: argparse.Namespace) -> int:
    from .oci_events import run

    return run(args)


def run_update(args: argparse.Namespace) -> int:
    from .oci_update import run

    return run(args)


VERBS = {
    verb: ((lambda parser, verb=verb: add_verb(parser, verb)), run)
    for verb, run in (
        ("create", run_create), ("start", run_start), ("state", run_state), ("kill", run_kill),
        ("delete", run_delete), ("run", run_run), ("list", run_list), ("ps", run_ps),
        ("pause", run_pause), ("resume", run_resume),
        ("features", run_features), ("spec", run_spec), ("exec", run_exec), ("events", run_events),
        ("update", run_update),
    )
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: clonekit VERB ...")
