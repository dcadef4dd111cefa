"""CloneFlag and parse_flags: every bit of sched.h, the text forms people write, clear errors."""

from __future__ import annotations

import os
import re

import pytest

from clonekit.errors import UsageError
from clonekit.flags import ALL_FLAGS, CSIGNAL, NAMESPACE_FLAGS, CloneFlag, parse_flags

F = CloneFlag
SCHED_H = "/usr/include/linux/sched.h"


def _header_flags() -> dict[str, int]:
    with open(SCHED_H) as f:
        text = f.read()
    return {m[1]: int(m[2], 16) for m in re.finditer(r"#define\s+CLONE_(\w+)\s+(0x[0-9a-fA-F]+)", text)}


@pytest.mark.skipif(not os.path.exists(SCHED_H), reason=f"{SCHED_H} (linux-libc-dev) not installed")
def test_every_bit_of_the_installed_sched_h_is_a_cloneflag_with_the_same_value():
    header = _header_flags()
    assert len(header) >= 27
    for name, value in header.items():
        assert F[name].value == value, name
    assert {f.name for f in F} == set(header)


def test_issue_list_of_flags_is_complete_and_distinct():
    names = [
        "VM", "FS", "FILES", "SIGHAND", "PIDFD", "PTRACE", "VFORK", "PARENT", "THREAD", "NEWNS",
        "SYSVSEM", "SETTLS", "PARENT_SETTID", "CHILD_CLEARTID", "DETACHED", "UNTRACED", "CHILD_SETTID",
        "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID", "NEWNET", "IO", "CLEAR_SIGHAND",
        "INTO_CGROUP", "NEWTIME",
    ]
    values = [F[n].value for n in names]
    assert len(set(values)) == len(values) == 27
    assert all(v & (v - 1) == 0 for v in values)  # one bit each
    assert ALL_FLAGS.value == sum(values)
    assert F.NEWTIME & CSIGNAL  # the one flag inside the exit-signal byte
    assert NAMESPACE_FLAGS == (F.NEWNS | F.NEWCGROUP | F.NEWUTS | F.NEWIPC | F.NEWUSER | F.NEWPID
                               | F.NEWNET | F.NEWTIME)


@pytest.mark.parametrize("text", [
    "CLONE_VM|CLONE_FS", "vm|fs", "vm,fs", "VM, FS", "vm fs", "vm+fs", "clone_vm | Clone_Fs",
    "0x300", "768", "0x100|fs", "0o1400",
])
def test_text_forms_all_mean_vm_and_fs(text):
    assert parse_flags(text) == F.VM | F.FS


@pytest.mark.parametrize("text,expected", [
    ("newpid", F.NEWPID), ("CLONE_NEWTIME", F.NEWTIME), ("into_cgroup", F.INTO_CGROUP),
    ("clear_sighand|newuser", F.CLEAR_SIGHAND | F.NEWUSER), ("", F(0)), ("0", F(0)), ("  ", F(0)),
    ("0x200000000", F.INTO_CGROUP),
])
def test_single_names_numbers_and_empty(text, expected):
    assert parse_flags(text) == expected


def test_ints_and_cloneflags_pass_through_as_cloneflag():
    assert parse_flags(0x10900) == F.VM | F.SIGHAND | F.THREAD
    assert type(parse_flags(0x100)) is CloneFlag
    assert parse_flags(F.NEWNS | F.NEWUSER) == F.NEWNS | F.NEWUSER
    assert parse_flags(ALL_FLAGS) == ALL_FLAGS


def test_str_and_names_of_a_set():
    flags = F.VM | F.THREAD | F.INTO_CGROUP
    assert flags.names == ["CLONE_VM", "CLONE_THREAD", "CLONE_INTO_CGROUP"]
    assert str(flags) == "CLONE_VM|CLONE_THREAD|CLONE_INTO_CGROUP"
    assert str(F(0)) == "0"
    assert parse_flags(str(flags)) == flags  # str() round-trips


def test_unknown_name_lists_every_valid_name():
    with pytest.raises(UsageError) as info:
        parse_flags("vm|bogus")
    message = str(info.value)
    assert "'bogus'" in message
    for flag in F:
        assert flag.name.lower() in message


@pytest.mark.parametrize("value", [1 << 34, 0x1, 0x17, "0x400000000", "vm|0x2"])
def test_bits_outside_sched_h_are_refused_with_the_valid_mask(value):
    with pytest.raises(UsageError, match="does not define"):
        parse_flags(value)


@pytest.mark.parametrize("value", [-1, "-1", "vm|-0x100"])
def test_negative_numbers_are_refused(value):
    with pytest.raises(UsageError, match="negative"):
        parse_flags(value)


@pytest.mark.parametrize("value", [None, 1.5, b"vm", ["vm"], True, object()])
def test_wrong_types_are_a_usage_error_naming_the_type(value):
    with pytest.raises(UsageError, match=type(value).__name__):
        parse_flags(value)


def test_usage_error_is_a_value_error_for_plain_python_callers():
    with pytest.raises(ValueError):
        parse_flags("nope")
