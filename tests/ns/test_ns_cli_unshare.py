"""``clonekit unshare``: each scenario is checked from inside the new namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from ns_helpers import (
    CLONEKIT,
    ENV,
    children,
    descendant,
    in_child,
    mounts_with,
    ns_inode,
    run_cli,
    start,
    stop,
    wait_for,
)

from clonekit import ns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (rootless cases: test_ns_rootless)")


def sh(script: str, *opts: str) -> tuple[int, str, str]:
    proc = run_cli("unshare", *opts, "--", "sh", "-c", script)
    return proc.returncode, proc.stdout, proc.stderr


def test_uts_hostname_only_inside():
    host = socket.gethostname()
    rc, out, err = sh("hostname clonekit-inside; hostname", "-u")
    assert (rc, out.strip()) == (0, "clonekit-inside"), err
    assert socket.gethostname() == host


def test_pid_namespace_with_fork_and_mount_proc():
    rc, out, err = sh("echo $$; readlink /proc/self; ls /proc | grep -c '^[0-9]'", "-f", "-p", "--mount-proc")
    assert rc == 0, err
    pid, self_link, nprocs = out.split()
    assert pid == "1"
    assert int(self_link) > 1 and int(nprocs) <= 3  # sh, readlink/ls, grep: only our own processes


def test_every_namespace_is_new_inside():
    script = "for k in mnt uts ipc net pid user cgroup time; do stat -L -c %i /proc/self/ns/$k; done"
    rc, out, err = sh(script, "-f", "-m", "-u", "-i", "-n", "-p", "-U", "-C", "-T", "-r")
    assert rc == 0, err
    inside = [int(x) for x in out.split()]
    outside = [ns_inode("self", k) for k in ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")]
    assert all(a != b for a, b in zip(inside, outside, strict=True)), (inside, outside)


def test_mounts_stay_inside_and_propagation_is_private(tmp_path):
    target = tmp_path / "clonekit-mnt"
    target.mkdir()
    rc, out, err = sh(f"mount -t tmpfs clonekit-inner {target} && "
                      "grep -c clonekit-inner /proc/self/mountinfo;"
                      " awk '$5==\"/\"' /proc/self/mountinfo", "-m")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "1"
    assert "shared:" not in lines[1]  # the default propagation is private, like util-linux
    assert not mounts_with("clonekit-inner")


def test_propagation_unchanged_keeps_shared_root():
    rc, out, _ = sh("awk '$5==\"/\"' /proc/self/mountinfo", "-m", "--propagation", "unchanged")
    with open("/proc/self/mountinfo") as f:
        outside = next(line for line in f if line.split()[4] == "/")
    assert rc == 0
    assert ("shared:" in out) == ("shared:" in outside)
    rc, out, _ = sh("awk '$5==\"/\"' /proc/self/mountinfo", "-m", "--propagation", "slave")
    assert "master:" in out or "shared:" not in outside


@pytest.mark.parametrize(("opts", "uid_map", "gid_map", "setgroups"), [
    (["-r"], "0 0 1", "0 0 1", "deny"),
    (["-c"], "0 0 1", "0 0 1", "deny"),
    (["--map-user=1000", "--map-group=1000"], "1000 0 1", "1000 0 1", "deny"),
    (["--map-users=100000,0,65536", "--map-groups=0:100000:65536"], "0 100000 65536", "0 100000 65536",
     "allow"),
    (["-r", "--setgroups=allow"], "0 0 1", "0 0 1", "allow"),
])
def test_id_maps(opts, uid_map, gid_map, setgroups):
    rc, out, err = sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups", *opts)
    assert rc == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines == [uid_map, gid_map, setgroups]


def test_setuid_setgid_inside_mapped_range():
    rc, out, err = sh("id -u; id -g", "--map-users=0,0,65536", "--map-groups=0,0,65536",
                      "-S", "1000", "-G", "1000")
    assert rc == 0, err
    assert out.split() == ["1000", "1000"]


def test_time_offsets_seen_inside():
    rc, out, err = sh("cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime", "-T", "-f",
                      "--monotonic", "1000", "--boottime", "86400")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["monotonic", "1000", "0"]
    assert lines[1].split() == ["boottime", "86400", "0"]
    with open("/proc/uptime") as f:
        outside = float(f.read().split()[0])
    assert 86390 < float(lines[2]) - outside < 86410
    rc, out, err = sh("cat /proc/self/timens_offsets", "-T", "--monotonic", "-60")  # no fork: exec enters it
    assert rc == 0, err
    assert out.split()[:3] == ["monotonic", "-60", "0"]


def test_exit_status_passed_through():
    assert sh("exit 7", "-f")[0] == 7
    assert sh("exit 9", "-u")[0] == 9  # no fork: the program replaced clonekit
    assert sh("kill -TERM $$", "-f")[0] == 128 + signal.SIGTERM


def test_missing_program_is_127_with_its_name():
    proc = run_cli("unshare", "-f", "--", "/nonexistent/clonekit-prog")
    assert proc.returncode == 127
    assert "/nonexistent/clonekit-prog" in proc.stderr and "No such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_root_and_wd(tmp_path):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "work").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    proc = run_cli("unshare", "-R", str(root), "-w", "/work", "--", "/bin/busybox", "sh", "-c", "pwd; ls /")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/work", "bin", "work"]
    proc = run_cli("unshare", "-w", str(root / "work"), "--", "pwd")
    assert proc.stdout.strip() == str(root / "work")


def test_kill_child_when_clonekit_dies():
    proc = start(["clonekit", "unshare", "--kill-child", "--", "sleep", "60"])
    try:
        sleeper = descendant(proc.pid, "sleep")
        os.kill(proc.pid, signal.SIGKILL)  # clonekit itself (our child) dies...
        wait_for(lambda: _is_zombie_or_gone(sleeper), what="the child to be killed")
    finally:
        stop(proc)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_keep_caps_gives_ambient_capabilities():
    script = "grep CapAmb /proc/self/status"
    _, without, _ = sh(script, "-r", "-S", "0")
    rc, with_caps, err = sh(script, "-r", "--keep-caps")
    assert rc == 0, err
    assert int(without.split()[1], 16) == 0
    assert int(with_caps.split()[1], 16) != 0


def test_persist_uts_net_and_pid_then_enter_them(scratch):
    uts, net, pid = (os.path.join(scratch, n) for n in ("uts", "net", "pid"))
    rc, _, err = sh("hostname clonekit-persisted", "-f", f"--uts={uts}", f"--net={net}", f"--pid={pid}")
    assert rc == 0, err
    # nothing runs in them any more; the bind mounts keep them alive
    assert ns.Namespace.from_path(uts).kind is ns.Kind.UTS
    assert ns.Namespace.from_path(pid, "pid") != ns.Namespace.of("self", "pid")
    proc = run_cli("nsenter", f"--uts={uts}", "--", "hostname")
    assert proc.stdout.strip() == "clonekit-persisted", proc.stderr
    rows = {(r.type, r.ns): r for r in ns.list_namespaces(["uts", "net"])}
    row = rows[("uts", ns.Namespace.from_path(uts).inode)]
    assert row.nprocs == 0 and row.nsfs == uts
    for path in (uts, net, pid):
        ns.release(path, remove=True)
        assert not os.path.exists(path)
    assert not mounts_with(scratch + "/")


def test_persist_user_ipc_cgroup_and_time(scratch):
    files = {k: os.path.join(scratch, k) for k in ("user", "ipc", "cgroup", "time")}
    opts = [f"--{k}={path}" for k, path in files.items()]
    rc, out, err = sh("stat -L -c %i /proc/self/ns/user /proc/self/ns/ipc /proc/self/ns/cgroup "
                      "/proc/self/ns/time", "-r", "-f", "--monotonic", "5", *opts)
    assert rc == 0, err
    inside = [int(x) for x in out.split()]
    assert [ns.Namespace.from_path(files[k], k).inode for k in files] == inside
    assert ns.Namespace.from_path(files["user"]).owner_uid == 0
    proc = run_cli("nsenter", f"--time={files['time']}", "--", "cat", "/proc/self/timens_offsets")
    assert proc.stdout.split()[:3] == ["monotonic", "5", "0"], proc.stderr
    for path in files.values():
        ns.release(path, remove=True)
        assert not os.path.exists(path)
    assert not mounts_with(scratch + "/")


def test_persist_mount_namespace_needs_a_private_mount(scratch):
    mnt = os.path.join(scratch, "mnt")
    rc, _, err = sh("mount -t tmpfs clonekit-pmnt /mnt", f"--mount={mnt}")
    assert rc == 0, err
    proc = run_cli("nsenter", f"--mount={mnt}", "--", "grep", "-c", "clonekit-pmnt", "/proc/self/mountinfo")
    assert proc.stdout.strip() == "1", proc.stderr
    ns.release(mnt, remove=True)
    # on a shared mount the kernel would refuse: we say why before trying
    shared_file = "/tmp/clonekit-shared-mnt"
    from clonekit.ns.pin import mount_of

    if "shared:" in (mount_of("/tmp") or {}).get("optional", ""):
        proc = run_cli("unshare", f"--mount={shared_file}", "true")
        assert proc.returncode == 1
        assert "propagates (shared)" in proc.stderr and "--make-private" in proc.stderr
        assert not os.path.exists(shared_file)


def test_usage_errors_are_one_line():
    proc = run_cli("unshare", "--map-users=1,2", "true")
    assert proc.returncode == 1 and "bad uid range '1,2'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("unshare", "--kill-child=BOGUS", "true")
    assert proc.returncode == 1 and "unknown signal 'BOGUS'" in proc.stderr
    proc = run_cli("unshare", "--pid=/tmp/clonekit-x", "true")
    assert proc.returncode == 1 and "needs --fork" in proc.stderr


def test_program_options_are_not_taken_as_ours():
    proc = run_cli("unshare", "-u", "ls", "-d", "--color=never", "/")
    assert (proc.returncode, proc.stdout.strip()) == (0, "/"), proc.stderr


def test_no_helper_or_child_left_behind():
    """Orphans of clonekit (its map-writing helper, its child) would be re-parented to a
    subreaper: become one in a throwaway process, run clonekit there, look for children."""

    def child():
        from clonekit import _native

        _native.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
        for opts in (["-f", "-p", "--map-users=100000,0,10", "--map-groups=100000,0,10"],
                     ["-U", "-r", "-f", "-m"]):
            subprocess.run([*CLONEKIT, "unshare", *opts, "--", "true"], check=True, env=ENV)
        time.sleep(0.1)
        return children(os.getpid())

    assert in_child(child) == []
