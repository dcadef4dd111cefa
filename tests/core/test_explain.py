"""clonekit.explain (module clonekit.sharing): the rows in the sharing module's vocabulary, glibc's
sets, unshare, data and table."""

from __future__ import annotations

import json
import signal

import pytest

import clonekit
from clonekit.errors import UsageError
from clonekit.flags import CloneFlag
from clonekit.sharing import LIBC_SETS, Explanation, explain, libc_users, signal_name

F = CloneFlag
NS = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")
VOCABULARY = {
    "memory": {"shared", "copied"},
    "fd_table": {"shared", "copied"},
    "fs_info": {"shared", "copied"},
    "signal_handlers": {"shared", "copied", "reset"},
    "thread_group": {"joined", "new"},
    "parent": {"caller", "callers_parent"},
    "sysvsem_undo": {"shared", "new"},
    "io_context": {"shared", "new"},
    "tracing": {"continued", "untraced", "default"},
    "tls": {"set", "inherited"},
    "parent_tid_write": {"written", "none"},
    "child_tid_write": {"written", "none"},
    "child_tid_clear": {"cleared", "none"},
    "vfork_suspend": {"suspended", "none"},
    "exit_signal": None,  # a signal name or "none"
    "pidfd": {"returned", "none"},
    **{f"ns.{kind}": {"shared", "new"} for kind in NS},
}


def _in_vocabulary(key: str, verdict: str) -> bool:
    allowed = VOCABULARY[key]
    if allowed is None:
        return verdict == "none" or verdict.startswith("SIG") or verdict.isdigit()
    return verdict in allowed


@pytest.mark.parametrize("flag", [F(0), *F], ids=lambda f: str(f))
def test_every_bit_gives_exactly_the_contract_keys_and_words(flag):
    sig = 0 if flag & (F.THREAD | F.PARENT) else signal.SIGCHLD
    e = explain(flag, exit_signal=sig)
    assert [r.key for r in e.rows] == list(VOCABULARY)
    for row in e.rows:
        assert _in_vocabulary(row.key, row.verdict), (row.key, row.verdict)
        assert row.resource and row.detail


def test_no_flags_is_a_plain_fork():
    v = explain(0).verdicts
    assert v["memory"] == v["fd_table"] == v["fs_info"] == v["signal_handlers"] == "copied"
    assert v["thread_group"] == "new" and v["parent"] == "caller" and v["exit_signal"] == "SIGCHLD"
    assert all(v[f"ns.{k}"] == "shared" for k in NS)
    assert v["tracing"] == "default" and v["pidfd"] == "none" and v["vfork_suspend"] == "none"


@pytest.mark.parametrize("flag,key,verdict", [
    (F.VM, "memory", "shared"), (F.FILES, "fd_table", "shared"), (F.FS, "fs_info", "shared"),
    (F.VM | F.SIGHAND, "signal_handlers", "shared"), (F.CLEAR_SIGHAND, "signal_handlers", "reset"),
    (F.VM | F.SIGHAND | F.THREAD, "thread_group", "joined"), (F.PARENT, "parent", "callers_parent"),
    (F.VM | F.SIGHAND | F.THREAD, "parent", "callers_parent"), (F.SYSVSEM, "sysvsem_undo", "shared"),
    (F.IO, "io_context", "shared"), (F.PTRACE, "tracing", "continued"), (F.UNTRACED, "tracing", "untraced"),
    (F.PTRACE | F.UNTRACED, "tracing", "continued"), (F.SETTLS, "tls", "set"),
    (F.PARENT_SETTID, "parent_tid_write", "written"), (F.CHILD_SETTID, "child_tid_write", "written"),
    (F.CHILD_CLEARTID, "child_tid_clear", "cleared"), (F.VFORK, "vfork_suspend", "suspended"),
    (F.PIDFD, "pidfd", "returned"),
])
def test_each_sharing_flag_moves_its_own_row_only(flag, key, verdict):
    sig = 0 if flag & (F.THREAD | F.PARENT) else signal.SIGCHLD
    base = explain(0, exit_signal=sig).verdicts
    got = explain(flag, exit_signal=sig).verdicts
    assert got[key] == verdict
    changed = {k for k in got if got[k] != base[k]}
    # VM, SIGHAND and THREAD travel together
    allowed = {key, "memory", "signal_handlers", "thread_group", "parent", "exit_signal"}
    assert changed <= allowed


@pytest.mark.parametrize("kind,flag", [(k, f) for k, f in zip(NS, (F.NEWNS, F.NEWUTS, F.NEWIPC, F.NEWNET,
                                                                     F.NEWPID, F.NEWUSER, F.NEWCGROUP,
                                                                     F.NEWTIME), strict=True)])
def test_each_namespace_flag_makes_that_namespace_new(kind, flag):
    e = explain(flag)
    for other in NS:
        assert e[f"ns.{other}"].verdict == ("new" if other == kind else "shared")
    if kind in ("pid", "time"):
        assert f"{kind}_for_children" in e[f"ns.{kind}"].detail


def test_exit_signal_row():
    assert explain(0, exit_signal=signal.SIGUSR1)["exit_signal"].verdict == "SIGUSR1"
    assert "__WALL" in explain(0, exit_signal=signal.SIGUSR1)["exit_signal"].detail
    assert explain(0, exit_signal=0)["exit_signal"].verdict == "none"
    assert explain(0, exit_signal=40)["exit_signal"].verdict == signal_name(40) == "SIGRTMIN+6"
    assert explain(F.VM | F.SIGHAND | F.THREAD, exit_signal=0)["exit_signal"].verdict == "none"
    assert explain(F.PARENT, via="clone", exit_signal=signal.SIGCHLD)["exit_signal"].verdict == "none"


def test_legacy_clone_low_byte_is_explained_as_the_exit_signal():
    """clone()'s low byte is the exit signal: 0x40 is SIGRTMAX, and CLONE_NEWTIME's 0x80 there is
    signal 128 (no signal) and makes no time namespace, which clone3 would."""
    rtmax = explain(0x40, via="clone")
    assert rtmax.flags == CloneFlag(0) and rtmax.exit_signal == 64 and rtmax.refusal is None
    assert rtmax["exit_signal"].verdict == "SIGRTMAX"
    assert rtmax["exit_signal"].detail == "low byte 0x40 is the exit signal: 64 (SIGRTMAX)"
    newtime = explain(CloneFlag.NEWTIME | CloneFlag.VM, via="clone")
    assert newtime.flags == CloneFlag.VM and newtime["ns.time"].verdict == "shared"
    assert newtime["exit_signal"].verdict == "none" and "no time namespace" in newtime["exit_signal"].detail
    assert explain(CloneFlag.NEWTIME, via="clone3")["ns.time"].verdict == "new"
    with pytest.raises(UsageError, match="does not define"):
        explain(0x40, via="clone3")


def test_glibc_sets_are_named_and_explained():
    fork = explain(LIBC_SETS["fork"].flags, exit_signal=signal.SIGCHLD)
    assert fork.libc == ("fork",)
    assert fork["memory"].verdict == "copied" and fork["child_tid_write"].verdict == "written"
    assert fork["child_tid_clear"].verdict == "cleared" and fork["exit_signal"].verdict == "SIGCHLD"

    vfork = explain("vm|vfork", exit_signal=signal.SIGCHLD)
    assert vfork.libc == ("vfork",)
    assert vfork["memory"].verdict == "shared" and vfork["vfork_suspend"].verdict == "suspended"

    spawn = explain("clear_sighand|vm|vfork", exit_signal=signal.SIGCHLD)
    assert spawn.libc == ("posix_spawn",)
    assert spawn["signal_handlers"].verdict == "reset" and spawn["vfork_suspend"].verdict == "suspended"

    thread = explain(LIBC_SETS["pthread_create"].flags, exit_signal=0)
    assert thread.libc == ("pthread_create",)
    v = thread.verdicts
    assert v["thread_group"] == "joined" and v["parent"] == "callers_parent" and v["tls"] == "set"
    shared = ("memory", "fd_table", "fs_info", "signal_handlers", "sysvsem_undo")
    assert all(v[k] == "shared" for k in shared)
    assert v["parent_tid_write"] == "written" and v["child_tid_clear"] == "cleared"
    assert v["exit_signal"] == "none" and v["child_tid_write"] == "none"
    assert thread.refusal is None  # the kernel accepts glibc's own sets


def test_libc_match_is_exact_flags_and_signal():
    assert libc_users(LIBC_SETS["fork"].flags, 0) == ()
    assert libc_users(LIBC_SETS["vfork"].flags | F.FILES, signal.SIGCHLD) == ()
    assert libc_users(LIBC_SETS["pthread_create"].flags, signal.SIGCHLD) == ()
    assert explain("vm|fs").libc == ()


def test_libc_sets_are_the_probe_presets():
    from clonekit.observe import PRESETS

    for name, preset in (("fork", "fork"), ("vfork", "vfork"), ("posix_spawn", "posix_spawn"),
                         ("pthread_create", "thread")):
        assert (LIBC_SETS[name].flags, LIBC_SETS[name].exit_signal) == (
            PRESETS[preset].flags, PRESETS[preset].exit_signal)


def test_refused_sets_say_why():
    e = explain("vm|thread", exit_signal=0)
    assert e.refusal_errno == 22
    assert e.refusal == ("EINVAL: CLONE_THREAD needs CLONE_SIGHAND: threads of one group must share "
                         "signal handlers")
    assert e.to_dict()["kernel"] == {"accepted": False, "errno": "EINVAL", "rule": e.refusal}


def test_unshare_rows_show_the_implied_flags():
    e = explain("newuser", via="unshare")
    assert e.effective_flags == F.NEWUSER | F.THREAD | F.FS
    assert e.exit_signal == 0 and e.libc == ()
    v = e.verdicts
    assert v["ns.user"] == "new" and v["fs_info"] == "copied" and v["ns.mnt"] == "shared"
    assert set(v) <= set(VOCABULARY)
    assert "exit_signal" not in v and "pidfd" not in v
    assert explain("newipc", via="unshare")["sysvsem_undo"].verdict == "new"
    assert "the kernel works with CLONE_FS|CLONE_THREAD|CLONE_NEWUSER" in e.render()
    assert "pid_for_children" in explain("newpid", via="unshare")["ns.pid"].detail


def test_to_dict_is_json_and_complete():
    e = explain(LIBC_SETS["pthread_create"].flags, exit_signal=0)
    data = json.loads(json.dumps(e.to_dict()))
    assert data["flags_value"] == int(LIBC_SETS["pthread_create"].flags)
    assert data["libc"] == ["pthread_create"] and data["via"] == "clone3"
    assert data["exit_signal"] == 0 and data["exit_signal_name"] == "none"
    assert [r["key"] for r in data["rows"]] == list(VOCABULARY)
    assert all(set(r) == {"key", "resource", "verdict", "detail"} for r in data["rows"])
    assert data["kernel"] == {"accepted": True, "errno": None, "rule": None}


def test_render_is_an_aligned_table():
    text = explain("vm|files|sighand").render()
    lines = text.splitlines()
    assert lines[0] == "clone3(CLONE_VM|CLONE_FILES|CLONE_SIGHAND, exit signal SIGCHLD)"
    header, rows = lines[1], lines[2:2 + len(VOCABULARY)]
    col = header.index("VERDICT")
    detail = header.index("DETAIL")
    for line, key in zip(rows, VOCABULARY, strict=True):
        assert line.startswith(key + " ")
        assert line[col - 1] == " " and line[col] != " "
        assert line[detail - 1] == " " and line[detail] != " "
    assert lines[-2] == "libc: no glibc entry point uses this set"
    assert lines[-1] == "kernel: accepts this call here"


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown clone flag"):
        explain("vm|nope")
    with pytest.raises(UsageError, match="via must be"):
        explain("vm", via="vfork")
    with pytest.raises(UsageError, match="exit_signal must be"):
        explain("vm", exit_signal="SIGCHLD")  # type: ignore[arg-type]


def test_public_names_stay_functions_after_their_modules_are_imported():
    """clonekit.explain and clonekit.probe are functions even when clonekit.sharing and
    clonekit.observe were imported first (a submodule named like the function would shadow it)."""
    import subprocess
    import sys

    code = ("import clonekit.sharing, clonekit.observe, clonekit; "
            "print(callable(clonekit.explain), callable(clonekit.probe), "
            "clonekit.explain is clonekit.sharing.explain, clonekit.explain('vm').verdicts['memory'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True", "shared"]
    assert clonekit.Explanation is Explanation


def test_probe_observes_what_explain_says_for_the_glibc_sets():
    native = pytest.importorskip("clonekit._native")
    if not hasattr(native, "probe"):
        pytest.skip("clonekit._native.probe is not built")
    from clonekit.observe import probe

    for libc in LIBC_SETS.values():
        result = probe(libc.flags, exit_signal=libc.exit_signal)
        assert result.mismatches == [], libc.name
        observed = {k: v for k, v in result.observed.items() if v is not None}
        assert len(observed) >= 15
        explained = explain(libc.flags, exit_signal=libc.exit_signal).verdicts
        assert all(explained[k] == v for k, v in observed.items())
