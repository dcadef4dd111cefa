"""clonekit.check: each rule of the table with its errno and its words, the table's order and
version ranges, the error class, bad input, and CallerState.current() read from real situations
(threads, chroot, pid 1, unshared namespaces, dropped privileges) made in forked children."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import pickle
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import pytest
from core_helpers import in_child

import clonekit
from clonekit.errors import Error, KernelError, UsageError
from clonekit.flags import CloneFlag
from clonekit.rules import (
    RULES,
    CallerState,
    CloneFlagsError,
    check,
    first_refusal,
    running_kernel,
    unshare_effective_flags,
)

F = CloneFlag
SIGCHLD = int(signal.SIGCHLD)
BASE = CallerState(kernel=(6, 18), ns_limits={k: 1000 for k in
                                              ("user", "mnt", "uts", "ipc", "pid", "cgroup", "net", "time")})
EINVAL, EPERM, ENOSPC, ENOSYS, EAGAIN = errno.EINVAL, errno.EPERM, errno.ENOSPC, errno.ENOSYS, errno.EAGAIN

_libc = ctypes.CDLL(None, use_errno=True)


def sys_unshare(flags: int) -> int:
    """The real unshare(2): 0 or the errno."""
    return 0 if _libc.syscall(272, ctypes.c_ulong(flags)) == 0 else ctypes.get_errno()


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def write_id_maps(uid: int, gid: int) -> None:
    """Map the ids we had before unshare(CLONE_NEWUSER) as root of the new user namespace."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")




def refusal(flags: Any, via: str = "clone3", sig: int = SIGCHLD, **state: Any) -> tuple[int, str, str]:
    """(errno, rule id, message) of check() for a made-up caller, or (0, "", "")."""
    st = dataclasses.replace(BASE, **state)
    try:
        check(flags, via=via, exit_signal=sig, state=st)
    except CloneFlagsError as exc:
        return exc.errno, exc.rule_id, str(exc)
    return 0, "", ""


# (flags, via, exit signal, state changes) -> (errno, rule id, words the message must contain)
CASES: list[tuple[Any, str, int, dict[str, Any], int, str, str]] = [
    (F.CLEAR_SIGHAND, "clone", SIGCHLD, {}, EINVAL, "clone.high_bits", "low 32 bits"),
    (F.INTO_CGROUP | F.VM, "clone", SIGCHLD, {}, EINVAL, "clone.high_bits", "only in clone3"),
    (0, "clone", 256, {}, EINVAL, "clone.exit_signal_byte", "0..255"),
    (0, "clone3", SIGCHLD, {"kernel": (5, 2)}, ENOSYS, "clone3.missing", "since Linux 5.3"),
    (0, "clone3", 65, {}, EINVAL, "clone3.exit_signal", "0..64"),
    (0, "clone3", -1, {}, EINVAL, "clone3.exit_signal", "not -1"),
    (F.CLEAR_SIGHAND, "clone3", SIGCHLD, {"kernel": (5, 4)}, EINVAL, "clone3.clear_sighand_unknown", "5.5"),
    (F.INTO_CGROUP, "clone3", SIGCHLD, {"kernel": (5, 6)}, EINVAL, "clone3.into_cgroup_unknown", "5.7"),
    (F.DETACHED, "clone3", SIGCHLD, {}, EINVAL, "clone3.detached", "reserved"),
    (F.PIDFD | F.DETACHED, "clone3", SIGCHLD, {}, EINVAL, "clone3.detached", "CLONE_DETACHED"),
    (F.NEWTIME, "clone3", SIGCHLD, {"kernel": (6, 2)}, EINVAL, "clone3.newtime_csignal", "6.3"),
    (F.VM | F.SIGHAND | F.CLEAR_SIGHAND, "clone3", SIGCHLD, {}, EINVAL,
     "clone3.sighand_clear_sighand", "contradict"),
    (F.VM | F.SIGHAND | F.THREAD, "clone3", SIGCHLD, {}, EINVAL, "clone3.thread_exit_signal",
     "exit_signal 0"),
    (F.PARENT, "clone3", int(signal.SIGUSR1), {}, EINVAL, "clone3.parent_exit_signal", "asked for 10"),
    (F.PIDFD, "unshare", 0, {}, EINVAL, "unshare.not_accepted", "cannot take CLONE_PIDFD"),
    (F.IO | F.NEWNS, "unshare", 0, {}, EINVAL, "unshare.not_accepted", "CLONE_IO"),
    (F.NEWCGROUP, "unshare", 0, {"kernel": (4, 5)}, EINVAL, "unshare.newcgroup_unknown", "4.6"),
    (F.NEWTIME, "unshare", 0, {"kernel": (5, 5)}, EINVAL, "unshare.newtime_unknown", "5.6"),
    (F.NEWUSER, "unshare", 0, {"threads": 3}, EINVAL, "unshare.multithreaded", "has 3 threads"),
    (F.VM, "unshare", 0, {"shares_signal_handlers": True}, EINVAL, "unshare.shared_sighand",
     "shares this one's signal handlers"),
    (F.VM, "unshare", 0, {"shares_memory": True}, EINVAL, "unshare.shared_vm", "memory"),
    (F.PIDFD | F.PARENT_SETTID, "clone", SIGCHLD, {}, EINVAL, "clone.pidfd_parent_settid", "parent_tid"),
    (F.NEWNS | F.FS, "clone3", SIGCHLD, {}, EINVAL, "fork.newns_fs", "CLONE_NEWNS cannot go with CLONE_FS"),
    (F.NEWUSER | F.FS, "clone", SIGCHLD, {}, EINVAL, "fork.newuser_fs", "user namespaces"),
    (F.VM | F.THREAD, "clone3", 0, {}, EINVAL, "fork.thread_sighand",
     "CLONE_THREAD needs CLONE_SIGHAND: threads of one group must share signal handlers"),
    (F.SIGHAND, "clone", SIGCHLD, {}, EINVAL, "fork.sighand_vm", "CLONE_SIGHAND needs CLONE_VM"),
    (F.PARENT, "clone3", 0, {"is_init": True}, EINVAL, "fork.parent_from_init", "init process"),
    (F.VM | F.SIGHAND | F.THREAD | F.NEWPID, "clone3", 0, {}, EINVAL, "fork.thread_newuser_newpid",
     "CLONE_NEWPID"),
    (F.VM | F.SIGHAND | F.THREAD, "clone3", 0, {"pid_for_children_differs": True}, EINVAL,
     "fork.thread_pid_for_children", "pid_for_children"),
    (F.PIDFD | F.DETACHED, "clone", SIGCHLD, {}, EINVAL, "fork.pidfd_detached", "CLONE_DETACHED"),
    (F.PIDFD | F.VM | F.SIGHAND | F.THREAD, "clone3", 0, {"kernel": (6, 8)}, EINVAL,
     "fork.pidfd_thread", "before Linux 6.9"),
    (F.VM, "clone3", SIGCHLD, {"kernel": (6, 0), "time_for_children_differs": True}, EINVAL,
     "fork.time_for_children", "time_for_children"),
    (F.NEWUSER, "clone3", SIGCHLD, {"user_ns_depth": 33}, ENOSPC, "userns.depth", "level 33"),
    (F.NEWUSER, "unshare", 0, {"ns_limits": {"user": 0}}, ENOSPC, "userns.limit", "max_user_namespaces"),
    (F.NEWUSER, "unshare", 0, {"chrooted": True}, EPERM, "userns.chrooted", "chrooted"),
    (F.NEWUSER | F.NEWNET, "clone", SIGCHLD, {"ids_mapped": False}, EPERM, "userns.unmapped", "uid_map"),
    (F.FILES, "clone", SIGCHLD, {"nproc": 7, "nproc_limit": 7}, EAGAIN, "fork.nproc",
     "already has 7 tasks and the limit is 7"),
    (0, "clone3", SIGCHLD, {"nr_threads": 500, "threads_max": 500}, EAGAIN, "fork.threads_max",
     "threads-max"),
    (F.NEWUTS, "clone3", SIGCHLD, {"cap_sys_admin": False}, EPERM, "ns.cap_sys_admin", "CAP_SYS_ADMIN"),
    (F.NEWTIME, "unshare", 0, {"cap_sys_admin": False}, EPERM, "ns.cap_sys_admin", "CLONE_NEWUSER"),
    (F.NEWIPC | F.SYSVSEM, "clone3", SIGCHLD, {}, EINVAL, "fork.newipc_sysvsem", "undo"),
    (F.NEWNS, "unshare", 0, {"ns_limits": {"mnt": 0}}, ENOSPC, "mntns.limit", "max_mnt_namespaces"),
    (F.NEWUTS, "clone3", SIGCHLD, {"ns_limits": {"uts": 0}}, ENOSPC, "utsns.limit", "max_uts_namespaces"),
    (F.NEWIPC, "clone", SIGCHLD, {"ns_limits": {"ipc": 0}}, ENOSPC, "ipcns.limit", "max_ipc_namespaces"),
    (F.NEWPID, "unshare", 0, {"pid_for_children_differs": True}, EINVAL, "pidns.pid_for_children",
     "fork once first"),
    (F.NEWPID, "clone3", SIGCHLD, {"pid_ns_depth": 32}, ENOSPC, "pidns.depth", "level 32"),
    (F.NEWPID, "clone3", SIGCHLD, {"ns_limits": {"pid": 0}}, ENOSPC, "pidns.limit", "max_pid_namespaces"),
    (F.NEWCGROUP, "unshare", 0, {"ns_limits": {"cgroup": 0}}, ENOSPC, "cgroupns.limit", "cgroup namespace"),
    (F.NEWNET, "clone3", SIGCHLD, {"ns_limits": {"net": 0}}, ENOSPC, "netns.limit", "max_net_namespaces"),
    (F.NEWTIME, "clone3", SIGCHLD, {"ns_limits": {"time": 0}}, ENOSPC, "timens.limit", "max_time"),
    (0, "clone", SIGCHLD, {"pid_for_children_differs": True, "pid_for_children_dead": True},
     errno.ENOMEM, "pidns.dead", "lost its init"),
    (F.INTO_CGROUP, "clone3", SIGCHLD, {}, errno.EBADF, "cgroup.no_fd",
     "needs the fd of a cgroup2 directory"),
]


@pytest.mark.parametrize("flags,via,sig,state,err,rule_id,words", CASES,
                         ids=[f"{c[5]}-{c[1]}" for c in CASES])
def test_each_rule_gives_its_errno_and_words(flags, via, sig, state, err, rule_id, words):
    got_err, got_id, message = refusal(flags, via, sig, **state)
    assert (got_err, got_id) == (err, rule_id), message
    assert message.startswith(errno.errorcode[err] + ": ")
    assert words in message


def test_cases_cover_every_rule_except_the_cgroup_fd_ones_tested_on_real_fds():
    covered = {c[5] for c in CASES}
    real_fd_rules = {"clone3.cgroup_fd", "cgroup.bad_fd", "cgroup.not_cgroup2", "cgroup.removed",
                     "cgroup.busy", "cgroup.thread_elsewhere"}
    assert covered | real_fd_rules == {r.id for r in RULES}


@pytest.mark.parametrize("flags,via,sig,state", [
    (F.VM | F.SIGHAND | F.THREAD, "clone3", 0, {}),
    (F.VM | F.SIGHAND | F.THREAD, "clone", SIGCHLD, {}),      # legacy clone: exit signal ignored
    (F.PIDFD | F.VM | F.SIGHAND | F.THREAD, "clone3", 0, {"kernel": (6, 9)}),
    (F.NEWTIME, "clone3", SIGCHLD, {"kernel": (6, 3)}),
    (F.VM, "clone3", SIGCHLD, {"kernel": (6, 1), "time_for_children_differs": True}),
    (F.NEWUSER, "clone3", SIGCHLD, {"user_ns_depth": 32}),
    (F.NEWPID, "unshare", 0, {"pid_ns_depth": 31}),
    (F.NEWUSER | F.NEWUTS | F.NEWNET, "clone3", SIGCHLD, {"cap_sys_admin": False}),
    (F.NEWIPC | F.SYSVSEM, "unshare", 0, {}),                  # unshare has no NEWIPC/SYSVSEM rule
    (F.DETACHED, "clone", SIGCHLD, {}),                        # legacy clone ignores DETACHED
    (F.VM | F.NEWNS, "unshare", 0, {}),                        # implied FS is fine for unshare
    (F.PARENT, "clone", SIGCHLD, {}),
    (0, "clone", 255, {}),
    (0, "clone3", 64, {}),
    (F.NEWPID | F.PARENT, "clone3", 0, {}),                    # allowed since 3.13 (man page is wrong)
])
def test_sets_the_kernel_accepts(flags, via, sig, state):
    assert refusal(flags, via, sig, **state) == (0, "", "")


@pytest.mark.parametrize("flags,sig,words", [
    (0x40, None, "low byte 0x40 is the exit signal: 64 (SIGRTMAX)"),
    (0x1, None, "low byte 0x1 is the exit signal: 1 (SIGHUP)"),
    (F.VM | 0x11, None, "low byte 0x11 is the exit signal: 17 (SIGCHLD)"),
    ("newns|0x22", None, "low byte 0x22 is the exit signal: 34 (SIGRTMIN)"),
    (0x80, None, "low byte 0x80 is the exit signal: 128, which is no signal (above _NSIG, 64)"),
    (F.NEWTIME, None, "CLONE_NEWTIME (0x80) cannot be said through legacy clone(), so no time namespace"),
    (0x40, SIGCHLD, "low byte 0x40 (with exit_signal or-ed in: 0x51) is the exit signal: 81, which is no"),
])
def test_legacy_clone_low_byte_is_accepted_as_the_exit_signal(flags, sig, words):
    """clone() passes flags | exit signal in one word: the kernel takes the low byte (CSIGNAL) as
    the exit signal, whatever it holds (do_notify_parent sends none that is not valid), and
    check() says what the bits became instead of refusing them."""
    said = check(flags, via="clone", exit_signal=sig, state=BASE)
    assert said is not None and said.startswith("low byte 0x") and words in said, said
    found = first_refusal(flags, via="clone", exit_signal=sig, state=BASE)
    assert found is None


def test_low_byte_bits_are_no_flags_outside_legacy_clone():
    assert check(F.NEWTIME, via="clone3", state=BASE) is None  # a real flag there
    assert check(0, via="clone", state=BASE) is None  # nothing to say: SIGCHLD as asked
    assert check(F.VM, via="clone", exit_signal=SIGCHLD, state=BASE) is None
    with pytest.raises(UsageError, match=r"0x40 that include/uapi/linux/sched\.h does not define"):
        check(0x40, via="clone3", state=BASE)
    with pytest.raises(UsageError, match="does not define"):
        check(0x40, via="unshare", state=BASE)


def test_kernel_order_first_rule_wins():
    # copy_process checks NEWNS|FS before THREAD without SIGHAND
    assert refusal(F.NEWNS | F.FS | F.THREAD, "clone3", 0)[1] == "fork.newns_fs"
    # clone3_args_valid runs before copy_process
    assert refusal(F.SIGHAND | F.DETACHED, "clone3")[1] == "clone3.detached"
    # the exit signal is validated while copying the struct, before the flags
    assert refusal(F.DETACHED, "clone3", 99)[1] == "clone3.exit_signal"
    # user namespace nesting (copy_creds) comes before CAP_SYS_ADMIN (copy_namespaces)
    assert refusal(F.NEWUSER | F.NEWNET, "clone3", user_ns_depth=33, cap_sys_admin=False)[1] == "userns.depth"
    # the mount namespace limit is met before the pid namespace's
    assert refusal(F.NEWNS | F.NEWPID, "clone3", ns_limits={"mnt": 0, "pid": 0})[1] == "mntns.limit"


def test_unshare_adds_implied_flags_in_the_kernel_order():
    assert unshare_effective_flags(F.NEWUSER) == F.NEWUSER | F.THREAD | F.FS
    assert unshare_effective_flags(F.VM) == F.VM | F.SIGHAND | F.THREAD
    assert unshare_effective_flags(F.SIGHAND) == F.SIGHAND | F.THREAD
    assert unshare_effective_flags(F.NEWNS) == F.NEWNS | F.FS
    assert unshare_effective_flags(F.FILES | F.NEWNET) == F.FILES | F.NEWNET
    _, _, message = refusal(F.NEWUSER, "unshare", 0, threads=2)
    assert "with CLONE_FS|CLONE_THREAD that unshare() implies" in message


def test_table_is_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.vias and rule.vias <= {"clone3", "clone", "unshare"}, rule.id
        assert rule.errno in errno.errorcode, rule.id
        assert rule.text and rule.where, rule.id
        if rule.since and rule.until:
            assert rule.since < rule.until
    # version ranges: [since, until)
    pidfd_thread = next(r for r in RULES if r.id == "fork.pidfd_thread")
    assert pidfd_thread.exists_in((6, 8)) and not pidfd_thread.exists_in((6, 9))
    assert not pidfd_thread.exists_in((5, 1))
    # clone3's checks come before copy_process's, which come before the namespaces'
    assert ids.index("clone3.thread_exit_signal") < ids.index("fork.thread_sighand")
    assert ids.index("fork.thread_sighand") < ids.index("userns.depth") < ids.index("ns.cap_sys_admin")
    assert ids.index("ns.cap_sys_admin") < ids.index("pidns.depth") < ids.index("cgroup.no_fd")


def test_clone_flags_error_is_an_oserror_with_the_kernels_errno():
    with pytest.raises(OSError) as info:
        check(F.VM | F.THREAD, exit_signal=0, state=BASE)
    exc = info.value
    assert isinstance(exc, CloneFlagsError) and isinstance(exc, KernelError) and isinstance(exc, Error)
    assert exc.errno == errno.EINVAL
    assert exc.rule == "CLONE_THREAD needs CLONE_SIGHAND: threads of one group must share signal handlers"
    assert str(exc) == f"EINVAL: {exc.rule}"
    assert exc.flags == F.VM | F.THREAD and exc.via == "clone3" and exc.rule_id == "fork.thread_sighand"
    again = pickle.loads(pickle.dumps(exc))
    assert (again.errno, again.rule, again.flags, again.via) == (exc.errno, exc.rule, exc.flags, exc.via)
    assert clonekit.CloneFlagsError is CloneFlagsError and clonekit.check is check


@pytest.mark.parametrize("kwargs,words", [
    ({"via": "fork"}, "via must be 'clone3', 'clone' or 'unshare'"),
    ({"via": None}, "not None"),
    ({"exit_signal": "SIGCHLD"}, "exit_signal must be a signal number"),
    ({"exit_signal": 1.5}, "float"),
    ({"exit_signal": True}, "bool"),
    ({"state": "root"}, "state must be a CallerState"),
])
def test_bad_arguments_are_usage_errors(kwargs, words):
    with pytest.raises(UsageError, match=words):
        check(0, **kwargs)


def test_bad_flags_are_usage_errors_not_kernel_errors():
    with pytest.raises(UsageError, match="unknown clone flag 'nope'"):
        check("vm|nope")
    with pytest.raises(UsageError, match="does not define"):
        check(1 << 40)
    with pytest.raises(UsageError, match="cgroup must be the fd or the path"):
        check(F.INTO_CGROUP, cgroup=1.5, state=BASE)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cannot open cgroup directory"):
        check(F.INTO_CGROUP, cgroup="/nonexistent/clonekit", state=BASE)


def test_signals_enum_and_text_flags_are_accepted():
    assert check("newuts|newipc", exit_signal=signal.SIGUSR1, state=BASE) is None
    assert first_refusal("vm|sighand|thread", exit_signal=signal.Signals.SIGCHLD, state=BASE) is not None


# ------------------------------------------------------------------------------------------
# CallerState.current(): read from real situations
# ------------------------------------------------------------------------------------------


def test_current_state_of_this_process_matches_proc():
    st = CallerState.current()
    assert st.kernel == running_kernel() == tuple(int(x) for x in
                                                   os.uname().release.split("-")[0].split(".")[:2])
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert st.threads == int(status["Threads"])
    assert st.pid_ns_depth == len(status["NSpid"].split()) - 1
    assert st.cap_sys_admin == bool(int(status["CapEff"], 16) & (1 << 21))
    for kind, value in st.ns_limits.items():
        with open(f"/proc/sys/user/max_{kind}_namespaces") as f:
            assert value == int(f.read())
    assert not st.chrooted and st.ids_mapped
    assert st.threads_max > st.nr_threads > 0


def test_threads_are_counted():
    def child() -> tuple[int, int]:
        stop = threading.Event()
        workers = [threading.Thread(target=stop.wait) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            return CallerState.current().threads, len(os.listdir("/proc/self/task"))
        finally:
            stop.set()
            for w in workers:
                w.join()

    counted, tasks = in_child(child)
    assert counted == tasks == 3


def _chroot_child(kind: str) -> Callable[[], tuple[bool, bool]]:
    """A child that enters a private mount namespace, makes a root with /proc and chroots."""

    def child() -> tuple[bool, bool]:
        before = CallerState.current().chrooted
        assert sys_unshare(F.NEWNS) == 0
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        base = tempfile.mkdtemp(prefix="clonekit-chroot-")
        root = os.path.join(base, "root")
        os.makedirs(os.path.join(root, "proc"))
        if kind == "mountpoint":
            mount(root, root, None, MS_BIND)
        mount("proc", os.path.join(root, "proc"), "proc", 0)
        if kind == "slash":
            os.chroot("/")
        else:
            os.chroot(root)
        os.chdir("/")
        if kind == "unprivileged":
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
        full, for_newuser = CallerState.current(), CallerState.current(for_flags=F.NEWUSER | F.NEWNS)
        # without CLONE_NEWUSER no rule reads it, so it is not looked at
        assert CallerState.current(for_flags=F.NEWNS).chrooted is False
        assert full.chrooted == for_newuser.chrooted
        return before, full.chrooted

    return child


@pytest.mark.parametrize("kind,expected", [
    ("directory", True), ("mountpoint", True), ("slash", False), ("unprivileged", True),
])
def test_chroot_is_detected_like_the_kernel_does(kind, expected):
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    try:
        before, after = in_child(_chroot_child(kind))
    finally:
        for name in set(os.listdir(tempfile.gettempdir())) - tmp_before:
            if name.startswith("clonekit-chroot-"):
                shutil.rmtree(os.path.join(tempfile.gettempdir(), name), ignore_errors=True)
    assert before is False
    assert after is expected


def test_pid_1_of_a_new_pid_namespace_is_init_and_one_level_deeper():
    outer = CallerState.current().pid_ns_depth

    def child() -> tuple[bool, bool, Any]:
        assert sys_unshare(F.NEWPID) == 0
        after_unshare = CallerState.current()

        def grandchild() -> tuple[bool, int, int]:
            st = CallerState.current()
            return st.is_init, st.pid_ns_depth, os.getpid()

        return after_unshare.pid_for_children_differs, after_unshare.is_init, in_child(grandchild)

    differs, init_before, (is_init, depth, pid) = in_child(child)
    assert differs is True and init_before is False
    assert (is_init, depth, pid) == (True, outer + 1, 1)


def test_time_for_children_after_unshare_newtime():
    def child() -> tuple[bool, bool]:
        before = CallerState.current().time_for_children_differs
        assert sys_unshare(F.NEWTIME) == 0
        return before, CallerState.current().time_for_children_differs

    assert in_child(child) == (False, True)


def test_user_namespace_depth_and_id_mapping():
    def child() -> list[tuple[int, bool, bool, bool]]:
        seen = []
        st = CallerState.current()
        seen.append((st.user_ns_depth, st.user_ns_depth_exact, st.ids_mapped, st.cap_sys_admin))
        uid, gid = os.geteuid(), os.getegid()
        assert sys_unshare(F.NEWUSER) == 0
        st = CallerState.current()
        seen.append((st.user_ns_depth, st.user_ns_depth_exact, st.ids_mapped, st.cap_sys_admin))
        write_id_maps(uid, gid)
        st = CallerState.current()
        seen.append((st.user_ns_depth, st.user_ns_depth_exact, st.ids_mapped, st.cap_sys_admin))
        return seen

    initial, unmapped, mapped = in_child(child)
    assert initial == (0, True, True, True)
    # from inside a nested user namespace the kernel hides its ancestors: the depth is a lower bound
    assert unmapped == (1, False, False, True)
    assert mapped == (1, False, True, True)


def test_dropping_root_drops_cap_sys_admin():
    def child() -> bool:
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        return CallerState.current().cap_sys_admin

    assert in_child(child) is False


def test_cgroup_path_and_fd_targets_agree(tmp_path):
    from clonekit.rules import CgroupTarget

    assert CgroupTarget.inspect(None) is None
    plain = CgroupTarget.inspect(str(tmp_path))
    assert plain is not None and plain.is_open and not plain.is_cgroup2_dir
    fd = os.open(str(tmp_path), os.O_RDONLY)
    os.close(fd)
    closed = CgroupTarget.inspect(fd)
    assert closed is not None and not closed.is_open
    negative = CgroupTarget.inspect(-3)
    assert negative is not None and not negative.is_open
