"""clonekit.clone(): a Python child made by clone3 with CPython's fork protocol."""

from __future__ import annotations

import os
import signal
import struct

import pytest

import clonekit
from clonekit import CloneFlag as F


def run_in_child(flags, body, *, exit_signal=signal.SIGCHLD, **kw):
    """clone() a child that runs body() and exits 0 if it returns True; returns the Task.
    The child never returns into pytest, whatever happens in it."""
    task = clonekit.clone(flags, exit_signal=exit_signal, **kw)
    if task == 0:
        ok = False
        try:
            ok = bool(body())
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(0 if ok else 1)
    return task


def child_reports(flags, body, **kw) -> bytes:
    """clone() a child that writes body()'s bytes to a pipe; returns them (child reaped)."""
    r, w = os.pipe()
    task = clonekit.clone(flags, **kw)
    if task == 0:
        try:
            os.close(r)
            os.write(w, body())
        finally:
            os._exit(0)
    os.close(w)
    with task, os.fdopen(r, "rb") as f:
        data = f.read()
        assert task.wait(timeout=10) == 0
    return data


def test_child_gets_zero_parent_gets_a_task_holding_a_pidfd():
    r, w = os.pipe()
    task = clonekit.clone()
    if task == 0:
        try:
            os.write(w, str(os.getpid()).encode())
        finally:
            os._exit(7)
    os.close(w)
    with task:
        assert isinstance(task, clonekit.Task)
        assert os.read(r, 32).decode() == str(task.pid)
        assert os.readlink(f"/proc/self/fd/{task.fileno()}") == "anon_inode:[pidfd]"
        assert task.wait() == 7
    os.close(r)


def test_child_runs_getpid_threads_subprocess_raise_signal():
    def body():
        import subprocess
        import threading

        seen = []
        t = threading.Thread(target=lambda: seen.append(threading.get_native_id()))
        t.start()
        t.join()
        out = subprocess.run(["/bin/echo", "hi"], capture_output=True, check=True).stdout
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
        signal.raise_signal(signal.SIGUSR1)
        return (
            out == b"hi\n"
            and seen and seen[0] != os.getpid()
            and threading.get_native_id() == os.getpid()  # glibc's tid word was rewritten
            and got == [1]
        )

    with run_in_child(0, body) as task:
        assert task.wait(timeout=30) == 0


def test_child_os_abort_ends_it_with_sigabrt():
    task = clonekit.clone()
    if task == 0:
        import faulthandler

        faulthandler.disable()  # pytest's crash dump would be noise: the abort is the point
        os.abort()
    with task:
        assert task.wait(timeout=10) == -signal.SIGABRT


def test_namespaces_are_really_new():
    kinds = ["uts", "ipc", "net", "mnt", "cgroup", "user"]
    data = child_reports(F.NEWUTS | F.NEWIPC | F.NEWNET | F.NEWNS | F.NEWCGROUP | F.NEWUSER,
                         lambda: " ".join(str(os.stat(f"/proc/self/ns/{k}").st_ino) for k in kinds).encode())
    theirs = [int(x) for x in data.split()]
    mine = [os.stat(f"/proc/self/ns/{k}").st_ino for k in kinds]
    assert all(a != b for a, b in zip(mine, theirs, strict=True))


def test_newpid_child_is_pid_1_and_can_make_children():
    def body():
        import subprocess

        child = subprocess.run(["/bin/sh", "-c", "echo $$"], capture_output=True).stdout
        return f"{os.getpid()} {int(child)}".encode()

    assert child_reports(F.NEWPID, body).split() == [b"1", b"2"]


def test_newuts_hostname_is_private_to_the_child():
    before = os.uname().nodename

    def body():
        import socket

        socket.sethostname("clonekit-child")
        return os.uname().nodename.encode()

    assert child_reports(F.NEWUTS, body) == b"clonekit-child"
    assert os.uname().nodename == before


def test_newtime_child_sees_its_own_clock_offsets():
    # offsets of a new time namespace are set before its first task; with clone3 it is the
    # child itself, so its clock equals ours (offset 0) but the namespace is new
    data = child_reports(F.NEWTIME, lambda: str(os.stat("/proc/self/ns/time").st_ino).encode())
    assert int(data) != os.stat("/proc/self/ns/time").st_ino


def test_clone_files_child_opens_an_fd_the_parent_then_has(tmp_path):
    target = tmp_path / "seen-by-parent"
    target.write_text("opened in the child")
    r, w = os.pipe()
    task = clonekit.clone(F.FILES)
    if task == 0:
        try:
            os.write(w, struct.pack("i", os.open(target, os.O_RDONLY)))
        finally:
            os._exit(0)
    with task:
        assert task.wait(timeout=10) == 0
    (fd,) = struct.unpack("i", os.read(r, 4))
    os.close(w)
    os.close(r)
    try:
        assert os.read(fd, 100) == b"opened in the child"
    finally:
        os.close(fd)


def test_clone_fs_child_chdir_moves_the_parent(tmp_path):
    here = os.getcwd()
    try:
        with run_in_child(F.FS, lambda: os.chdir(tmp_path) or True) as task:
            assert task.wait(timeout=10) == 0
        assert os.getcwd() == str(tmp_path)
    finally:
        os.chdir(here)


def test_clear_sighand_resets_handlers_in_the_child():
    old = signal.signal(signal.SIGUSR2, lambda *a: None)
    try:
        # the kernel reset the handler; Python still believes its own, so read the kernel's view
        data = child_reports(F.CLEAR_SIGHAND, lambda: _sigcgt().encode())
        mask = int(data, 16)
        assert not mask & (1 << (signal.SIGUSR2 - 1))
        assert int(_sigcgt(), 16) & (1 << (signal.SIGUSR2 - 1))
    finally:
        signal.signal(signal.SIGUSR2, old)


def _sigcgt() -> str:
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("SigCgt:"))


def test_other_exit_signal_is_delivered_and_reaped():
    got = []
    old = signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
    try:
        task = clonekit.clone(exit_signal=signal.SIGUSR1)
        if task == 0:
            os._exit(3)
        with task:
            assert task.wait(timeout=10) == 3
        signal.raise_signal(signal.SIGURG)  # give Python a chance to run handlers
        assert got == [1]
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_clone_parent_child_is_a_sibling_and_still_held():
    # a throwaway caller makes the sibling; we are the sibling's real parent and reap it,
    # after which the caller learns its exit status through the pidfd (Linux 6.15+)
    r, w = os.pipe()
    task = clonekit.clone()
    if task == 0:
        code = -100
        try:
            sib = clonekit.clone(F.PARENT, exit_signal=0)
            if sib == 0:
                os._exit(5)
            os.write(w, struct.pack("i", sib.pid))
            code = sib.wait(timeout=10)
            sib.close()
        finally:
            os.write(w, struct.pack("i", code))
            os._exit(0)
    os.close(w)
    with task:
        (sib_pid,) = struct.unpack("i", os.read(r, 4))
        assert os.waitid(os.P_PID, sib_pid, os.WEXITED).si_status == 5  # ours to reap
        (code,) = struct.unpack("i", os.read(r, 4))
        assert task.wait(timeout=10) == 0
    os.close(r)
    assert code == 5


def test_into_cgroup_places_the_child_from_birth(cgroup2_dir):
    def own_cgroup() -> bytes:
        with open("/proc/self/cgroup", "rb") as f:
            return f.read()

    data = child_reports(0, own_cgroup, cgroup=cgroup2_dir)
    rel = "/" + os.path.relpath(cgroup2_dir, "/sys/fs/cgroup/unified")
    assert f"0::{rel}\n" in data.decode()


def test_vm_thread_settls_are_refused_with_a_pointer_to_spawn_and_probe():
    for flags in (F.VM, F.VFORK, F.THREAD | F.SIGHAND | F.VM, F.SETTLS):
        with pytest.raises(clonekit.CloneRefused, match=r"spawn.*probe"):
            clonekit.clone(flags)


def test_kernel_refusal_carries_errno_and_rule():
    with pytest.raises(clonekit.CloneFlagsError) as info:
        clonekit.clone(F.NEWNS | F.FS)
    assert info.value.errno == 22
    assert "CLONE_FS" in str(info.value)


def test_bad_input_is_a_clear_usage_error():
    with pytest.raises(clonekit.UsageError, match="unknown clone flag"):
        clonekit.clone("newfoo")
    with pytest.raises(clonekit.UsageError, match="exit_signal"):
        clonekit.clone(exit_signal="SIGCHLD")  # type: ignore[arg-type]
    with pytest.raises(clonekit.UsageError, match="cgroup2 directory"):
        clonekit.clone(cgroup="/nonexistent/cgroup")
