"""``clonekit nsenter`` into a controlled target, checked from inside."""

from __future__ import annotations

import os

import pytest
from ns_helpers import comm, descendant, ns_inode, run_cli, start, stop

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (rootless cases: test_ns_rootless)")


@pytest.fixture(scope="module")
def target():
    """pid of a sleep in new uts, net, ipc, pid and mount namespaces (hostname clonekit-t, with a
    tmpfs at /mnt and its own /proc), in a user namespace mapping root."""
    proc = start(["clonekit", "unshare", "-U", "--map-users=0,0,65536", "--map-groups=0,0,65536",
                  "-u", "-n", "-i",
                  "-p", "-m", "-f", "--mount-proc", "--", "sh", "-c",
                  "hostname clonekit-t; mount -t tmpfs clonekit-nsenter /mnt; mkdir /mnt/wd; cd /mnt/wd;"
                  " exec sleep 60"])
    try:
        pid = descendant(proc.pid, "sleep")
        yield pid
    finally:
        stop(proc)


def test_all_namespaces_pid_really_inside(target):
    proc = run_cli("nsenter", "-t", str(target), "-a", "--", "sh", "-c",
                   "hostname; echo $$; ls /proc | grep -c '^[0-9]'; stat -L -c %i /proc/self/ns/pid")
    assert proc.returncode == 0, proc.stderr
    hostname, pid, nprocs, pid_ns = proc.stdout.split()
    assert hostname == "clonekit-t"
    assert 1 < int(pid) < 100 and int(nprocs) < 10  # a pid of the target's namespace
    assert int(pid_ns) == ns_inode(target, "pid")


def test_no_fork_leaves_the_program_outside_the_pid_namespace(target):
    proc = run_cli("nsenter", "-t", str(target), "-p", "-F", "--",
                   "stat", "-L", "-c", "%i", "/proc/self/ns/pid")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == ns_inode("self", "pid")


def test_individual_kinds_and_files(target):
    proc = run_cli("nsenter", "-t", str(target), "-u", "hostname")
    assert proc.stdout.strip() == "clonekit-t"
    proc = run_cli("nsenter", f"--uts=/proc/{target}/ns/uts", "--", "hostname")
    assert proc.stdout.strip() == "clonekit-t"
    proc = run_cli("nsenter", f"-u/proc/{target}/ns/uts", "hostname")  # util-linux's attached form
    assert proc.stdout.strip() == "clonekit-t", proc.stderr
    proc = run_cli("nsenter", "-t", str(target), "-un", "--", "hostname")  # combined short flags
    assert proc.stdout.strip() == "clonekit-t", proc.stderr
    proc = run_cli("nsenter", "-t", str(target), "-n", "--", "cat", "/proc/net/dev")
    assert [line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:]] == ["lo"]


def test_mount_root_and_wd_of_target(target):
    proc = run_cli("nsenter", "-t", str(target), "-m", "-p", "-r", "-w", "--", "sh", "-c",
                   "pwd; grep -c clonekit-nsenter /proc/self/mountinfo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/mnt/wd", "1"]
    proc = run_cli("nsenter", "-t", str(target), "-a", "-r", "-w", "-S", "1000", "-G", "1000", "--",
                   "sh", "-c", "pwd; id -u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/mnt/wd", "1000"]  # root and cwd changed before dropping root


def test_user_namespace_credentials(target):
    proc = run_cli("nsenter", "-t", str(target), "-U", "--", "sh", "-c", "id -u; id -g")
    assert proc.stdout.split() == ["0", "0"], proc.stderr
    proc = run_cli("nsenter", "-t", str(target), "-U", "-S", "1000", "-G", "1000", "--",
                   "sh", "-c", "id -u; id -g")
    assert proc.stdout.split() == ["1000", "1000"], proc.stderr
    proc = run_cli("nsenter", "-t", str(target), "-U", "--preserve-credentials", "--", "id", "-u")
    assert proc.stdout.split() == ["0"], proc.stderr  # uid 0 outside is uid 0 inside this map


def test_exit_status_passed_through(target):
    assert run_cli("nsenter", "-t", str(target), "-p", "--", "sh", "-c", "exit 5").returncode == 5
    assert run_cli("nsenter", "-t", str(target), "-u", "--", "sh", "-c", "exit 6").returncode == 6


def test_errors_explain(target, tmp_path):
    proc = run_cli("nsenter", "-t", "4194304", "-n", "true")
    assert proc.returncode == 1 and "no process with pid 4194304" in proc.stderr
    plain = tmp_path / "plain"
    plain.write_text("")
    proc = run_cli("nsenter", f"--net={plain}", "true")
    assert proc.returncode == 1 and "is not a namespace file" in proc.stderr
    proc = run_cli("nsenter", f"--net=/proc/{target}/ns/uts", "true")
    assert proc.returncode == 1 and "is a uts namespace, not a net namespace" in proc.stderr
    proc = run_cli("nsenter", "-m", "true")
    assert proc.returncode == 1 and "needs a target process" in proc.stderr
    proc = run_cli("nsenter", "-t", str(os.getpid()), "-U", "true")
    assert proc.returncode == 1 and "already in that user namespace" in proc.stderr
    for p in (proc,):
        assert "Traceback" not in p.stderr
    assert comm(target) == "sleep"


def test_enter_a_target_whose_root_has_no_python(tmp_path):
    """After chroot to the target's root, clonekit's own library is out of reach: whatever the
    fork needs must be imported before."""
    import shutil

    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    proc = start(["unshare", "-p", "-f", "--kill-child", "-R", str(root), "--",
                  "/bin/busybox", "sleep", "60"])
    try:
        pid = descendant(proc.pid, "busybox")
        out = run_cli("nsenter", "-t", str(pid), "-p", "-r", "--",
                      "/bin/busybox", "sh", "-c", "echo $$; ls /")
        assert out.returncode == 0, out.stderr
        inner_pid, listing = out.stdout.split()
        assert int(inner_pid) > 1 and listing == "bin"
    finally:
        stop(proc)
