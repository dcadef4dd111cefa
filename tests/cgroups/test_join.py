"""A new child joins its own group: ``join_fds()`` in the parent, ``join_self()`` in the child.

Writing ``0`` to a v1 ``tasks`` file moves the writer itself without the kernel's global
threadgroup lock (and the RCU grace period its first taker waits for), which is why the runtime's
init joins its v1 hierarchies itself instead of the runtime writing its pid.  Membership is read
back from /proc/PID/cgroup, in a real child, on the real hierarchies (every group lives under
/clonekit-test-cg and the ``real`` fixture checks that nothing is left).
"""

from __future__ import annotations

import errno
import os
import threading

import pytest
from cg_helpers import proc_cgroup

import clonekit
from clonekit.cgroups import Cgroup, CgroupError, Layout, detect, join_self
from clonekit.task import Task


def _layout(kind: str) -> Layout:
    layout = detect()
    if kind == "host":
        return layout
    if kind == "v1":
        if not layout.v1:
            pytest.skip("no cgroup v1 hierarchy mounted")
        return Layout([h for h in layout.hierarchies if h.version == 1])
    if layout.v2 is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    return Layout([layout.v2])


def _child_that_joins(cg: Cgroup, *, into_v2: bool) -> tuple[Task, int, int]:
    """A cloned child (born in the cgroup2 group when ``into_v2``) that calls join_self() first,
    reports ``ok`` or the error on a pipe, then waits for a byte on another before exiting.
    Returns (task, read end of its report, write end of its release)."""
    v2_fd = cg.v2_dir_fd() if into_v2 else None
    fds = cg.join_fds(v2=v2_fd is None)
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    try:
        child = clonekit.clone(cgroup=v2_fd)
        if child == 0:  # pragma: no cover - in the child
            try:
                try:
                    join_self(fds)
                    os.write(report_w, b"ok")
                except CgroupError as exc:
                    os.write(report_w, f"{exc.errno}|{exc.filename}|{exc}".encode())
                os.read(release_r, 1)
            finally:
                os._exit(0)
    finally:
        for fd in (*fds, *([v2_fd] if v2_fd is not None else []), report_w, release_r):
            os.close(fd)
    assert isinstance(child, Task)
    return child, report_r, release_w


def _finish(child: Task, report_r: int, release_w: int) -> None:
    os.write(release_w, b"x")
    os.close(release_w)
    os.close(report_r)
    assert child.wait() == 0
    child.close()


@pytest.mark.parametrize("kind", ["host", "v1", "v2"])
def test_a_child_joins_every_hierarchy_itself(real: str, kind: str) -> None:
    layout = _layout(kind)
    mine = proc_cgroup(os.getpid())
    cg = Cgroup.create(real, container_id="c", layout=layout)
    try:
        child, report, release = _child_that_joins(cg, into_v2=layout.v2 is not None and kind == "host")
        try:
            assert os.read(report, 200) == b"ok"
            seen = proc_cgroup(child.pid)
            for h in layout.targets():
                field = next(f for f in seen if h.matches(f))
                assert seen[field] == real, f"{h.key}: {seen[field]}"
            assert cg.pids() == [child.pid]
            assert proc_cgroup(os.getpid()) == mine, "the parent stays where it was"
            assert cg.dirs_by_mount == {h.mountpoint: f"{h.mountpoint}{real}" for h in layout.targets()}
        finally:
            _finish(child, report, release)
    finally:
        cg.remove()


def test_join_fds_opens_one_tasks_file_per_v1_hierarchy(real: str) -> None:
    layout = detect()
    cg = Cgroup.create(real, container_id="c")
    before = set(os.listdir("/proc/self/fd"))
    try:
        fds = cg.join_fds()
        try:
            targets = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]
            assert targets == [f"{d}/tasks" for k, d in cg.paths.items() if k != "unified"]
            assert len(fds) == len(layout.targets()) - (layout.v2 is not None)
            assert all(os.get_inheritable(fd) is False for fd in fds), "O_CLOEXEC: gone at exec"
            with_v2 = cg.join_fds(v2=True)
            try:
                if cg.v2_dir is not None:
                    assert os.readlink(f"/proc/self/fd/{with_v2[0]}") == f"{cg.v2_dir}/cgroup.procs"
                assert len(with_v2) == len(fds) + (cg.v2_dir is not None)
            finally:
                for fd in with_v2:
                    os.close(fd)
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        cg.remove()
    assert set(os.listdir("/proc/self/fd")) == before


def test_join_fds_is_empty_without_v1_and_for_a_disabled_group(real: str) -> None:
    cg = Cgroup.create(real, container_id="c", layout=_layout("v2"))
    try:
        assert cg.join_fds() == []
    finally:
        cg.remove()
    assert Cgroup.disabled("rootless, no delegation").join_fds(v2=True) == []
    join_self([])  # nothing to join: nothing happens


def test_joining_a_removed_group_names_the_file_and_errno(real: str) -> None:
    cg = Cgroup.create(real, container_id="c", layout=_layout("v1"))
    fds = cg.join_fds()
    first = os.readlink(f"/proc/self/fd/{fds[0]}")
    cg.remove()  # before the child joins: the open files now lead nowhere
    r, w = os.pipe()
    child = clonekit.clone()
    if child == 0:  # pragma: no cover - in the child
        try:
            try:
                join_self(fds)
                os.write(w, b"joined")
            except CgroupError as exc:
                closed = all(_closed(fd) for fd in fds)
                os.write(w, f"{exc.errno}|{exc.filename}|{closed}|{exc}".encode())
        finally:
            os._exit(0)
    for fd in (*fds, w):
        os.close(fd)
    assert isinstance(child, Task)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode()
    assert child.wait() == 0
    child.close()
    err, filename, closed, text = answer.split("|", 3)
    assert int(err) == errno.ENODEV and filename == first and closed == "True", answer
    assert "join cgroup" in text and "removed" in text


def test_join_self_refuses_a_thread_that_is_not_the_process(real: str) -> None:
    """A v1 ``tasks`` file moves only the writing thread: from another thread join_self() would
    split the process across groups, so it refuses (and still closes the fds)."""
    mine = proc_cgroup(os.getpid())
    cg = Cgroup.create(real, container_id="c")
    try:
        fds = cg.join_fds(v2=True)
        assert fds
        caught: list[BaseException] = []

        def run() -> None:
            try:
                join_self(fds)
            except BaseException as exc:
                caught.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        assert len(caught) == 1 and isinstance(caught[0], CgroupError), caught
        assert caught[0].errno == errno.EINVAL and "single-threaded" in str(caught[0])
        assert all(_closed(fd) for fd in fds)
        assert proc_cgroup(os.getpid()) == mine
        assert cg.pids() == []
    finally:
        cg.remove()


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False
