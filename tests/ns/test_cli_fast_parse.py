"""The small parser of unshare, nsenter, lsns, tasks and tree (cli/table.py ``fast_command``)
against the argparse parser that stays for help and errors.

Whatever the small parser accepts, argparse must accept with the same result; what it leaves to
argparse (None) is argparse's to explain.  The common spellings must take the fast path.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys

import pytest

from clonekit.cli import build_parser
from clonekit.cli.table import fast_command
from clonekit.cli.unshare import program_of

COMMANDS = ("unshare", "nsenter", "lsns", "tasks", "tree")
_PARSERS: dict[str, object] = {}


def module(command: str):
    __import__(f"clonekit.cli.{command}")
    return sys.modules[f"clonekit.cli.{command}"]


def by_argparse(argv: list[str]) -> dict[str, object] | None:
    """argparse's namespace as a dict (the program through program_of), or None on an error."""
    command = next(a for a in argv if a in COMMANDS)
    parser = _PARSERS.get(command)
    if parser is None:
        parser = _PARSERS[command] = build_parser(command)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)  # type: ignore[attr-defined]
    except SystemExit:
        return None
    return normal(args)


def normal(args: object) -> dict[str, object]:
    out = dict(vars(args))
    out.pop("_values", None)  # argparse's hidden carrier of --opt=VALUE
    if "program" in out:
        out["program"] = program_of(args)  # type: ignore[arg-type]
    return out


def fast(argv: list[str]) -> dict[str, object] | None:
    command = next(a for a in argv if a in COMMANDS)
    args = fast_command(argv, module(command).FAST)
    return None if args is None else normal(args)


def agree(argv: list[str]) -> dict[str, object] | None:
    ours = fast(argv)
    if ours is not None:
        assert ours == by_argparse(argv), argv
    return ours


COMMON = [
    ["unshare", "-f", "-p", "-m", "-u", "-i", "-n", "--", "/bin/true"],
    ["unshare", "-fpmuin", "/bin/true"],
    ["unshare", "-u", "ls", "-d", "--color=never", "/"],
    ["unshare", "-U", "--map-users=0,0,65536", "--map-groups=0,0,65536", "-u", "-n", "-i", "-p", "-m", "-f",
     "--mount-proc", "--", "sh", "-c", "exit 3"],
    ["unshare", "--map-users", "1,2,3", "--map-users", "4:5:6", "-r", "--setgroups=allow", "true"],
    ["unshare", "--mount=/tmp/x", "--net=", "--pid=/p", "-f", "--kill-child=SIGTERM", "true"],
    ["unshare", "--kill-child", "--mount-proc=/mnt/proc", "-R", "/r", "-w", "/w", "true"],
    ["unshare", "-T", "--monotonic", "1000", "--boottime=86400.5", "--propagation", "slave", "true"],
    ["unshare", "-S", "1000", "-G1000", "--keep-caps", "--map-user=1000", "--map-group", "users", "true"],
    ["unshare", "-c", "--map-auto", "-C", "-Rroot", "--setuid=0"],
    ["unshare"],
    ["unshare", "--", "--", "x"],
    ["unshare", "-", "x"],
    ["--debug", "unshare", "-u", "true"],
    ["--root", "/run/x", "unshare", "-u", "true"],  # the subcommand's --root default wins, as argparse
    ["nsenter", "-t", "1", "-a", "--", "sh", "-c", "hostname"],
    ["nsenter", "-t1", "-un", "hostname"],
    ["nsenter", "--uts=/proc/1/ns/uts", "--", "hostname"],
    ["nsenter", "-u/proc/1/ns/uts", "-n./net", "-m=mnt", "hostname"],
    ["nsenter", "--target=7", "-p", "-F", "-r", "-w", "-S", "follow", "-G", "0", "true"],
    ["nsenter", "-t", "7", "-U", "--preserve-credentials", "--root=/r", "--wd=", "-r/x", "-w.", "id"],
    ["--root", "/run/x", "nsenter", "-t", "1", "-m", "true"],
    ["lsns"],
    ["lsns", "--json", "-t", "net", "-t", "pid", "-p", "1"],
    ["lsns", "-Jln", "-o", "+PNS", "-T"],
    ["lsns", "-T", "parent", "4026531836"],
    ["lsns", "4026531836", "--tree=owner", "-r", "-u", "-W", "--output-all"],
    ["lsns", "-tuser", "-T", "-n", "--task=5"],
    ["tasks"],
    ["tasks", "--json", "-p", "1,2", "--pid=3", "-p4", "--no-headers"],
    ["tree"],
    ["tree", "--ns", "-T", "-t", "--json", "5"],
    ["tree", "-AT", "--dot", "1"],
    ["tree", "-U", "x"],
]


@pytest.mark.parametrize("argv", COMMON, ids=" ".join)
def test_common_spellings_take_the_fast_path_and_agree(argv):
    assert agree(argv) is not None, f"{argv} fell back to argparse"


LEFT_TO_ARGPARSE = [
    ["unshare", "--help"],
    ["unshare", "-h"],
    ["unshare", "--fo", "true"],  # an abbreviation
    ["unshare", "--bogus", "true"],
    ["unshare", "--fork=yes", "true"],
    ["unshare", "--propagation", "sideways", "true"],
    ["unshare", "--setgroups"],
    ["unshare", "--monotonic", "-60", "true"],  # argparse's negative-number rule
    ["unshare", "--monotonic", "soon", "true"],
    ["unshare", "-fS=5", "true"],
    ["nsenter", "-t", "x", "true"],
    ["nsenter", "-t"],
    ["lsns", "1", "2"],
    ["lsns", "--", "1"],
    ["lsns", "-T", "sideways"],
    ["lsns", "notanumber"],
    ["lsns", "-p", "-1"],
    ["tasks", "1"],
    ["tree", "--json", "--dot"],
    ["tree", "-A", "-U"],
    ["tree", "1", "2"],
    ["-v", "unshare"],
]


@pytest.mark.parametrize("argv", LEFT_TO_ARGPARSE, ids=" ".join)
def test_unusual_input_is_left_to_argparse(argv):
    assert fast(argv) is None


def test_both_parsers_know_the_same_options():
    """Every option of each argparse parser has its twin in the FAST table: same names, dest,
    value type, default, choices, append and const (argparse's nargs="?")."""
    import argparse

    for command in COMMANDS:
        sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
        cmd = module(command).FAST
        seen = set()
        for action in parser._actions:
            if not action.option_strings:
                continue
            if action.dest in ("help", "_values"):
                continue
            for name in action.option_strings:
                o = cmd.by_name.get(name)
                assert o is not None, f"{command} {name}: not in FAST"
                assert o.dest == action.dest, (command, name)
                flag = isinstance(action, argparse._StoreTrueAction)
                assert (o.takes is None) == flag, (command, name)
                if not flag:
                    assert (o.takes or str) == (action.type or str), (command, name)
                    assert o.append == isinstance(action, argparse._AppendAction), (command, name)
                    assert o.default == action.default, (command, name)
                    assert o.choices == (tuple(action.choices) if action.choices else None), (command, name)
                    assert o.const == (action.const if action.nargs == "?" else None), (command, name)
                seen.add(name)
        assert seen == set(cmd.by_name), f"{command}: FAST has options argparse lacks"


# words a user might type, the awkward ones included
_VOCAB = {
    "unshare": ["-f", "-p", "-m", "-u", "-i", "-n", "-U", "-C", "-T", "-r", "-c", "-R", "-w", "-S", "-G",
                "-fp", "-fR", "-Sx", "-S=1", "--fork", "--mount", "--mount=", "--mount=/x", "--pid=/p",
                "--mount-proc", "--mount-proc=/m", "--kill-child", "--kill-child=TERM", "--map-users",
                "--map-users=1,2,3", "--map-user", "--propagation", "--propagation=shared", "--setgroups",
                "--setgroups=deny", "--monotonic", "--boottime=1.5", "--root", "--wd=/", "--setuid=",
                "--fo", "--bogus", "-x", "--", "-", "", "allow", "deny", "slave", "1.5", "-1", "1e3",
                "/bin/true", "a b", "-h", "--help", "x=y", "-=", "--_value=mnt_file=x", "-v", "--version",
                "--ro", "--r=1", "--m", "--map", "--s", "--c", "--log", "--lo"],
    "nsenter": ["-t", "-t1", "-a", "-m", "-u", "-n", "-p", "-U", "-C", "-T", "-i", "-r", "-w", "-F", "-S",
                "-G", "-un", "-u/x", "-m.", "-n=", "-r/r", "-w.", "-rw", "--target", "--target=3",
                "--all", "--mount=/m", "--uts", "--root", "--root=/r", "--wd=", "--no-fork",
                "--preserve-credentials", "--setuid=follow", "--", "-", "", "1", "x", "-1", "follow",
                "-h", "--bogus", "--ro", "--r", "--p", "--root=/x", "-v", "--version", "--c"],
    "lsns": ["-J", "-l", "-n", "-o", "-p", "-r", "-t", "-u", "-W", "-T", "-Jn", "-tnet", "-Tparent",
             "-To", "--json", "--output=NS", "--output-all", "--task", "--type=pid", "--tree",
             "--tree=parent", "--tree=", "--", "-", "", "owner", "parent", "net", "1", "4026531836",
             "-1", "x", "--bogus", "--out"],
    "tasks": ["-p", "-p1", "--pid", "--pid=1,2", "--json", "--no-headers", "--", "-", "", "1", "1,2",
              "-1", "x", "--js", "--no"],
    "tree": ["--ns", "-T", "-t", "--json", "--dot", "-A", "-U", "-AT", "-AU", "--hide-threads",
             "--thread-names", "--ascii", "--unicode", "--", "-", "", "1", "42", "x", "-1", "--as"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_random_command_lines_agree(command):
    rng = random.Random(f"clonekit-{command}")
    vocab = _VOCAB[command]
    taken = 0
    for _ in range(1500):
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 5))]
        prefix = rng.choice([[], [], ["--debug"], ["--root", "/r"], ["--log-format", "json"]])
        if agree([*prefix, command, *words]) is not None:
            taken += 1
    assert taken > 100  # the comparison means something: many lines took the fast path


def test_no_argparse_on_the_fast_path():
    """A fast-path command line loads neither argparse nor what it drags in (re, gettext,
    locale), and the CLI modules themselves load neither typing nor enum."""
    code = (
        "import sys\n"
        "from clonekit.cli import table, unshare, nsenter, lsns, tasks, tree\n"
        "early = sorted(m for m in ('typing', 'enum', 'signal', 're') if m in sys.modules)\n"
        "from clonekit.cli import main\n"
        "rc = main(['tasks', '-p', str(__import__('os').getpid()), '--no-headers'])\n"
        "late = sorted(m for m in ('argparse', 'gettext', 'locale', 're', 'json') if m in sys.modules)\n"
        "print(rc, early, late)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": ""}).stdout
    assert out.splitlines()[-1] == "0 [] []", out


def test_help_and_errors_are_argparse_s(capsys):
    from clonekit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["unshare", "--help"])
    assert exc.value.code == 0
    assert "usage: clonekit unshare [options] [<program> [<argument>...]]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["lsns", "-T", "sideways"])
    assert exc.value.code == 2
    assert "argument -T/--tree: invalid choice: 'sideways'" in capsys.readouterr().err


def test_version_without_argparse():
    out = subprocess.run([sys.executable, "-c", "import sys; from clonekit.cli import main; main(['-v']);"
                          " print('argparse' in sys.modules)"], capture_output=True, text=True, check=True)
    from clonekit import __version__

    assert out.stdout == f"clonekit {__version__}\nFalse\n"


@pytest.mark.parametrize(("argv", "indent"), [(["lsns", "--json"], 3), (["lsns", "-T", "--json"], 3),
                                              (["tree", "--json"], 2), (["tree", "--ns", "--json"], 2),
                                              (["tasks", "--json"], None)], ids=repr)
def test_json_output_is_json_module_text_without_json(argv, indent):
    """--json is written by json's C encoder (clonekit._jsonc) without importing json: the text
    is what json.dump(indent=N) (tasks: one JSONEncoder().encode line per task) would write."""
    import json

    code = (
        "import io, sys\n"
        "from clonekit.cli import main\n"
        "out = io.StringIO(); real = sys.stdout; sys.stdout = out\n"
        f"rc = main({argv!r})\n"
        "sys.stdout = real\n"
        "print(rc, 'json' in sys.modules, 'argparse' in sys.modules)\n"
        "sys.stdout.write(out.getvalue())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status, _, text = done.stdout.partition("\n")
    assert status == "0 False False", done.stderr
    data = json.loads(text)
    if indent is not None:
        assert text == json.dumps(data, indent=indent) + "\n"
    else:
        body = ",\n".join("    " + json.JSONEncoder().encode(row) for row in data["tasks"])
        assert text == '{\n  "tasks": [\n' + body + "\n  ]\n}\n"
