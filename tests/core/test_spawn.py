"""clonekit.spawn(): clone3(VM|VFORK|CLEAR_SIGHAND|PIDFD|flags) + execve, no Python in the child."""

from __future__ import annotations

import errno
import os
import signal
import subprocess

import pytest

import clonekit
from clonekit import CloneFlag as F


def output_of(argv, **kw) -> str:
    r, w = os.pipe()
    try:
        task = clonekit.spawn(argv, stdout=w, **kw)
    finally:
        os.close(w)
    with task, os.fdopen(r) as f:
        out = f.read()
        assert task.wait(timeout=10) == 0
    return out


def test_runs_a_program_with_args_and_passes_the_exit_status():
    with clonekit.spawn(["/bin/sh", "-c", "exit 42"]) as task:
        assert task.wait(timeout=10) == 42


def test_path_search_env_and_cwd(tmp_path):
    assert output_of(["sh", "-c", 'echo "$FOO $(pwd)"'], env={"FOO": "bar", "PATH": "/usr/bin:/bin"},
                     cwd=tmp_path) == f"bar {tmp_path}\n"


def test_new_namespaces_seen_from_inside():
    out = output_of(["/bin/sh", "-c", "hostname ck-spawn; hostname; echo $$; readlink /proc/self/ns/net"],
                    flags=F.NEWUTS | F.NEWPID | F.NEWNS | F.NEWIPC | F.NEWNET)
    host, pid, net = out.split()
    assert host == "ck-spawn" and os.uname().nodename != "ck-spawn"
    assert pid == "1"
    assert net != os.readlink("/proc/self/ns/net")


def test_missing_program_raises_filenotfound_in_the_parent():
    with pytest.raises(FileNotFoundError) as info:
        clonekit.spawn(["/nonexistent/program"])
    assert info.value.filename == "/nonexistent/program"
    with pytest.raises(FileNotFoundError):
        clonekit.spawn(["clonekit-no-such-program-anywhere"])


def test_not_executable_raises_permission_error(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError) as info:
        clonekit.spawn([str(script)])
    assert info.value.errno == errno.EACCES


def test_bad_cwd_raises_with_the_directory_named(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        clonekit.spawn(["/bin/true"], cwd=tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")


def test_fds_are_closed_except_stdio_and_pass_fds():
    r, w = os.pipe()
    os.set_inheritable(r, True)  # even an inheritable fd must not leak by default
    try:
        listed = output_of(["/bin/ls", "/proc/self/fd"], pass_fds=[w])
    finally:
        os.close(r)
        os.close(w)
    fds = {int(x) for x in listed.split()}
    assert r not in fds
    assert w in fds
    assert fds <= {0, 1, 2, 3, w}  # 3: ls's own directory fd


def test_ignored_signals_are_restored_and_handlers_reset():
    signal.signal(signal.SIGUSR1, lambda *a: None)
    try:
        out = output_of(["/bin/sh", "-c", "grep -E '^Sig(Ign|Cgt)' /proc/self/status"])
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    fields = dict(line.split(":") for line in out.splitlines())
    ignored = int(fields["SigIgn"], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))  # Python ignores SIGPIPE; the child must not


def test_signal_mask_is_not_inherited_from_spawn_internals():
    out = output_of(["/bin/sh", "-c", "grep SigBlk /proc/self/status"])
    assert int(out.split()[1], 16) == 0


def test_kill_through_the_pidfd():
    task = clonekit.spawn(["/bin/sleep", "30"])
    with task:
        assert task.poll() is None
        task.kill()
        assert task.wait(timeout=10) == -signal.SIGKILL


def test_flags_that_would_share_state_with_the_parent_are_refused():
    for flags in (F.FILES, F.FS, F.THREAD | F.SIGHAND | F.VM):
        with pytest.raises(clonekit.CloneRefused):
            clonekit.spawn(["/bin/true"], flags=flags)


def test_bad_argv_is_a_usage_error():
    with pytest.raises(clonekit.UsageError):
        clonekit.spawn("ls")  # type: ignore[arg-type]
    with pytest.raises(clonekit.UsageError):
        clonekit.spawn([])


def test_same_result_as_subprocess():
    ours = output_of(["/bin/sh", "-c", "id -u; umask; echo $0"])
    theirs = subprocess.run(["/bin/sh", "-c", "id -u; umask; echo $0"], capture_output=True, text=True).stdout
    assert ours == theirs
