"""``clonekit check`` and ``clonekit explain``: exit codes, output, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clonekit.cli import main
from clonekit.errors import UsageError
from clonekit.signals import parse_signal

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC))
    return subprocess.run([sys.executable, "-m", "clonekit", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_check_accepts_and_refuses_through_python_dash_m():
    ok = clonekit("check", "vm|fs|files")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "accepted\n", "")
    refused = clonekit("check", "vm|thread", "--exit-signal", "0")
    assert refused.returncode == 1
    assert refused.stdout == ("EINVAL: CLONE_THREAD needs CLONE_SIGHAND: threads of one group must "
                              "share signal handlers\n")


def test_bad_flags_are_one_line_without_traceback():
    bad = clonekit("check", "vm|bogus")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("clonekit check: unknown clone flag 'bogus': valid names are ")
    bad = clonekit("explain", "0x1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("argv,code,out", [
    (["check", "0"], 0, "accepted"),
    (["check", "vm", "sighand", "thread"], 1, "EINVAL: CLONE_THREAD needs exit_signal 0 in clone3"),
    (["check", "--exit-signal", "0", "vm", "sighand", "thread"], 0, "accepted"),
    (["check", "--exit-signal", "none", "CLONE_VM|CLONE_SIGHAND|CLONE_THREAD"], 0, "accepted"),
    (["check", "--via", "clone", "vm,sighand,thread"], 0, "accepted"),
    # legacy clone's low byte is the exit signal, as the kernel reads it, whatever the bits are called
    (["check", "--via", "clone", "newtime"], 0, "accepted: low byte 0x80 is the exit signal: 128, which"),
    (["check", "--via", "clone", "0x40"], 0, "accepted: low byte 0x40 is the exit signal: 64 (SIGRTMAX)"),
    (["check", "--via", "clone", "vm|0x1"], 0, "accepted: low byte 0x1 is the exit signal: 1 (SIGHUP)"),
    (["check", "--via", "clone", "--exit-signal", "chld", "0x40"], 0,
     "accepted: low byte 0x40 (with exit_signal or-ed in: 0x51) is the exit signal: 81"),
    (["check", "0x40"], 2, ""),  # clone3 has an exit_signal field: 0x40 is no flag there
    (["check", "--via", "clone", "into_cgroup"], 1, "EINVAL: legacy clone() carries only the low 32 bits"),
    (["check", "--via", "unshare", "pidfd"], 1, "EINVAL: unshare() cannot take CLONE_PIDFD"),
    (["check", "--via", "unshare", "newuts|newnet"], 0, "accepted"),
    (["check", "--exit-signal", "65", "0"], 1, "EINVAL: clone3's exit_signal must be a valid signal"),
    (["check", "--exit-signal", "SIGUSR1", "newuts"], 0, "accepted"),
    (["check", "--exit-signal", "usr1", "parent"], 1, "EINVAL: CLONE_PARENT needs exit_signal 0"),
    (["check", "--exit-signal", "rtmin+2", "0"], 0, "accepted"),
    (["check", "newns|fs"], 1, "EINVAL: CLONE_NEWNS cannot go with CLONE_FS"),
    (["check", "into_cgroup"], 1, "EBADF: CLONE_INTO_CGROUP needs the fd of a cgroup2 directory"),
    (["check", "pthread_create"], 0, "accepted"),  # a glibc set brings its own exit signal (0)
    (["check", "--via", "clone", "pidfd|parent_settid"], 1, "EINVAL: legacy clone() returns the pidfd"),
])
def test_check_exit_codes_and_lines(argv, code, out, capsys):
    assert main(argv) == code
    captured = capsys.readouterr()
    if code == 2:
        assert captured.out == "" and "does not define" in captured.err
        return
    assert captured.out.startswith(out) and captured.out.count("\n") == 1
    assert captured.err == ""


@pytest.mark.parametrize("argv,words", [
    (["check", "bogus"], "unknown clone flag 'bogus'"),
    (["check", "--exit-signal", "SIGNOPE", "vm"], "unknown signal 'SIGNOPE'"),
    (["check", "1<<40"], "unknown clone flag '1<<40'"),
    (["check", str(1 << 40)], "does not define"),
    (["explain", "--exit-signal", "rtmin+99", "vm"], "unknown signal"),
])
def test_usage_errors_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in captured.err and captured.err.count("\n") == 1


def test_argparse_rejects_an_unknown_via(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--via", "fork", "vm"])
    assert info.value.code == 2
    assert "invalid choice: 'fork'" in capsys.readouterr().err


def test_explain_table_and_json(capsys):
    assert main(["explain", "vm|files|sighand"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "clone3(CLONE_VM|CLONE_FILES|CLONE_SIGHAND, exit signal SIGCHLD)"
    assert table[1].split() == ["KEY", "RESOURCE", "VERDICT", "DETAIL"]
    memory = next(line for line in table if line.startswith("memory "))
    assert " shared " in memory
    assert table[-1] == "kernel: accepts this call here"

    assert main(["explain", "--json", "pthread_create"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["libc"] == ["pthread_create"] and data["exit_signal"] == 0
    assert {r["key"]: r["verdict"] for r in data["rows"]}["thread_group"] == "joined"
    assert data["kernel"]["accepted"] is True


def test_explain_defaults_thread_and_parent_to_exit_signal_0(capsys):
    assert main(["explain", "--json", "vm|sighand|thread"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exit_signal"] == 0 and data["kernel"]["accepted"] is True
    assert main(["explain", "--json", "--exit-signal", "SIGCHLD", "vm|sighand|thread"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kernel"] == {"accepted": False, "errno": "EINVAL",
                              "rule": data["kernel"]["rule"]}
    assert "exit_signal 0" in data["kernel"]["rule"]


def test_explain_unshare_shows_implied_flags(capsys):
    assert main(["explain", "--via", "unshare", "newuser"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("unshare(CLONE_NEWUSER)  -- the kernel works with "
                                   "CLONE_FS|CLONE_THREAD|CLONE_NEWUSER")


def test_explain_through_python_dash_m_and_bad_flags():
    ok = clonekit("explain", "--json", "fork")
    assert ok.returncode == 0 and json.loads(ok.stdout)["libc"] == ["fork"]
    bad = clonekit("explain", "nothing")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.parametrize("text,number", [
    ("SIGCHLD", 17), ("chld", 17), ("17", 17), ("0", 0), ("none", 0), ("0x11", 17),
    ("SIGRTMIN", 34), ("rtmin+2", 36), ("SIGRTMAX-1", 63), ("sigusr1", 10), ("255", 255),
])
def test_signal_parsing(text, number):
    # check --exit-signal takes any number: the kernel's answer to a bad one is the point
    assert parse_signal(text, any_number=True) == number


def test_signal_numbers_are_range_checked_unless_asked_not_to():
    with pytest.raises(UsageError, match="out of range"):
        parse_signal("255")


@pytest.mark.parametrize("text", ["SIGFOO", "rtmin+40", "rtmax-x", ""])
def test_bad_signals(text):
    with pytest.raises(UsageError, match="unknown signal"):
        parse_signal(text)
