"""Rootless: ``clonekit unshare``/``nsenter`` run as an unprivileged user made for the session
(useradd + /etc/subuid,/etc/subgid entries), through ``setpriv --reuid --regid --init-groups``."""

from __future__ import annotations

import os
import subprocess

import pytest
from ns_helpers import descendant, ns_inode, run_cli, start, stop


def sh(user, script: str, *opts: str):
    return run_cli("unshare", *opts, "--", "sh", "-c", script, user=user)


def maps(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines()]


def test_really_unprivileged(rootless):
    proc = run_cli("--version", user=rootless)
    assert proc.returncode == 0, proc.stderr
    proc = sh(rootless, "id -u; grep CapEff /proc/self/status")
    assert proc.stdout.split()[0] == str(rootless.uid)
    assert int(proc.stdout.split()[2], 16) == 0


def test_map_root_user(rootless):
    proc = sh(rootless, "id -u; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups", "-r")
    assert proc.returncode == 0, proc.stderr
    lines = maps(proc.stdout)
    assert lines == ["0", f"0 {rootless.uid} 1", f"0 {rootless.gid} 1", "deny"]


def test_map_current_user(rootless):
    proc = sh(rootless, "id -u; cat /proc/self/uid_map", "-c")
    assert maps(proc.stdout) == [str(rootless.uid), f"{rootless.uid} {rootless.uid} 1"], proc.stderr


def test_map_auto_uses_subordinate_ranges_through_newuidmap(rootless):
    start_id, count = rootless.subuid
    proc = sh(rootless, "cat /proc/self/uid_map /proc/self/gid_map", "--map-auto")
    assert proc.returncode == 0, proc.stderr
    assert maps(proc.stdout) == [f"0 {start_id} {count}", f"0 {rootless.subgid[0]} {rootless.subgid[1]}"]


def test_map_root_plus_auto_like_a_rootless_container(rootless):
    start_id, count = rootless.subuid
    proc = sh(rootless, "cat /proc/self/uid_map; id -u; chown 1000:1000 /proc/self/fd/0 2>/dev/null; echo ok",
              "-r", "--map-auto")
    assert proc.returncode == 0, proc.stderr
    lines = maps(proc.stdout)
    assert lines[:2] == [f"0 {rootless.uid} 1", f"1 {start_id} {count}"]
    assert lines[2] == "0"


def test_full_rootless_sandbox(rootless):
    proc = sh(rootless, "hostname rootless-x; hostname; echo $$; ls /proc | grep -c '^[0-9]'",
              "-r", "-f", "-p", "-m", "-u", "-i", "-n", "--mount-proc")
    assert proc.returncode == 0, proc.stderr
    hostname, pid, nprocs = proc.stdout.split()
    assert (hostname, pid) == ("rootless-x", "1") and int(nprocs) <= 3


def test_unprivileged_without_user_namespace_is_explained(rootless):
    proc = run_cli("unshare", "-n", "true", user=rootless)
    assert proc.returncode == 1
    assert "cannot create new net namespace" in proc.stderr
    assert "CAP_SYS_ADMIN" in proc.stderr and "-r" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mapping_ranges_not_granted_names_the_subuid_file(rootless):
    proc = run_cli("unshare", "--map-users=200000,0,10", "true", user=rootless)
    assert proc.returncode == 1
    assert "newuidmap" in proc.stderr and "/etc/subuid" in proc.stderr


def test_setgroups_allow_with_only_own_gid_is_explained(rootless):
    proc = run_cli("unshare", "-r", "--setgroups=allow", "true", user=rootless)
    assert proc.returncode == 1
    assert "setgroups 'allow' was refused" in proc.stderr and "--map-auto" in proc.stderr, proc.stderr


def test_setgroups_allow_with_subordinate_gids(rootless):
    proc = sh(rootless, "cat /proc/self/setgroups; id -G", "-r", "--map-auto", "--setgroups=allow")
    assert proc.returncode == 0, proc.stderr
    assert maps(proc.stdout)[0] == "allow"


def test_nsenter_into_a_rootless_container_as_its_user(rootless):
    target = start(["clonekit", "unshare", "-r", "-u", "-n", "--",
                    "sh", "-c", "hostname rootless-c; exec sleep 60"],
                   user=rootless)
    try:
        pid = descendant(target.pid, "sleep") if False else _exec_pid(target.pid)
        proc = run_cli("nsenter", "-t", str(pid), "-U", "-u", "-n", "--", "sh", "-c", "hostname; id -u",
                       user=rootless)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["rootless-c", "0"]
        proc = run_cli("nsenter", "-t", str(pid), "-a", "--", "hostname", user=rootless)
        assert proc.stdout.strip() == "rootless-c", proc.stderr
        # without the user namespace, the user lacks CAP_SYS_ADMIN over the uts namespace
        proc = run_cli("nsenter", "-t", str(pid), "-u", "--", "hostname", user=rootless)
        assert proc.returncode == 1 and "CAP_SYS_ADMIN" in proc.stderr and "-U" in proc.stderr
        assert ns_inode(pid, "uts") != ns_inode("self", "uts")
    finally:
        stop(target)


def _exec_pid(pid: int) -> int:
    """The clonekit process execs into sh then sleep (no fork)."""
    from ns_helpers import comm, wait_for

    wait_for(lambda: comm(pid) == "sleep", what="the rootless target to start")
    return pid


def test_no_subuid_entry_for_map_auto_is_explained(rootless):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    proc = run_cli("unshare", "--map-auto", "true")  # root has no /etc/subuid entry here
    with open("/etc/subuid") as f:
        if any(line.startswith(("root:", "0:")) for line in f):
            pytest.skip("root has /etc/subuid ranges on this machine")
    assert proc.returncode == 1
    assert "/etc/subuid has no range for user 'root'" in proc.stderr


def test_missing_newuidmap_is_named(rootless):
    # run with a PATH where newuidmap cannot be found
    cmd = [*rootless.prefix(), "PATH=/nonexistent", rootless.python, "-m", "clonekit", "unshare",
           "--map-auto", "/bin/true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")
    assert proc.returncode == 1
    assert "newuidmap" in proc.stderr and "apt install uidmap" in proc.stderr, proc.stderr


def test_map_host_root_unprivileged_is_refused_with_the_reason(rootless):
    proc = run_cli("unshare", "--map-users=0,0,1", "/bin/true", user=rootless)
    assert proc.returncode == 1
    assert "newuidmap" in proc.stderr and "/etc/subuid" in proc.stderr
    assert "Traceback" not in proc.stderr
