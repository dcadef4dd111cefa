"""``clonekit sandbox [options] -- CMD...``: run a command in a fresh, locked-down sandbox
(:class:`clonekit.Sandbox`).  The command's exit status is passed through (``128 + N`` when a
signal N ended it, as a shell reports it; 127/126 when it could not be executed)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 256m (cgroup; as root)")
    p.add_argument("--pids", type=int, metavar="N", help="at most N processes and threads")
    p.add_argument("--cpus", type=float, metavar="N", help="CPU time limit in CPUs, e.g. 0.5")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="kill the sandbox after this long")
    p.add_argument("--output-limit", metavar="SIZE",
                   help="with --json: keep at most SIZE bytes per stream (the run is killed past it)")
    p.add_argument("--net", choices=("none", "loopback", "host"), default="none",
                   help="network: none (default), loopback only, or the host's")
    p.add_argument("--bind", action="append", default=[], metavar="SRC[:DST]",
                   help="bind a host path read-write (repeatable)")
    p.add_argument("--ro-bind", action="append", default=[], metavar="SRC[:DST]",
                   help="bind a host path read-only (repeatable)")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:SIZE]",
                   help="a fresh tmpfs at PATH (repeatable)")
    p.add_argument("--chdir", metavar="DIR", help="working directory in the sandbox (default /tmp)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable")
    p.add_argument("--hostname", default="sandbox")
    p.add_argument("--uid", type=int, help="user id in the sandbox (default: nobody as root, "
                   "the caller's own, seen as 0, rootless)")
    p.add_argument("--gid", type=int)
    p.add_argument("--no-seccomp", action="store_true", help="no seccomp filter")
    p.add_argument("--cgroup-top", default="/clonekit-sandbox", metavar="PATH",
                   help="the clonekit-owned group the limits' groups go under")
    root = p.add_mutually_exclusive_group()
    root.add_argument("--image", metavar="IMAGE",
                      help="an OCI image layout or a docker/podman save archive (writable overlay)")
    root.add_argument("--rootfs", metavar="DIR", help="this directory, read-only, as /")
    p.add_argument("--json", action="store_true",
                   help="capture the output and print the Result as JSON instead")
    import argparse

    p.add_argument("program", nargs=argparse.REMAINDER, metavar="-- CMD",
                   help="the command and its arguments (after --, or after the last option)")


def run(args: argparse.Namespace) -> int:
    from clonekit.sandbox import Sandbox, SandboxError

    argv = [a for a in args.program]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    env = {}
    for item in args.env:
        key, eq, value = item.partition("=")
        env[key] = value if eq else os.environ.get(key, "")
    sandbox = Sandbox(
        rootfs=args.rootfs, image=args.image, binds=args.bind, ro_binds=args.ro_bind, tmpfs=args.tmpfs,
        env=env, cwd=args.chdir, hostname=args.hostname, network=args.net, memory=args.memory,
        pids=args.pids, cpus=args.cpus, timeout=args.timeout, output_limit=args.output_limit,
        uid=args.uid, gid=args.gid, seccomp=None if args.no_seccomp else _default(),
        cgroup_top=args.cgroup_top)
    with sandbox:
        try:
            if args.json:
                result = sandbox.run(argv or None, stdin=0)
            else:
                sys.stdout.flush()
                result = sandbox.run(argv or None, stdin=0, stdout=1, stderr=2)
        except SandboxError as exc:
            if not exc.step.startswith("exec "):
                raise
            print(f"clonekit sandbox: {exc}", file=sys.stderr)
            return 127 if exc.errno == 2 else 126
    if args.json:
        from json import dumps

        print(dumps(result.to_dict(), indent=2))
    if result.timed_out and not args.json:
        print(f"clonekit sandbox: killed at the timeout ({args.timeout} s)", file=sys.stderr)
    if result.oom_killed and not args.json:
        print(f"clonekit sandbox: the memory limit ({args.memory}) was reached: OOM-killed", file=sys.stderr)
    return 128 + result.signal if result.signal is not None else result.returncode


def _default() -> object:
    from clonekit.sandbox.sandbox import _DEFAULT

    return _DEFAULT
