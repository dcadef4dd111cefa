"""``clonekit lsns`` against util-linux ``lsns`` on a controlled set of processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from ns_helpers import children, descendant, ns_inode, run_cli, start, stop, wait_for

from clonekit import ns

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
KINDS = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")


@pytest.fixture(scope="module")
def family():
    """A shell and two sleeps sharing new net, uts and ipc namespaces."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    proc = start(["unshare", "-n", "-u", "-i", "--", "sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        wait_for(lambda: len(children(proc.pid)) == 2, what="two sleeps")
        yield proc.pid
    finally:
        stop(proc)


def util_lsns(*args: str) -> dict:
    if shutil.which("lsns") is None:
        pytest.skip("util-linux lsns is not installed")
    out = subprocess.run(["lsns", "--json", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def ours(*args: str) -> dict:
    proc = run_cli("lsns", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def by_ns(data: dict) -> dict[tuple[str, int], dict]:
    return {(row["type"], row["ns"]): row for row in data["namespaces"]}


def test_json_shape_is_util_linux_shape(family):
    data = ours("-t", "uts")
    assert list(data) == ["namespaces"]
    row = by_ns(data)[("uts", ns_inode(family, "uts"))]
    assert list(row) == ["ns", "type", "nprocs", "pid", "ppid", "user", "command"]
    assert isinstance(row["ns"], int) and isinstance(row["nprocs"], int) and isinstance(row["pid"], int)


@pytest.mark.parametrize("kind", KINDS)
def test_same_namespaces_and_counts_as_util_linux(family, kind):
    key = (kind, ns_inode(family, kind))
    theirs = by_ns(util_lsns("-t", kind))[key]
    mine = by_ns(ours("-t", kind))[key]
    if kind in ("net", "uts", "ipc"):
        assert mine["nprocs"] == theirs["nprocs"] == 3
        assert mine["pid"] == theirs["pid"] == family
    else:  # shared with the whole machine, where other processes come and go between the runs
        assert mine["nprocs"] > 3 and theirs["nprocs"] > 3
    for field in ("ns", "type", "user", "command") if kind in ("net", "uts", "ipc") else ("ns", "type"):
        assert mine[field] == theirs[field], field


def test_all_types_agree_on_the_family_namespaces(family):
    theirs = by_ns(util_lsns())
    mine = by_ns(ours())
    keys = {(k, ns_inode(family, k)) for k in ("net", "uts", "ipc")}
    for key in keys:
        assert {f: mine[key][f] for f in ("ns", "type", "nprocs", "pid", "user", "command")} == \
            {f: theirs[key][f] for f in ("ns", "type", "nprocs", "pid", "user", "command")}
    # every namespace of the controlled processes that util-linux lists, we list too.  (Over the
    # whole machine the two also agree when it is quiet; while the suite runs, util-linux has
    # twice listed short-lived pid namespaces of other tests' processes that our scan did not:
    # not diagnosed yet, so not asserted here.)
    controlled = {(k, ns_inode(family, k)) for k in KINDS}
    missing = [k for k in theirs if k in controlled and k not in mine]
    assert not missing


def _still_in(pid: int, key: tuple[str, int]) -> bool:
    """The process util-linux showed still exists and is still in that namespace."""
    try:
        return ns_inode(pid, key[0]) == key[1]
    except OSError:
        return False


def test_task_option_lists_the_namespaces_of_one_process(family):
    data = ours("-p", str(family))
    assert sorted((r["type"], r["ns"]) for r in data["namespaces"]) == sorted(
        (k, ns_inode(family, k)) for k in KINDS)
    theirs = util_lsns("-p", str(family))
    assert sorted((r["type"], r["ns"]) for r in theirs["namespaces"]) == sorted(
        (r["type"], r["ns"]) for r in data["namespaces"])


def test_text_output_and_columns(family):
    proc = run_cli("lsns", "-t", "net", "-o", "NS,TYPE,NPROCS,PID,PATH")
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NS", "TYPE", "NPROCS", "PID", "PATH"]
    row = next(line.split() for line in lines[1:] if line.split()[0] == str(ns_inode(family, "net")))
    assert row == [str(ns_inode(family, "net")), "net", "3", str(family), f"/proc/{family}/ns/net"]
    proc = run_cli("lsns", "-o", "NS,BOGUS")
    assert proc.returncode == 1 and "unknown column 'BOGUS'" in proc.stderr


@needs_root
def test_tree_shows_user_and_pid_hierarchy():
    nest = ["unshare", "-U", "-r", "-p", "-f", "--"]
    proc = start([*nest, *nest, "sleep", "60"])
    try:
        sleeper = descendant(proc.pid, "sleep")
        inner_user = ns_inode(sleeper, "user")
        inner_pid = ns_inode(sleeper, "pid")
        data = ours("--tree=parent")

        def find(rows, key, path=()):
            for r in rows:
                if (r["type"], r["ns"]) == key:
                    return [*path, r["ns"]]
                found = find(r.get("children", []), key, (*path, r["ns"]))
                if found:
                    return found
            return None

        user_path = find(data["namespaces"], ("user", inner_user))
        pid_path = find(data["namespaces"], ("pid", inner_pid))
        assert user_path is not None and len(user_path) == 3  # init -> outer -> inner
        assert user_path[0] == ns_inode("self", "user")
        assert pid_path is not None and len(pid_path) == 3 and pid_path[0] == ns_inode("self", "pid")
        text = run_cli("lsns", "-T", "-t", "user").stdout
        # the inner namespace is the outer one's only child: "└─", after any "│ " of the levels above
        lines = text.splitlines()
        assert any(line.lstrip(" │").startswith("└─") and str(inner_user) in line for line in lines)
        rows = {(r.type, r.ns): r for r in ns.list_namespaces(["user"], relations=True)}
        assert rows[("user", inner_user)].pns == ns_inode(proc.pid, "user")  # the outer unshare
    finally:
        stop(proc)


def test_missing_pid_is_explained():
    proc = run_cli("lsns", "-p", "4194304")
    assert proc.returncode == 1 and "no process with pid 4194304" in proc.stderr


def test_net_type_adds_netnsid_and_nsfs_like_util_linux(family):
    key = ("net", ns_inode(family, "net"))
    theirs = by_ns(util_lsns("-t", "net"))[key]
    mine = by_ns(ours("-t", "net"))[key]
    assert {"netnsid", "nsfs"} <= set(theirs) and {"netnsid", "nsfs"} <= set(mine)
    assert (mine["netnsid"], mine["nsfs"]) == (theirs["netnsid"], theirs["nsfs"])
    proc = run_cli("lsns", "-u", "-W", "-n", "-t", "net")
    assert proc.returncode == 0 and not proc.stdout.startswith("NS")
