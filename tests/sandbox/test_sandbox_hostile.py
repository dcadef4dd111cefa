"""Hostile programs, each contained and reported: a fork bomb stops at ``pids``, a memory hog
is OOM-killed, an endless loop ends at ``timeout``, a flood of output is cut at
``output_limit``, ptrace/mount/new user namespaces are refused by the seccomp filter (with the
errno), and the container escapes of tests/runtime/test_escapes.py fail in a sandbox too."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import subprocess
import tempfile
import termios
import uuid

import pytest
from sb_helpers import group_dirs, group_tasks, last_json, py

from clonekit.sandbox.profile import DENIED

FORK_UNTIL_REFUSED = r"""
import os, time, json
made = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(json.dumps({"made": made, "errno": e.errno})); break
    if pid == 0:
        time.sleep(60); os._exit(0)
    made += 1
"""

SYSCALLS = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    return 0 if r == 0 else ctypes.get_errno()
print(json.dumps({
    "ptrace": call("ptrace", 0, 0, 0, 0),                          # PTRACE_TRACEME
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "unshare_user": call("unshare", 0x10000000),                   # CLONE_NEWUSER
    "unshare_net": call("unshare", 0x40000000),
    "setns": call("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0),
    "keyctl": call("syscall", 250, 1, 0),                          # keyctl(KEYCTL_JOIN_SESSION_KEYRING)
    "clone3": call("syscall", 435, 0, 0),
    "chroot": call("chroot", b"/tmp"),
}))
"""


def test_fork_bomb_stops_at_pids(make, top) -> None:
    sb = make(pids=16, timeout=20)
    r = sb.run(py(FORK_UNTIL_REFUSED))
    seen = last_json(r.stdout)
    assert isinstance(seen, dict)
    assert seen["errno"] == errno.EAGAIN and 10 <= seen["made"] < 16, seen  # python itself counts
    assert r.returncode == 0 and not r.timed_out
    assert group_tasks(top) == []  # its children went with it (pid 1 of their namespace)
    # a shell fork bomb whose first shell stays (spinning): the kernel refuses its forks at the
    # limit (pids.events counts them) until the timeout ends it all
    r = make(pids=16, timeout=1).run(["bash", "-c", ":(){ :|:& };:; while :; do :; done"])
    assert r.timed_out and r.signal == 9
    refused = [_pids_max_events(d) for d in group_dirs(top) if d.count("/") > 6]
    assert refused and max(refused) > 0, refused
    assert group_tasks(top) == []


def _pids_max_events(group: str) -> int:
    try:
        with open(f"{group}/pids.events") as f:
            return int(f.read().split()[1])
    except FileNotFoundError:
        return 0


def test_memory_hog_is_oom_killed(make) -> None:
    sb = make(memory="64m")
    r = sb.run(py("x = bytearray(256 << 20); print('survived')"))
    assert r.oom_killed and r.signal == 9 and r.stdout == b""
    assert r.peak_memory is not None and 48 << 20 <= r.peak_memory <= 64 << 20
    small = sb.run(py("x = bytearray(8 << 20); print('fine')"))
    assert small.stdout == b"fine\n" and not small.oom_killed  # the group's next run starts clean


def test_endless_loop_is_killed_at_the_timeout(make) -> None:
    r = make(timeout=0.5, cpus=0.5).run(["/bin/sh", "-c", "while :; do :; done"])
    assert r.timed_out and r.signal == 9 and r.returncode == -9
    assert 0.5 <= r.wall_time < 5
    assert 0.1 < r.cpu_time <= 0.5 * r.wall_time + 0.1  # half a CPU at most
    r = make().run(["sleep", "5"], timeout=0.2)  # run()'s own timeout
    assert r.timed_out and r.wall_time < 3


def test_output_beyond_the_limit_is_cut(make) -> None:
    sb = make(output_limit=1000)
    r = sb.run(["yes"])
    assert r.output_truncated and r.stdout == b"y\n" * 500 and r.signal == 9
    r = sb.run(["/bin/sh", "-c", "head -c 999 /dev/zero"])
    assert not r.output_truncated and len(r.stdout) == 999 and r.returncode == 0


def test_no_network_beyond_loopback(make) -> None:
    code = ("import socket, json, os; out = {'ifaces': sorted(os.listdir('/sys/class/net')) "
            "if os.path.isdir('/sys/class/net') else None}\n"
            "for host in ('192.0.2.1', '10.0.0.1', '8.8.8.8'):\n"
            "    try:\n        socket.create_connection((host, 53), timeout=1); out[host] = 0\n"
            "    except OSError as e:\n        out[host] = e.errno\n"
            "print(json.dumps(out))")
    for network in ("none", "loopback"):
        seen = last_json(make(network=network).run(py(code)).stdout)
        assert isinstance(seen, dict)
        assert seen["ifaces"] is None  # no /sys at all
        assert {seen[h] for h in ("192.0.2.1", "10.0.0.1", "8.8.8.8")} == {errno.ENETUNREACH}, seen


def test_writes_outside_tmp_fail(plain) -> None:
    code = ("import json, os\nout = {}\n"
            "for p in ('/f', '/etc/passwd', '/usr/bin/true', '/usr/lib/x', '/proc/sys/vm/drop_caches',\n"
            "          '/dev/x'):\n"
            "    try:\n        open(p, 'a').close(); out[p] = 0\n"
            "    except OSError as e:\n        out[p] = e.errno\n"
            "print(json.dumps(out))")
    seen = last_json(plain.run(py(code)).stdout)
    assert isinstance(seen, dict)
    # nobody may not write the host's files anyway (EACCES comes first); where it may, the
    # mount is read-only
    assert seen == {"/f": errno.EROFS, "/etc/passwd": errno.EACCES, "/usr/bin/true": errno.EACCES,
                    "/usr/lib/x": errno.EROFS, "/proc/sys/vm/drop_caches": errno.EACCES,
                    "/dev/x": errno.EROFS}


def test_as_uid_0_the_proc_sysctls_are_read_only(make) -> None:
    r = make(uid=0).run(["/bin/sh", "-c", "echo 1 > /proc/sys/vm/drop_caches; echo x > /etc/x; "
                         "echo x > /dev/x; echo x > /x; echo x > /dev/null && echo null; "
                         "cat /etc/shadow > /dev/null && echo read"])
    assert r.stderr.count(b"Read-only file system") == 4, r.stderr
    assert r.stdout == b"null\nread\n"  # uid 0 without capabilities: its own files still open (documented)


def test_seccomp_denies_with_the_errno(make) -> None:
    seen = last_json(make().run(py(SYSCALLS)).stdout)
    assert seen == {"ptrace": errno.EPERM, "mount": errno.EPERM, "unshare_user": errno.EPERM,
                    "unshare_net": errno.EPERM, "setns": errno.EPERM, "keyctl": errno.EPERM,
                    "clone3": errno.ENOSYS, "chroot": errno.EPERM}
    # the proof that the filter is what refuses them: without it, nobody may make a user namespace
    unfiltered = last_json(make(seccomp=None).run(py(SYSCALLS)).stdout)
    assert isinstance(unfiltered, dict) and unfiltered["unshare_user"] == 0
    assert {"ptrace", "mount", "unshare"} <= set(DENIED)


@pytest.fixture
def escape(make, helper_dir):
    sb = make(ro_binds=[f"{helper_dir}:/opt/escape"], uid=0)

    def attack(*args: str, stdin: int | None = None) -> dict[str, str]:
        r = sb.run(["/opt/escape/escape_helper", *args], stdin=stdin)
        steps = {}
        for line in r.stdout.decode().splitlines():
            step, sep, what = line.partition(": ")
            if sep:
                steps[step] = what.split()[0]
        return steps

    return attack


def test_the_runtime_escapes_fail(escape, helper_dir) -> None:
    """The attacks of tests/runtime/test_escapes.py, run as uid 0 (the strongest user the
    sandbox offers): each is refused with the errno, and nothing of it took effect."""
    assert escape("cgroup-v1", "/tmp/cg", "none,name=ck_escape")["mount"] == "EPERM"
    assert escape("cgroup-v1", "/tmp/cg", "memory")["mount"] == "EPERM"
    assert escape("proc", "/tmp/p")["mount"] == "EPERM"
    assert escape("umount", "/proc")["umount"] == "EPERM"
    assert escape("remount-rw", "/usr")["remount"] == "EPERM"
    assert escape("mknod-read", "/tmp/kmsg", "1", "11")["mknod"] == "EPERM"
    secret_dir = tempfile.mkdtemp(prefix="clonekit-secret-", dir="/usr/local")
    try:
        secret = os.path.join(secret_dir, "secret")
        with open(secret, "w") as f:
            f.write(f"host-secret-{uuid.uuid4().hex}\n")
        kind, handle = subprocess.run([f"{helper_dir}/escape_helper", "handle", secret], check=True,
                                      capture_output=True, text=True).stdout.split()
        seen = escape("shocker", "/usr", kind, handle)
        assert seen.get("open mount fd") == "OK" and seen.get("open_by_handle_at") == "EPERM", seen
    finally:
        shutil.rmtree(secret_dir)
    # the caller's terminal as the sandbox's stdin: TIOCSTI must not push a byte into it
    master, slave = os.openpty()
    try:
        seen = escape("tiocsti", stdin=slave)
        queued = struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(master)
        os.close(slave)
    assert seen.get("tiocsti fd0") in ("EPERM", "EIO") and queued == 0, seen
    # no controlling terminal, a session of its own
    assert seen.get("open /dev/tty") == "ENXIO" and seen.get("tty_nr") == "0", seen
    assert seen.get("sid") == seen.get("pid") == "1", seen


@pytest.fixture(params=["prebuilt", "per-run"])
def tree_layout(request, monkeypatch) -> str:
    """Both ways to the mount tree: cloned from one built ahead, and laid out per run."""
    from clonekit.sandbox import prebuilt

    monkeypatch.setattr(prebuilt, "ENABLED", request.param == "prebuilt")
    return request.param


def test_dev_nodes_are_the_hosts_but_their_inodes_stay_unchanged(make, tree_layout) -> None:
    """/dev/null & co. are binds of the host's nodes: a uid 0 sandbox owns the host's root-owned
    nodes, so unless their binds are read-only it could chmod the host's /dev/tty or touch its
    /dev/null.  Writing and reading them must still work."""
    before = {name: os.stat(f"/dev/{name}") for name in ("null", "tty", "zero")}
    script = ("for n in null tty zero; do chmod 600 /dev/$n && echo chmod $n; "
              "touch -d 2001-01-01 /dev/$n && echo touch $n; done; "
              "echo x > /dev/null && head -c 3 /dev/zero | wc -c")
    r = make(uid=0).run(["/bin/sh", "-c", script])
    try:
        after = {name: os.stat(f"/dev/{name}") for name in before}
        assert r.stdout == b"3\n", (r.stdout, r.stderr)
        # (touch reports opening /dev/tty first: ENXIO, the sandbox has no controlling terminal)
        assert r.stderr.count(b"Read-only file system") == 5, r.stderr
        for name, st in before.items():
            assert (after[name].st_mode, after[name].st_mtime) == (st.st_mode, st.st_mtime), name
    finally:
        for name, st in before.items():  # put back what a failing run changed
            os.chmod(f"/dev/{name}", st.st_mode & 0o7777)
            os.utime(f"/dev/{name}", ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_stdout_passed_out_of_the_sandbox_does_not_hold_the_run(make) -> None:
    """The command hands its stdout to a process outside (SCM_RIGHTS over an abstract unix
    socket of the host's network namespace) and exits: the run ends with what it wrote, rather
    than waiting for an EOF the outsider may never give."""
    import socket
    import threading

    from clonekit.sandbox.result import Result

    name = f"clonekit-sb-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    server.bind("\0" + name)
    server.settimeout(20)  # a bound for a failing run only
    server.listen()
    held: list[int] = []
    got: list[object] = []

    def outsider() -> None:
        conn, _ = server.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1, 1)
            held.extend(fds)

    code = ("import array, socket, sys\nprint('sent', flush=True)\n"
            "s = socket.socket(socket.AF_UNIX); s.connect('\\0' + sys.argv[1])\n"
            "s.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [1]))])\n")
    sb = make(network="host", timeout=30)
    taker = threading.Thread(target=outsider)
    runner = threading.Thread(target=lambda: got.append(sb.run(["python3", "-c", code, name])))
    taker.start()
    runner.start()
    try:
        taker.join()
        runner.join(10)
        assert not runner.is_alive(), "the run waits for the stdout the outsider holds"
        r = got[0]
        assert isinstance(r, Result)
        assert r.stdout == b"sent\n" and r.returncode == 0 and not r.timed_out, r
        assert len(held) == 1 and os.fstat(held[0]).st_mode & 0o170000 == 0o010000  # a pipe
    finally:
        for fd in held:
            os.close(fd)
        runner.join()
        server.close()


def test_as_uid_0_procs_host_wide_files_are_masked(make, tree_layout) -> None:
    """What runc masks in /proc shows the host, not the sandbox: /proc/keys the host's keyrings
    (root's own, readable by uid 0 without capabilities), /proc/timer_list the host's timers.  As
    uid 0 the sandbox reads them empty; the rest of /proc still works."""
    with open("/proc/keys") as f:
        assert f.read()  # the host has keyrings uid 0 may view: there is something to hide
    r = make(uid=0).run(["/bin/sh", "-c", "wc -c < /proc/keys; wc -c < /proc/timer_list; "
                         "ls /proc/acpi 2>/dev/null | wc -l; cat /proc/self/comm"])
    assert r.stdout.split() == [b"0", b"0", b"0", b"cat"], (r.stdout, r.stderr)
