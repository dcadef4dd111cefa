"""`clonekit tasks` against procps `ps` on the same controlled processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from proc_helpers import Family, free_pid, need, run_cli, wait_exec


def _ps(*args: str) -> list[list[str]]:
    out = subprocess.run([need("ps"), *args], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()]


def _minutes_apart(a: str, b: str) -> int:
    """Distance of two STIME values: HH:MM minutes (mod a day), or 0/999 for equal/unequal dates."""
    if ":" not in a or ":" not in b:
        return 0 if a == b else 999
    (ah, am), (bh, bm) = (map(int, a.split(":")), map(int, b.split(":")))
    d = abs((ah * 60 + am) - (bh * 60 + bm))
    return min(d, 1440 - d)


def test_json_matches_ps_on_tids_tgids_nlwp(family: Family) -> None:
    res = run_cli("tasks", "--json", "-p", str(family.pid))
    assert res.returncode == 0, res.stderr
    tasks = json.loads(res.stdout)["tasks"]
    ours = sorted((t["pid"], t["lwp"], t["nlwp"], t["ppid"], t["uid"]) for t in tasks)
    theirs = sorted(
        tuple(int(x) for x in row)
        for row in _ps("-L", "-o", "pid=,lwp=,nlwp=,ppid=,euid=", "-p", str(family.pid))
    )
    assert ours == theirs
    assert len(ours) == 5
    for t in tasks:  # ps's column names, numbers as numbers
        assert isinstance(t["stime"], float) and isinstance(t["time"], float)
        assert t["nspid"] == [t["lwp"]] and t["nstgid"] == [t["pid"]]
        assert t["cmd"].startswith(f"{sys.executable} -c")


def test_table_matches_ps_eLf(family: Family) -> None:
    res = run_cli("tasks")
    assert res.returncode == 0, res.stderr
    ps = _ps("-eLfww")  # ww: never cut CMD (ps cuts at 80 columns without a terminal)
    header = res.stdout.splitlines()[0].split()
    assert header == ps[0] == ["UID", "PID", "PPID", "LWP", "C", "NLWP", "STIME", "TTY", "TIME", "CMD"]
    watched = {str(family.pid), *map(str, family.kids), "2"}  # 2: kthreadd, a kernel thread

    def rows(table: list[list[str]]) -> list[tuple[str, ...]]:
        # UID PID PPID LWP NLWP TTY CMD... (C and TIME are rates that move between runs)
        return sorted((r[0], r[1], r[2], r[3], r[5], r[7], *r[9:]) for r in table if r[1] in watched)

    def stimes(table: list[list[str]]) -> dict[str, str]:
        return {r[3]: r[6] for r in table if r[1] in watched}

    ours = rows([line.split() for line in res.stdout.splitlines()[1:]])
    assert ours == rows(ps[1:])
    # STIME: ps derives boot time from time(NULL) - uptime, truncated, so ps itself flips
    # between two minutes for a process started within a second of the boundary
    our_stimes, ps_stimes = stimes([line.split() for line in res.stdout.splitlines()[1:]]), stimes(ps[1:])
    assert our_stimes.keys() == ps_stimes.keys()
    for lwp, ours_at in our_stimes.items():
        assert _minutes_apart(ours_at, ps_stimes[lwp]) <= 1, (lwp, ours_at, ps_stimes[lwp])
    assert len(ours) == 5 + 2 + 1
    assert next(r for r in ours if r[1] == "2")[-1] == "[kthreadd]"
    # and the whole listing: every long-lived task ps sees, we see too
    our_tasks = {(r[1], r[3]) for r in (line.split() for line in res.stdout.splitlines()[1:])}
    ps_tasks = {(r[1], r[3]) for r in ps[1:]}
    assert len(ps_tasks - our_tasks) <= 3  # only the processes of ps/our runs may differ
    assert len(our_tasks & ps_tasks) > 10


def test_columns_align_like_ps(family: Family) -> None:
    ours = run_cli("tasks", "-p", str(family.kids[0])).stdout.splitlines()
    theirs = subprocess.run(["ps", "-Lfww", "-p", str(family.kids[0])], capture_output=True, text=True).stdout
    # the same widths: the CMD column starts at the same offset
    assert ours[0] == theirs.splitlines()[0]
    assert ours[1].index("sleep 600") == theirs.splitlines()[1].index("sleep 600")
    assert ours[1].split()[:4] == theirs.splitlines()[1].split()[:4]


def test_several_pids_and_no_headers(family: Family) -> None:
    res = run_cli("tasks", "--no-headers", "-p", f"{family.kids[0]},{family.kids[1]}")
    assert res.returncode == 0
    assert sorted(int(line.split()[1]) for line in res.stdout.splitlines()) == sorted(family.kids)


def test_missing_pid_is_a_clear_error() -> None:
    pid = free_pid()
    res = run_cli("tasks", "-p", str(pid))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.strip() == (
        f"clonekit tasks: no process with id {pid}: it does not exist or has exited "
        "(list live ones with `clonekit tasks`)"
    )


def test_malformed_pid_is_a_clear_error() -> None:
    for bad in ("abc", "0", "-3x", "12,x"):
        res = run_cli("tasks", f"--pid={bad}")
        assert res.returncode == 1, bad
        assert "Traceback" not in res.stderr
        assert "is not a process id (a positive integer" in res.stderr
    res = run_cli("tasks", "-p", ",")
    assert (
        res.returncode == 1
        and res.stderr == "clonekit tasks: -p: no process id given (e.g. -p 1234 or -p 1,2)\n"
    )


def test_odd_command_lines_print_like_ps() -> None:
    """Control characters, a newline and bytes that are not UTF-8, shown as ps shows them."""
    # python itself waits (no grandchild to leak); the odd words are extra argv entries
    script = b"import sys; sys.stdin.read()"
    argv = [sys.executable.encode(), b"-c", script, b"a\tb\x01c \xc3\xa9\x7f\nz", b"bad\xffbyte"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE)
    assert child.stdin is not None
    try:
        wait_exec(child.pid, "python")
        ps = subprocess.run(
            ["ps", "-ww", "-o", "args=", "-p", str(child.pid)], capture_output=True, text=True
        ).stdout.rstrip("\n")
        ours = run_cli("tasks", "--no-headers", "-p", str(child.pid)).stdout.rstrip("\n")
        assert ours.endswith(" " + ps)
        assert ps == f"{sys.executable} -c import sys; sys.stdin.read() a?b?c é? z bad?byte"
        tasks = json.loads(run_cli("tasks", "--json", "-p", str(child.pid)).stdout)["tasks"]
        assert tasks[0]["cmd"] == f"{sys.executable} -c {script.decode()} a\tb\x01c é\x7f\nz bad\udcffbyte"
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_uid_of_a_non_dumpable_process_agrees_with_ps() -> None:
    """A process that dropped to uid 65534 without exec is non-dumpable: its /proc files turn
    root-owned, but its /proc/PID directory (which tasks reads the uid from) does not."""
    code = (
        "import os, sys, time; os.setgroups([]); os.setresgid(65534, 65534, 65534); "
        "os.setresuid(65534, 65534, 65534); print('ok', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ok\n"
        assert os.stat(f"/proc/{child.pid}/stat").st_uid == 0  # non-dumpable indeed
        (task,) = json.loads(run_cli("tasks", "--json", "-p", str(child.pid)).stdout)["tasks"]
        assert task["uid"] == 65534
        (row,) = _ps("-o", "euid=,user=", "-p", str(child.pid))
        assert [str(task["uid"]), task["user"]] == row
        table = run_cli("tasks").stdout.splitlines()
        (line,) = [line for line in table if line.split()[1] == str(child.pid)]
        assert line.split()[0] == row[1]
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()
