"""`clonekit ps [-f table|json] ID [PS-OPTIONS...]`: runc's ps.  The container's processes are
its cgroup's members; the table is ps(1)'s own output (``-ef`` unless options are given) cut
down to those processes, as runc prints it, so any ps column set works."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace) -> int:
    from clonekit._jsonc import dumps
    from clonekit.runtime.container import pids
    from clonekit.runtime.state import StateDir

    found = pids(StateDir(args.root), args.container_id)
    if args.format == "json":
        print(dumps(found, compact=True))
        return 0
    print(filter_table(_ps(args.ps_args or ["-ef"]), set(found)), end="")
    return 0


def _ps(argv: list[str]) -> str:
    import subprocess

    from clonekit.errors import UsageError

    try:
        done = subprocess.run(["ps", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, check=False)
    except FileNotFoundError:
        raise UsageError("ps(1) is not installed (procps): install it for the table, or use "
                         "`-f json` for the pids alone") from None
    if done.returncode != 0:
        raise UsageError(f"ps {' '.join(argv)} failed (exit status {done.returncode}): "
                         f"{done.stdout.strip().splitlines()[-1] if done.stdout.strip() else 'no output'}")
    return done.stdout


def filter_table(text: str, pids: set[int]) -> str:
    """ps output: its header, then the lines whose PID column is one of ``pids``."""
    from clonekit.errors import UsageError

    lines = text.split("\n")
    header = lines[0].split()
    if "PID" not in header:
        raise UsageError("couldn't find PID field in ps output: give ps options that keep the PID "
                         "column (e.g. -ef, or -o pid,comm)")
    column = header.index("PID")
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            out.append(line)
    return "\n".join(out) + "\n"
