"""``clonekit exec``: runc's command line for another process in a container.  Parsing and
printing only; clonekit.runtime.exec does the work."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from clonekit.runtime.exec import ExecRequest


def run(args: argparse.Namespace) -> int:
    import os

    from clonekit.runtime.exec import exec_process, exec_target
    from clonekit.runtime.state import StateDir

    from .oci import _check_preserved_fds, _console_sockets

    absent = _check_preserved_fds(args.preserve_fds)  # first: before we open fds of our own
    req = _request(args, absent)
    target = exec_target(StateDir(args.root), args.container_id, req)
    # runc's terminal rules; the pty master goes to --console-socket, or (foreground) to us
    theirs, ours, host = _console_sockets(args, target.process.terminal)
    console = None
    try:
        task = exec_process(target, req, console_fd=theirs, foreground=ours >= 0)
        if ours >= 0:
            from clonekit.runtime.console import Foreground, receive_master

            console = Foreground(receive_master(ours), host)  # it owns both fds now
            host = -1
    finally:
        for fd in (theirs, ours, host):
            if fd >= 0:
                os.close(fd)
    if req.detach:
        task._is_child = False  # it outlives us: its parent becomes whoever reaps our orphans
        task.close()
        return 0
    from .oci import wait_in_foreground

    return wait_in_foreground(task, console)


def _request(args: argparse.Namespace, absent: tuple[int, ...] = ()) -> ExecRequest:
    from clonekit.errors import UsageError
    from clonekit.runtime.exec import ExecRequest

    command = list(args.program or [])
    if args.process is None and not command:
        raise UsageError("exec needs a command to run: clonekit exec ID PROGRAM [ARGS...] "
                         "(or the whole process with --process FILE)")
    uid = gid = None
    if args.user:
        u, _, g = args.user.partition(":")
        try:
            uid = int(u)
            gid = int(g) if g else None
        except ValueError:
            raise UsageError(f"--user {args.user!r}: give numeric ids, UID or UID:GID (names are "
                             "resolved by the caller, e.g. podman, not the runtime)") from None
        if uid < 0 or (gid is not None and gid < 0):
            raise UsageError(f"--user {args.user!r}: ids cannot be negative")
    gids = tuple(args.additional_gids or ())
    if any(g < 0 for g in gids):
        raise UsageError("--additional-gids must be 0 or more")
    caps = tuple(_cap_name(c) for c in args.cap or ())
    return ExecRequest(args=tuple(command), process_file=args.process, cwd=args.cwd,
                       env=tuple(args.env or ()), uid=uid, gid=gid, additional_gids=gids, caps=caps,
                       no_new_privs=args.no_new_privs, apparmor=args.apparmor,
                       process_label=args.process_label, tty=args.tty, detach=args.detach,
                       pid_file=args.pid_file, preserve_fds=args.preserve_fds, absent_fds=absent,
                       ignore_paused=args.ignore_paused)


def _cap_name(name: str) -> str:
    from clonekit.errors import UsageError
    from clonekit.security.caps import CAPABILITIES

    if name in CAPABILITIES:
        return name
    raise UsageError(f"--cap {name!r} is not a capability: write its full name, e.g. CAP_NET_ADMIN")
