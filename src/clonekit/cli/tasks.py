"""``clonekit tasks``: every task of every process, the ``ps -eLf`` view (or JSON).

Columns and widths are ps's.  One deliberate difference: TIME (and C) of a thread-group
leader's row is that thread's own CPU time; ps shows the whole process's there.
"""

from __future__ import annotations

import sys

from .table import Command, Opt

TYPE_CHECKING = False  # not `from typing import ...`: typing costs more than a scan

if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import Any

    from clonekit.proc.tasks import TaskInfo

HEADER = ("UID", "PID", "PPID", "LWP", "C", "NLWP", "STIME", "TTY", "TIME", "CMD")
# like ps: control characters in a command line print as "?", a newline as a space
# (and so do bytes that are not UTF-8, which reach us as surrogate escapes)
_CONTROL = {i: "?" for i in (*range(32), *range(127, 160), *range(0xDC80, 0xDD00))} | {10: " "}

#: the options of add_arguments() for the small parser (tests/cli checks that they agree)
FAST = Command("tasks", (Opt(("-p", "--pid"), "pid", takes=str, append=True), Opt(("--json",), "json"),
                         Opt(("--no-headers",), "no_headers")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--pid",
        metavar="PID[,PID...]",
        action="append",
        help="only the threads of these processes (may repeat, comma separated like ps -p)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"tasks": [{"uid", "pid", "ppid", "lwp", "nlwp", "stime", "time", "cmd", '
        '"nspid", ...}]}: stime in epoch seconds, time in CPU seconds',
    )
    parser.add_argument("--no-headers", action="store_true", help="leave out the header line")


def _pids(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    from clonekit.errors import UsageError

    out: list[int] = []
    for value in values:
        for part in value.replace(",", " ").split():
            if not part.isdigit() or int(part) <= 0:
                raise UsageError(f"-p: {part!r} is not a process id (a positive integer, e.g. -p 1234)")
            out.append(int(part))
    if not out:
        raise UsageError("-p: no process id given (e.g. -p 1234 or -p 1,2)")
    return out


def run(args: argparse.Namespace) -> int:
    from clonekit.proc import tasks as proc

    pids = _pids(args.pid)
    if pids is None:
        tasks = list(proc.iter_tasks(nspid=args.json))  # the table has no NSpid column
    else:
        tasks = []
        for pid in pids:
            # Process(pid) raises NoSuchProcess (a clear one-line error) for a missing pid
            tasks.extend(proc.Process(pid).threads())
    if args.json:
        _print_json(tasks)
    else:
        _print_table(tasks, headers=not args.no_headers)
    return 0


# -- formatting (what ps does) ----------------------------------------------------------------
def _tty(tty_nr: int) -> str:
    if tty_nr == 0:
        return "?"
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    if major == 5 and minor == 1:
        return "console"
    return "?"


def _cputime(ticks: int, hz: int) -> str:
    secs = ticks // hz
    days, secs = divmod(secs, 86400)
    text = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return f"{days}-{text}" if days else text


def _user(uid: int) -> str:
    from clonekit.proc.stat import user_name

    name = user_name(uid) if uid >= 0 else "?"
    return name if len(name) <= 8 else name[:7] + "+"


def _print_table(tasks: list[TaskInfo], *, headers: bool) -> None:
    import time

    from clonekit.proc.stat import boot_time, clock_ticks

    hz = clock_ticks()
    boot = boot_time()
    now = time.time()
    uptime = now - boot
    day_ago = now - 86400
    year_ago = now - 365 * 86400
    # ps's widths, grown to the widest value (numeric columns are right-aligned)
    w_pid = max(5, len(str(max((t.tgid for t in tasks), default=0))))
    w_ppid = max(5, len(str(max((t.ppid for t in tasks), default=0))))
    w_lwp = max(5, len(str(max((t.tid for t in tasks), default=0))))
    w_nlwp = max(4, len(str(max((t.nlwp for t in tasks), default=0))))
    fmt = f"%-8s %{w_pid}d %{w_ppid}d %{w_lwp}d %2d %{w_nlwp}d %-5s %-8s %8s %s"
    stimes: dict[int, str] = {}
    users: dict[int, str] = {}
    ttys: dict[int, str] = {}
    times: dict[int, str] = {}
    out = []
    if headers:
        out.append(fmt.replace("d", "s") % HEADER)
    append = out.append
    for t in tasks:
        start = t.starttime
        stime = stimes.get(start)
        if stime is None:
            epoch = boot + start / hz
            spec = "%H:%M" if epoch > day_ago else "%b%d" if epoch > year_ago else "%Y"
            stime = stimes[start] = time.strftime(spec, time.localtime(epoch))
        user = users.get(t.uid)
        if user is None:
            user = users[t.uid] = _user(t.uid)
        tty = ttys.get(t.tty_nr)
        if tty is None:
            tty = ttys[t.tty_nr] = _tty(t.tty_nr)
        ticks = t.utime + t.stime
        cputime = times.get(ticks // hz)
        if cputime is None:
            cputime = times[ticks // hz] = _cputime(ticks, hz)
        elapsed = uptime - start / hz
        pcpu = int(ticks * 100 / hz / elapsed) if elapsed > 0 else 0
        cmd = " ".join(t.cmdline) if t.cmdline else f"[{t.comm}]"
        if not cmd.isprintable():
            cmd = cmd.translate(_CONTROL)
        append(fmt % (user, t.tgid, t.ppid, t.tid, min(pcpu, 99), t.nlwp, stime, tty, cputime, cmd))
    out.append("")
    sys.stdout.write("\n".join(out))


def _print_json(tasks: list[TaskInfo]) -> None:
    from clonekit._jsonc import dumps  # json's C encoder without importing json (~10 ms)
    from clonekit.proc.stat import boot_time, clock_ticks, user_name

    hz = clock_ticks()
    boot = boot_time()
    ttys = {nr: _tty(nr) for nr in {t.tty_nr for t in tasks}}
    rows: list[dict[str, Any]] = [
        {
            "uid": t.uid,
            "user": user_name(t.uid),
            "pid": t.tgid,
            "ppid": t.ppid,
            "lwp": t.tid,
            "nlwp": t.nlwp,
            "state": t.state,
            "stime": round(boot + t.starttime / hz, 2),
            "tty": ttys[t.tty_nr],
            "time": round((t.utime + t.stime) / hz, 2),
            "comm": t.comm,
            "cmd": " ".join(t.cmdline) if t.cmdline else f"[{t.comm}]",
            "nspid": t.nspid,
            "nstgid": t.nstgid,
        }
        for t in tasks
    ]
    # one task per line: readable, and json's C encoder (indent= would use the slow Python one)
    body = ",\n".join("    " + dumps(row) for row in rows)
    sys.stdout.write('{\n  "tasks": [\n' + body + ("\n" if rows else "") + "  ]\n}\n")
