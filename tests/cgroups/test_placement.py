"""Real cgroups on the real kernel: placement, CLONE_INTO_CGROUP, ps, kill --all, delete.

Every group lives under /clonekit-test-cg (the ``real`` fixture checks that nothing is left in any
hierarchy afterwards).  Membership is read back from /proc/PID/cgroup.  The hybrid host is also
driven as a pure-v1 and a pure-v2 host by giving Cgroup a layout made of its real v1 hierarchies
only, or of its cgroup2 hierarchy only.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from cg_helpers import cat, hierarchy_mounts, proc_cgroup, wait_for

import clonekit
from clonekit.cgroups import Cgroup, CgroupBusyError, CgroupError, Layout, detect
from clonekit.task import Task


@pytest.fixture
def tasks() -> Iterator[list[Task]]:
    """Tasks a test started; killed and reaped afterwards whatever happened."""
    started: list[Task] = []
    yield started
    for t in started:
        if t.poll() is None:
            t.kill()
        t.wait()
        t.close()


def _spawn(tasks: list[Task], argv: list[str], **kw: object) -> Task:
    t = clonekit.spawn(argv, **kw)  # type: ignore[arg-type]
    tasks.append(t)
    return t


def _start_in(cg: Cgroup, tasks: list[Task], script: str) -> Task:
    """``sh -c script`` placed in ``cg`` before it runs the script (it first waits for a line on
    stdin), as the runtime places a container's init before the user's program runs."""
    r, w = os.pipe()
    try:
        t = _spawn(tasks, ["/bin/sh", "-c", f"read _; {script}"], stdin=r)
        os.close(r)
        r = -1
        cg.add(t.pid)
        os.write(w, b"go\n")
    finally:
        os.close(w)
        if r >= 0:
            os.close(r)
    return t


def _cleanup(cg: Cgroup, tasks: list[Task]) -> None:
    """Kill and reap what the test started (so a failed assertion is not hidden by a busy
    group), then remove the group."""
    for t in tasks:
        if t.poll() is None:
            t.kill()
        t.wait()
    cg.remove()


def _assert_member_everywhere(pid: int, cg: Cgroup, layout: Layout | None = None) -> None:
    seen = proc_cgroup(pid)
    for h in (layout or detect()).targets():
        field = next(f for f in seen if h.matches(f))
        assert seen[field] == cg.path, f"pid {pid} is in {seen[field]} of {h.key}, not {cg.path}"


def _v1_only() -> Layout:
    return Layout([h for h in detect().hierarchies if h.version == 1])


def _v2_only() -> Layout:
    v2 = detect().v2
    if v2 is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    return Layout([v2])


# -- create / add -----------------------------------------------------------------------------

def test_create_makes_the_group_in_every_hierarchy(real: str) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        assert cg.enabled and cg.path == real
        targets = detect().targets()
        assert set(cg.paths) == {h.key for h in targets}
        for h in targets:
            assert os.path.isfile(os.path.join(h.mountpoint, real.lstrip("/"), "cgroup.procs")), h
        assert cg.exists()
        memory = detect().by_controller("memory")
        if memory is not None:
            assert cg.controller_dir("memory") == cg.paths[memory.key]
    finally:
        cg.remove()
    assert not cg.exists()
    for mount in hierarchy_mounts():
        assert not os.path.exists(os.path.join(mount, "clonekit-test-cg")), mount


def test_add_places_a_real_child_in_every_hierarchy(real: str, tasks: list[Task]) -> None:
    mine = proc_cgroup(os.getpid())
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _spawn(tasks, ["/bin/sleep", "100"])
        cg.add(t.pid)
        _assert_member_everywhere(t.pid, cg)
        assert proc_cgroup(os.getpid()) == mine, "the caller stays where it was"
        assert cg.pids() == [t.pid]
        t.kill()
        t.wait()
    finally:
        _cleanup(cg, tasks)


def test_clone_into_cgroup_then_v1_on_a_hybrid_host(real: str, tasks: list[Task]) -> None:
    """CLONE_INTO_CGROUP places the task in the cgroup2 group from birth; on a hybrid host the
    v1 hierarchies still need add(pid, v2=False)."""
    layout = detect()
    cg = Cgroup.create(real, container_id="c")
    try:
        fd = cg.v2_dir_fd()
        assert fd is not None
        try:
            t = _spawn(tasks, ["/bin/sleep", "100"], cgroup=fd)
        finally:
            os.close(fd)
        seen, mine = proc_cgroup(t.pid), proc_cgroup(os.getpid())
        assert seen[""] == real
        if layout.mode == "hybrid":
            assert seen["memory"] == mine["memory"] != real, "v1 is not touched by CLONE_INTO_CGROUP"
        cg.add(t.pid, v2=False)
        _assert_member_everywhere(t.pid, cg)
        t.kill()
        t.wait()
    finally:
        _cleanup(cg, tasks)


def test_clone_python_child_into_cgroup(real: str) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        fd = cg.v2_dir_fd()
        assert fd is not None
        r, w = os.pipe()
        try:
            child = clonekit.clone(cgroup=fd)
            if child == 0:  # pragma: no cover - in the child
                try:
                    with open("/proc/self/cgroup", "rb") as f:
                        os.write(w, f.read())
                finally:
                    os._exit(0)
            assert isinstance(child, Task)
            os.close(w)
            w = -1
            with os.fdopen(r, "rb") as f:
                r = -1
                text = f.read().decode()
            assert child.wait() == 0
        finally:
            os.close(fd)
            for x in (r, w):
                if x >= 0:
                    os.close(x)
        assert f"0::{real}\n" in text
    finally:
        cg.remove()


@pytest.mark.parametrize("kind", ["v1-only", "v2-only"])
def test_placement_on_one_kind_of_hierarchy(real: str, tasks: list[Task], kind: str) -> None:
    """The legacy and the unified code paths, on this host's real v1 or cgroup2 hierarchies."""
    layout = _v1_only() if kind == "v1-only" else _v2_only()
    assert layout.mode == ("legacy" if kind == "v1-only" else "unified")
    cg = Cgroup.create(real, container_id="c", layout=layout)
    try:
        assert set(cg.paths) == {h.key for h in layout.targets()}
        t = _start_in(cg, tasks, "sleep 100 & sleep 100 & wait")
        _assert_member_everywhere(t.pid, cg, layout)
        wait_for(lambda: len(cg.pids()) == 3, what="sh and its two sleeps in the group")
        sent = cg.signal_all(signal.SIGKILL)
        assert t.pid in sent and len(sent) == 3
        assert t.wait(timeout=5) == -signal.SIGKILL
        wait_for(lambda: cg.pids() == [], what="the group to empty")
    finally:
        _cleanup(cg, tasks)


# -- ps ---------------------------------------------------------------------------------------

def test_pids_lists_members_and_child_groups(real: str, tasks: list[Task]) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _start_in(cg, tasks, "sleep 100 & sleep 100 & wait")
        pids = wait_for(lambda: p if len(p := cg.pids()) == 3 else None, what="three members")
        assert t.pid in pids
        ps = subprocess.run(["ps", "-o", "pid=", "--ppid", str(t.pid)], capture_output=True, text=True)
        assert sorted([t.pid, *map(int, ps.stdout.split())]) == pids, "same as procps sees"
        # the container makes a child group of its own (cgroup2) and moves a sleep there
        v2 = cg.v2_dir
        if v2 is not None:
            os.mkdir(os.path.join(v2, "inner"))
            moved = max(p for p in pids if p != t.pid)
            with open(os.path.join(v2, "inner", "cgroup.procs"), "w") as f:
                f.write(str(moved))
            assert proc_cgroup(moved)[""] == f"{real}/inner"
            assert cg.pids() == pids
        cg.signal_all(signal.SIGKILL)
        t.wait(timeout=5)
        wait_for(lambda: cg.pids() == [], what="the group to empty")
    finally:
        _cleanup(cg, tasks)  # the child group goes too


# -- kill --all -------------------------------------------------------------------------------

_TRAPPER = 'trap "echo usr1 >> {out}" USR1; echo ready >> {out}; while :; do sleep 0.05; done'


@pytest.mark.parametrize("kind", ["hybrid", "v1-only", "v2-only"])
def test_signal_all_delivers_and_thaws(real: str, tasks: list[Task], tmp_path: object, kind: str) -> None:
    """A non-fatal signal reaches the members (their handler runs) and the group is thawed."""
    layout = {"hybrid": detect, "v1-only": _v1_only, "v2-only": _v2_only}[kind]()
    out = os.path.join(str(tmp_path), "out")
    cg = Cgroup.create(real, container_id="c", layout=layout)
    try:
        t = _start_in(cg, tasks, _TRAPPER.format(out=out))
        wait_for(lambda: os.path.exists(out), what="the shell to set its trap")
        sent = cg.signal_all(signal.SIGUSR1)
        assert t.pid in sent
        wait_for(lambda: "usr1" in cat(out), what="the USR1 handler to run")
        assert t.poll() is None, "USR1 is handled, not fatal"
        _assert_thawed(cg)
        cg.signal_all(signal.SIGKILL)
        assert t.wait(timeout=5) == -signal.SIGKILL
    finally:
        _cleanup(cg, tasks)


def _assert_thawed(cg: Cgroup) -> None:
    v2 = cg.v2_dir
    if v2 is not None:
        assert cat(os.path.join(v2, "cgroup.freeze")).strip() == "0"
    freezer = next((d for k, d in cg.paths.items() if "freezer" in k.split(",")), None)
    if freezer is not None:
        assert cat(os.path.join(freezer, "freezer.state")).strip() == "THAWED"


def test_signal_all_leaves_a_paused_group_paused(real: str, tasks: list[Task], tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "out")
    cg = Cgroup.create(real, container_id="c")
    v2 = cg.v2_dir
    try:
        if v2 is None:
            pytest.skip("needs cgroup2 for the pause")
        t = _start_in(cg, tasks, _TRAPPER.format(out=out))
        wait_for(lambda: os.path.exists(out), what="the shell to set its trap")
        freeze = os.path.join(v2, "cgroup.freeze")
        with open(freeze, "w") as f:
            f.write("1")
        wait_for(lambda: "frozen 1" in cat(os.path.join(v2, "cgroup.events")), what="frozen")
        assert t.pid in cg.signal_all(signal.SIGUSR1)
        assert cat(freeze).strip() == "1", "a paused container stays paused"
        assert "usr1" not in cat(out), "a frozen task does not run its handler"
        with open(freeze, "w") as f:
            f.write("0")
        wait_for(lambda: "usr1" in cat(out), what="the handler after the thaw")
        cg.signal_all(signal.SIGKILL)
        t.wait(timeout=5)
    finally:
        _cleanup(cg, tasks)


def test_signal_all_kill_reaches_forks_and_grandchildren(real: str, tasks: list[Task]) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _start_in(cg, tasks, "(sleep 100 & sleep 100 & wait) & sleep 100 & wait")
        members = wait_for(lambda: p if len(p := cg.pids()) == 5 else None, what="five members")
        assert sorted(cg.signal_all(signal.SIGKILL)) == members
        assert t.wait(timeout=5) == -signal.SIGKILL
        wait_for(lambda: cg.pids() == [], what="every member to die")
        for pid in members:
            assert not os.path.exists(f"/proc/{pid}/cgroup") or _is_zombie(pid)
    finally:
        _cleanup(cg, tasks)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_signal_all_of_an_empty_group_sends_nothing(real: str) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        assert cg.signal_all(signal.SIGTERM) == []
        assert cg.signal_all(signal.SIGKILL) == []
        _assert_thawed(cg)
    finally:
        cg.remove()


# -- delete -----------------------------------------------------------------------------------

def test_remove_refuses_while_processes_remain(real: str, tasks: list[Task]) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _spawn(tasks, ["/bin/sleep", "100"])
        cg.add(t.pid)
        with pytest.raises(CgroupBusyError) as info:
            cg.remove(timeout=0.05)
        assert info.value.errno == errno.EBUSY and info.value.pids == [t.pid]
        assert str(t.pid) in str(info.value) and "kill --all" in str(info.value)
        assert cg.exists()
        _assert_member_everywhere(t.pid, cg)
        cg.signal_all(signal.SIGKILL)
        t.wait(timeout=5)
    finally:
        _cleanup(cg, tasks)


def test_remove_right_after_kill_waits_for_the_kernel(real: str, tasks: list[Task]) -> None:
    """delete --force: SIGKILL then rmdir at once; remove() retries while the tasks drain."""
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _start_in(cg, tasks, "sleep 100 & sleep 100 & wait")
        wait_for(lambda: len(cg.pids()) == 3, what="three members")
        cg.signal_all(signal.SIGKILL)
        cg.remove()
        assert not cg.exists()
        assert t.wait(timeout=5) == -signal.SIGKILL
    finally:
        _cleanup(cg, tasks)


def test_delete_in_a_later_process(real: str) -> None:
    cg = Cgroup.create(real, container_id="c")
    state = json.dumps(cg.to_state())
    code = ("import json, sys; from clonekit.cgroups import Cgroup; "
            "cg = Cgroup.load(json.loads(sys.stdin.read())); "
            "print(cg.exists()); cg.remove(); print(cg.exists())")
    out = subprocess.run([sys.executable, "-c", code], input=state, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "False"]
    assert not cg.exists()


def test_missing_path_goes_under_the_clonekit_parent(tasks: list[Task]) -> None:
    """(A relative path joins the caller's own group: tested from a group of the test's own in
    test_vs_runc, never from the machine's.)"""
    if os.geteuid() != 0:
        pytest.skip("needs root (makes cgroups)")
    name = f"clonekit-test-cg-rel-{uuid.uuid4().hex[:8]}"
    targets = detect().targets()
    had_parent = {h.key: os.path.isdir(os.path.join(h.mountpoint, "clonekit")) for h in targets}
    cg = Cgroup.create(None, container_id=name)
    try:
        assert cg.path == f"/clonekit/{name}"
        for h in targets:
            assert cg.paths[h.key] == os.path.join(h.mountpoint, "clonekit", name)
        t = _spawn(tasks, ["/bin/sleep", "100"])
        cg.add(t.pid)
        _assert_member_everywhere(t.pid, cg)
        t.kill()
        t.wait()
    finally:
        _cleanup(cg, tasks)
    for h in targets:
        parent = os.path.join(h.mountpoint, "clonekit")
        assert not os.path.exists(os.path.join(parent, name))
        if not had_parent[h.key]:
            assert not os.path.isdir(parent) or os.listdir(parent), f"empty {parent} left behind"


# -- errors -----------------------------------------------------------------------------------

def test_a_group_in_use_is_refused(real: str, tasks: list[Task]) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        t = _spawn(tasks, ["/bin/sleep", "100"])
        cg.add(t.pid)
        with pytest.raises(CgroupError, match="another container uses this cgroupsPath") as info:
            Cgroup.create(real, container_id="d")
        assert info.value.errno == errno.EEXIST and info.value.filename.endswith(real)
        _assert_member_everywhere(t.pid, cg)
        t.kill()
        t.wait()
    finally:
        _cleanup(cg, tasks)


def test_an_interface_file_name_is_refused_and_nothing_is_left(real: str) -> None:
    with pytest.raises(CgroupError, match="cgroup interface") as info:
        Cgroup.create(f"{real}/cgroup.procs", container_id="c")
    assert info.value.errno == errno.EEXIST
    # the `real` fixture asserts that the parents made on the way were all removed


def test_add_an_exited_process_names_the_file_and_errno(real: str) -> None:
    cg = Cgroup.create(real, container_id="c")
    try:
        with clonekit.spawn(["/bin/true"]) as t:
            t.wait()
        with pytest.raises(CgroupError) as info:
            cg.add(t.pid)
        assert info.value.errno == errno.ESRCH
        assert info.value.filename.endswith("/cgroup.procs")
        assert "ESRCH" in str(info.value) and "exited" in str(info.value)
    finally:
        cg.remove()
