"""clonekit.probe(): a native child with any valid flag set, observed; must agree with explain()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import clonekit
from clonekit import CloneFlag as F
from clonekit.observe import PRESETS

# every bit that changes what is shared, alone, with what the kernel demands beside it
SINGLE = [
    F.VM, F.FS, F.FILES, F.VM | F.SIGHAND, F.PIDFD, F.PTRACE, F.VFORK, F.PARENT,
    F.VM | F.SIGHAND | F.THREAD, F.NEWNS, F.SYSVSEM, F.SETTLS, F.PARENT_SETTID, F.CHILD_CLEARTID,
    F.UNTRACED, F.CHILD_SETTID, F.NEWCGROUP, F.NEWUTS, F.NEWIPC, F.NEWUSER, F.NEWPID, F.NEWNET,
    F.IO, F.CLEAR_SIGHAND, F.NEWTIME, F.VM | F.CHILD_CLEARTID, F.VM | F.CHILD_SETTID,
]


@pytest.mark.parametrize("flags", SINGLE, ids=str)
def test_probe_agrees_with_explain_for_each_flag(flags):
    result = clonekit.probe(flags)
    assert result.mismatches == [], result.render()
    assert result.facts["ended"] == 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_probe_agrees_with_explain_for_the_presets(name):
    result = clonekit.probe(name)
    assert result.mismatches == [], result.render()


def test_thread_preset_shares_everything_of_a_thread():
    r = clonekit.probe("thread")
    o = r.observed
    assert (o["memory"], o["fd_table"], o["fs_info"], o["signal_handlers"]) == ("shared",) * 4
    assert o["thread_group"] == "joined" and r.tgid == r.facts["helper_pid"] and r.tid != r.tgid
    assert o["tls"] == "set" and o["parent_tid_write"] == "written" and o["child_tid_clear"] == "cleared"
    assert o["exit_signal"] == "none" and o["sysvsem_undo"] == "shared"


def test_fork_preset_copies_and_writes_the_child_tid():
    o = clonekit.probe("fork").observed
    assert (o["memory"], o["fd_table"], o["fs_info"], o["signal_handlers"]) == ("copied",) * 4
    assert o["thread_group"] == "new" and o["child_tid_write"] == "written"
    assert o["exit_signal"] == "SIGCHLD" and o["parent"] == "caller"


def test_vfork_suspends_the_parent_and_posix_spawn_resets_handlers():
    assert clonekit.probe("vfork").observed["vfork_suspend"] == "suspended"
    o = clonekit.probe("posix_spawn").observed
    assert o["vfork_suspend"] == "suspended" and o["signal_handlers"] == "reset"
    assert clonekit.probe(0).observed["vfork_suspend"] == "none"


def test_tid_vs_tgid_example():
    r = clonekit.probe("tid-vs-tgid")
    assert r.tgid == r.facts["helper_pid"] != r.tid


def test_uts_example_renames_only_the_child():
    r = clonekit.probe("uts")
    assert r.facts["child"]["hostname"] == "clonekit-probe"
    assert r.facts["helper_hostname"] == os.uname().nodename != "clonekit-probe"
    assert r.observed["ns.uts"] == "new"


def test_parent_flag_makes_a_sibling():
    r = clonekit.probe(F.PARENT)
    assert r.observed["parent"] == "callers_parent"
    assert r.facts["child"]["ppid"] == os.getpid()


def test_other_exit_signal_is_observed():
    assert clonekit.probe(0, exit_signal=signal.SIGUSR1).observed["exit_signal"] == "SIGUSR1"
    assert clonekit.probe(0, exit_signal=0).observed["exit_signal"] == "none"


def test_refused_flags_raise_the_kernels_errno_and_rule():
    with pytest.raises(clonekit.CloneFlagsError) as info:
        clonekit.probe(F.THREAD)
    assert info.value.errno == 22


def test_probe_leaves_the_caller_untouched():
    umask = os.umask(0o22)
    os.umask(umask)
    handler = signal.getsignal(signal.SIGRTMAX - 1)
    clonekit.probe("thread")
    clonekit.probe(F.FS | F.FILES | F.VM | F.SIGHAND)
    now = os.umask(0o22)
    os.umask(now)
    assert now == umask and signal.getsignal(signal.SIGRTMAX - 1) == handler


def test_cli_probe_json_and_exit_status():
    out = subprocess.run([sys.executable, "-m", "clonekit", "probe", "--json", "thread"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import json

    doc = json.loads(out.stdout)
    assert doc["mismatches"] == [] and any(r["key"] == "memory" and r["observed"] == "shared"
                                           for r in doc["resources"])
    bad = subprocess.run([sys.executable, "-m", "clonekit", "probe", "thread-ish"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown clone flag" in bad.stderr and "Traceback" not in bad.stderr
