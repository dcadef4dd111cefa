"""clonekit.ns as a library: kinds, Namespace values, unshare, enter, id maps, time offsets."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest
from ns_helpers import ChildFailed, comm, descendant, in_child, ns_inode, start, stop, wait_for

from clonekit import ns
from clonekit.errors import UsageError
from clonekit.flags import NAMESPACE_FLAGS, CloneFlag

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root")


# ----------------------------------------------------------------------------- kinds
def test_kinds_cover_every_namespace_flag_and_proc_entry():
    assert {k.value for k in ns.Kind} == set(os.listdir("/proc/self/ns")) - {
        "pid_for_children", "time_for_children"}
    assert ns.kinds_to_flags(ns.Kind) == int(NAMESPACE_FLAGS)
    assert ns.Kind.MNT.flag is CloneFlag.NEWNS and ns.Kind.TIME.flag is CloneFlag.NEWTIME
    assert ns.Kind.PID.proc_child_name == "pid_for_children"
    assert ns.KERNEL_ORDER[0] is ns.Kind.USER


@pytest.mark.parametrize("value", ["net,uts", "NEWNET|newuts", ["uts", "network"],
                                   int(CloneFlag.NEWNET | CloneFlag.NEWUTS), "CLONE_NEWUTS,CLONE_NEWNET"])
def test_parse_kinds_forms(value):
    assert ns.parse_kinds(value) == (ns.Kind.UTS, ns.Kind.NET)


def test_parse_kinds_rejects_unknown_names_and_flags():
    with pytest.raises(UsageError, match=r"unknown namespace kind 'bogus'.*valid kinds are mnt"):
        ns.parse_kinds("net,bogus")
    with pytest.raises(UsageError, match="not CLONE_NEW"):
        ns.parse_kinds(int(CloneFlag.VM))


# ----------------------------------------------------------------------------- Namespace
def test_namespace_of_self_matches_proc():
    me = ns.Namespace.of("self", "net")
    st = os.stat("/proc/self/ns/net")
    assert (me.kind, me.inode, me.device) == (ns.Kind.NET, st.st_ino, st.st_dev)
    assert me == ns.Namespace.from_path("/proc/self/ns/net")
    assert str(me) == os.readlink("/proc/self/ns/net")
    assert set(ns.namespaces_of(os.getpid())) == set(ns.Kind)


def test_namespace_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ns.NoSuchProcessError, match="no process with pid 4194304"):
        ns.Namespace.of(4194304, "net")
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(ns.NotANamespaceError, match="is not a namespace file"):
        ns.Namespace.from_path(plain)
    with pytest.raises(ns.WrongKindError, match="is a uts namespace, not a net namespace"):
        ns.Namespace.from_path("/proc/self/ns/uts", "net")
    with pytest.raises(UsageError, match="only pid and user namespaces are nested"):
        ns.Namespace.of("self", "net").parent()


@needs_root
def test_parent_owner_and_owner_uid_through_nsfs_ioctls():
    # a user namespace owned by uid 0 with a pid namespace inside it
    proc = start(["unshare", "-U", "-r", "-p", "-f", "--", "sleep", "30"])
    try:
        sleeper = descendant(proc.pid, "sleep")
        pid_ns = ns.Namespace.of(sleeper, "pid")
        user_ns = ns.Namespace.of(sleeper, "user")
        assert pid_ns != ns.Namespace.of("self", "pid")
        assert pid_ns.parent() == ns.Namespace.of("self", "pid")
        assert user_ns.parent() == ns.Namespace.of("self", "user")
        assert pid_ns.owner() == user_ns
        assert ns.Namespace.of(sleeper, "uts").owner() == ns.Namespace.of("self", "user")
        assert user_ns.owner_uid == 0
        assert ns.Namespace.of("self", "user").parent() is None  # the initial namespace
        owner = pid_ns.owner()
        assert owner is not None and owner.path is None
        assert owner.parent() == ns.Namespace.of("self", "user")  # chains through the held fd
        owner.close()
    finally:
        stop(proc)


# ----------------------------------------------------------------------------- unshare
@needs_root
def test_unshare_uts_and_net_only_in_the_caller():
    host = socket.gethostname()

    def child():
        before = ns_inode("self", "net")
        ns.unshare(["uts", "net"])
        socket.sethostname("clonekit-lib")
        return socket.gethostname(), before != ns_inode("self", "net")

    assert in_child(child) == ("clonekit-lib", True)
    assert socket.gethostname() == host


@needs_root
def test_unshare_user_with_maps_written_from_outside():
    def child():
        ns.unshare("user", uid_map=[(0, 0, 1), (1, 100000, 1000)], gid_map=[(0, 0, 1)])
        with open("/proc/self/uid_map") as f:
            uid_map = f.read().split()
        with open("/proc/self/setgroups") as f:
            setgroups = f.read().strip()
        return uid_map, setgroups, os.getuid()

    uid_map, setgroups, uid = in_child(child)
    assert uid_map == ["0", "0", "1", "1", "100000", "1000"]
    assert setgroups == "allow"  # written by the privileged helper: no need to deny
    assert uid == 0


@needs_root
def test_unshare_self_map_denies_setgroups():
    def child():
        ns.unshare("user", uid_map=[(0, 0, 1)], gid_map=[(0, 0, 1)], setgroups="deny")
        return open("/proc/self/setgroups").read().strip(), open("/proc/self/gid_map").read().split()

    assert in_child(child) == ("deny", ["0", "0", "1"])


@needs_root
def test_unshare_time_offsets_apply_to_children():
    def child():
        ns.unshare("time", monotonic=1000, boottime=2.5)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            with open("/proc/self/timens_offsets") as f:
                offsets = f.read()
            os.write(w, repr((time.clock_gettime(time.CLOCK_MONOTONIC), offsets)).encode())
            os._exit(0)
        os.close(w)
        data = os.read(r, 4096)
        os.waitpid(pid, 0)
        inner, offsets = eval(data)
        return inner - time.clock_gettime(time.CLOCK_MONOTONIC), offsets.split()

    shift, offsets = in_child(child)
    assert 999 < shift < 1001
    assert offsets == ["monotonic", "1000", "0", "boottime", "2", "500000000"]


def test_unshare_user_in_a_multithreaded_process_is_explained():
    def child():
        stop_event = threading.Event()
        t = threading.Thread(target=stop_event.wait)
        t.start()
        try:
            ns.unshare("user")
        finally:
            stop_event.set()
            t.join()

    with pytest.raises(ChildFailed) as info:
        in_child(child)
    assert info.value.errno == errno.EINVAL
    assert "multithreaded process cannot create or enter a user namespace" in info.value.message
    assert "2 threads" in info.value.message


@needs_root
def test_namespace_limit_reached_is_explained():
    # the user.max_*_namespaces limits are per user namespace: lower one inside a new user ns
    def child():
        ns.unshare("user", uid_map=[(0, 0, 1)], gid_map=[(0, 0, 1)])
        with open("/proc/sys/user/max_net_namespaces", "w") as f:
            f.write("0")
        ns.unshare("net")

    with pytest.raises(ChildFailed) as info:
        in_child(child)
    assert info.value.errno == errno.ENOSPC
    assert "cannot create new net namespace" in info.value.message
    assert "/proc/sys/user/max_net_namespaces = 0" in info.value.message


# ----------------------------------------------------------------------------- enter
@pytest.fixture
def uts_target():
    if not ROOT:
        pytest.skip("needs root")
    proc = start(["unshare", "-u", "-n", "--", "sh", "-c", "hostname clonekit-target; exec sleep 30"])
    try:
        wait_for(lambda: comm(proc.pid) == "sleep", what="sleep to start")
        yield proc.pid
    finally:
        stop(proc)


@pytest.mark.parametrize("how", ["pid", "task", "pidfd", "files", "namespace", "path"])
def test_enter_by_every_kind_of_target(uts_target, how):
    pid = uts_target

    def child():
        if how == "pid":
            joined = ns.enter(pid, ["uts", "net"])
        elif how == "task":
            from clonekit.task import Task

            task = Task.from_pid(pid)
            joined = ns.enter(task, "uts")
            task.close()
        elif how == "pidfd":
            fd = os.pidfd_open(pid)
            joined = ns.enter(pidfd=fd, kinds="uts")
            os.close(fd)
        elif how == "files":
            joined = ns.enter(files={"uts": f"/proc/{pid}/ns/uts"})
        elif how == "namespace":
            joined = ns.enter(ns.Namespace.of(pid, "uts"))
        else:
            joined = ns.enter([f"/proc/{pid}/ns/uts", f"/proc/{pid}/ns/net"])
        return [str(k) for k in joined], socket.gethostname(), ns_inode("self", "uts") == ns_inode(pid, "uts")

    joined, hostname, same = in_child(child)
    assert hostname == "clonekit-target" and same
    assert "uts" in joined


def test_enter_all_skips_our_own_user_namespace(uts_target):
    def child():
        return [str(k) for k in ns.enter(uts_target)]

    joined = in_child(child)
    assert "user" not in joined and "uts" in joined and "net" in joined


def test_enter_errors(uts_target, tmp_path):
    with pytest.raises(ns.NoSuchProcessError):
        ns.enter(4194304, "net")
    with pytest.raises(ns.WrongKindError, match="is a uts namespace, not a net namespace"):
        ns.enter(files={"net": f"/proc/{uts_target}/ns/uts"})
    plain = tmp_path / "f"
    plain.write_text("")
    with pytest.raises(ns.NotANamespaceError):
        ns.enter(str(plain))
    # nothing was entered by the failures above
    assert ns_inode("self", "uts") != ns_inode(uts_target, "uts")


# ----------------------------------------------------------------------------- id maps
def test_id_map_values_and_parsing():
    m = ns.IdMap([(0, 1000, 1), ns.IdRange(1, 100000, 65536)])
    assert m.text() == "0 1000 1\n1 100000 65536\n"
    assert m.helper_args() == ["0", "1000", "1", "1", "100000", "65536"]
    from clonekit.ns.idmap import parse_range

    assert parse_range("100000,0,65536") == ns.IdRange(0, 100000, 65536)  # util-linux 2.38 order
    assert parse_range("0:100000:65536") == ns.IdRange(0, 100000, 65536)  # 2.39+ order
    with pytest.raises(UsageError, match="overlap inside"):
        ns.IdMap([(0, 1000, 10), (5, 5000, 10)])
    with pytest.raises(UsageError, match="bad uid range"):
        parse_range("1,2")


def test_subid_ranges_from_a_file(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("someone:100000:65536\n# comment\nroot:200000:1000\n0:300000:10\n")
    assert ns.subid_ranges("root", str(f)) == [(200000, 1000), (300000, 10)]


# ----------------------------------------------------------------------------- persist / release
def test_persist_and_release_a_namespace(scratch, uts_target):
    path = os.path.join(scratch, "uts")
    original = ns.Namespace.of(uts_target, "uts")
    assert ns.persist(original, path) == path
    assert ns.Namespace.from_path(path) == original
    assert (path, original) in [(p, n) for p, n in ns.persisted()]
    with pytest.raises(ns.NotANamespaceError):
        ns.release(scratch)  # a directory, not a persisted namespace: nothing is unmounted
    ns.release(path, remove=True)
    assert not os.path.exists(path)
    assert all(p != path for p, _ in ns.persisted())


def test_persist_a_pathless_namespace_from_an_ioctl(scratch):
    proc = start(["unshare", "-U", "-r", "-u", "--", "sleep", "30"])
    try:
        wait_for(lambda: comm(proc.pid) == "sleep", what="sleep")
        owner = ns.Namespace.of(proc.pid, "uts").owner()
        assert owner is not None and owner.path is None
        path = ns.persist(owner, os.path.join(scratch, "user"))
        assert ns.Namespace.from_path(path, "user") == ns.Namespace.of(proc.pid, "user")
        ns.release(path)
        owner.close()
    finally:
        stop(proc)


def test_enter_user_namespace_while_multithreaded_is_explained(uts_target):
    proc = start(["unshare", "-U", "-r", "--", "sleep", "30"])
    try:
        wait_for(lambda: comm(proc.pid) == "sleep", what="sleep")

        def child():
            stop_event = threading.Event()
            t = threading.Thread(target=stop_event.wait)
            t.start()
            try:
                ns.enter(proc.pid, "user")
            finally:
                stop_event.set()
                t.join()

        with pytest.raises(ChildFailed) as info:
            in_child(child)
        assert info.value.errno == errno.EINVAL
        assert "multithreaded process cannot enter a user namespace" in info.value.message
    finally:
        stop(proc)


# ----------------------------------------------------------------------------- fork
@needs_root
def test_fork_child_is_born_in_new_namespaces_with_maps_written_by_the_parent():
    r, w = os.pipe()
    child = ns.fork(["user", "pid", "uts"], uid_map=[(0, 0, 1), (1, 200000, 100)], gid_map=[(0, 0, 1)])
    if child == 0:  # pragma: no cover - child
        try:
            socket.sethostname("clonekit-fork")  # needs CAP_SYS_ADMIN in the new user ns: maps done
            with open("/proc/self/uid_map") as f:
                uid_map = " ".join(f.read().split())
            os.write(w, f"{os.getpid()}|{os.getuid()}|{uid_map}|{socket.gethostname()}".encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = os.read(r, 4096).decode()
        assert child.wait(timeout=10) == 0
    finally:
        os.close(r)
        child.close()
    assert data == "1|0|0 0 1 1 200000 100|clonekit-fork"


def test_fork_refuses_time_namespaces():
    with pytest.raises(UsageError, match="cannot make a time namespace"):
        ns.fork("time")


@needs_root
def test_fork_with_maps_that_cannot_be_written_leaves_no_child():
    from ns_helpers import children

    from clonekit.errors import KernelError

    before = children(os.getpid())
    with pytest.raises(KernelError, match="cannot write uid_map") as info:
        ns.fork("user", uid_map=[(0, 4294967294, 2)])  # past the last uid: the kernel says EINVAL
    assert info.value.errno == errno.EINVAL
    assert children(os.getpid()) == before
