"""The kernel is the oracle: check() must give exactly the errno of the real syscall.

``clonekit._native.kernel_verdict`` makes the real clone3/clone/unshare call in a throwaway
process (a grandchild in a throwaway PID namespace, or, with ``in_place=True``, the calling
process, which must itself be a throwaway) and returns 0 or the kernel's errno.  Every single
bit and a seeded random sample of combinations and exit signals over the three entry points are
compared, then the caller states the kernel looks at, each made for real in a forked child.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable

import pytest
from core_helpers import in_child

from clonekit.flags import CloneFlag
from clonekit.rules import CallerState, check, first_refusal

try:
    from clonekit._native import kernel_verdict
except (ImportError, AttributeError):  # pragma: no cover - before the extension is built
    kernel_verdict = None

pytestmark = pytest.mark.skipif(
    kernel_verdict is None,
    reason="clonekit._native.kernel_verdict is not built (cd /work/main && pip install -e .)",
)

F = CloneFlag
BITS = [f for f in CloneFlag]
SIGCHLD = int(signal.SIGCHLD)
SIGNALS = [0, SIGCHLD, int(signal.SIGUSR1), int(signal.SIGKILL), 32, 64, 65, 255]
# bits that make the interesting rules meet; the sample draws from them more often
HOT = [F.VM, F.SIGHAND, F.THREAD, F.FS, F.NEWNS, F.NEWUSER, F.NEWPID, F.PIDFD, F.PARENT, F.SYSVSEM,
       F.NEWIPC, F.CLEAR_SIGHAND, F.DETACHED, F.PARENT_SETTID, F.NEWTIME, F.FILES]
LIBC = [F.CHILD_SETTID | F.CHILD_CLEARTID, F.VM | F.VFORK, F.CLEAR_SIGHAND | F.VM | F.VFORK,
        F.VM | F.FS | F.FILES | F.SYSVSEM | F.SIGHAND | F.THREAD | F.SETTLS | F.PARENT_SETTID
        | F.CHILD_CLEARTID]
UNIFIED = "/sys/fs/cgroup/unified"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def sys_unshare(flags: int) -> int:
    return 0 if _libc.syscall(272, ctypes.c_ulong(flags)) == 0 else ctypes.get_errno()


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


MS_REC, MS_PRIVATE = 16384, 1 << 18




def mine(flags: int, via: str, sig: int, state: CallerState | None = None,
         cgroup: int | None = None) -> tuple[int, str]:
    found = first_refusal(flags, via=via, exit_signal=sig, state=state, cgroup=cgroup)
    if found is None:
        return 0, ""
    return found[0].errno, found[0].id


def kernel(flags: int, via: str, sig: int, cgroup_fd: int = -1, in_place: bool = False) -> int:
    assert kernel_verdict is not None
    answer = int(kernel_verdict(int(flags), via, int(sig), cgroup_fd, in_place=in_place))
    assert answer >= 0, f"kernel_verdict's own machinery failed: {answer}"
    return answer


def compare(cases: Iterable[tuple[int, str, int]], state: CallerState | None,
            cgroup_fd: int | None = None, in_place: bool = False) -> list[str]:
    """Mismatches between check() and the kernel, as readable lines."""
    bad = []
    for flags, via, sig in cases:
        want = kernel(flags, via, sig, -1 if cgroup_fd is None else cgroup_fd, in_place)
        got, rule = mine(flags, via, sig, state, cgroup_fd if flags & F.INTO_CGROUP else None)
        if got != want:
            bad.append(f"{via}({CloneFlag(flags)}, exit_signal={sig}): kernel "
                       f"{errno.errorcode.get(want, want)}, check() {errno.errorcode.get(got, got)} ({rule})")
    return bad


@pytest.fixture(scope="module")
def worker_state() -> CallerState:
    """The situation of kernel_verdict's worker: like us, single-threaded, one PID ns deeper."""
    here = CallerState.current()
    return dataclasses.replace(here, threads=1, is_init=False, pid_ns_depth=here.pid_ns_depth + 1)


def expressible(flags: int, via: str, sig: int) -> bool:
    """Legacy clone() cannot say bits >= 32 (check() refuses them on purpose, while the raw
    syscall would silently drop them), nor an exit signal above 255.  Bits of its low byte
    (NEWTIME among them) are the exit signal, as the kernel reads them."""
    if via == "clone":
        return not (flags >> 32 or sig > 255)
    return True


# ------------------------------------------------------------------------------------------
# flags and exit signals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["clone3", "clone", "unshare"])
def test_every_single_bit_and_exit_signal(via, worker_state):
    signals = [0] if via == "unshare" else SIGNALS
    cases = [(int(bit), via, sig) for bit in [F(0), *BITS] for sig in signals
             if expressible(int(bit), via, sig) and not (bit & F.INTO_CGROUP and via == "clone3")]
    assert len(cases) >= 20
    assert compare(cases, worker_state) == []


def _sample(rnd: random.Random, via: str, n: int) -> list[tuple[int, str, int]]:
    cases: list[tuple[int, str, int]] = []
    while len(cases) < n:
        roll = rnd.random()
        if roll < 0.3:  # a glibc set with one or two bits toggled: many accepted calls
            flags = int(rnd.choice(LIBC))
            for _ in range(rnd.randint(1, 2)):
                flags ^= int(rnd.choice(HOT))
        else:
            flags = 0
            for _ in range(rnd.randint(1, 6)):
                flags |= int(rnd.choice(HOT if rnd.random() < 0.7 else BITS))
        if via == "clone3":
            flags &= ~F.INTO_CGROUP  # with a real cgroup fd in its own test
        sig = 0 if via == "unshare" else rnd.choice([*SIGNALS, 0, 0, SIGCHLD, SIGCHLD])
        if expressible(flags, via, sig):
            cases.append((flags, via, sig))
    return cases


def test_legacy_clone_low_byte_bits_as_the_kernel_reads_them(worker_state):
    """Any bit of legacy clone()'s low byte is part of the exit signal, valid (1..64) or not:
    the kernel accepts them all, and check() agrees (and says what they became)."""
    lows = [0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x41, 0x7F, 0xFF]
    # never SIGSTOP (0x13): the verdict's worker cannot block it and would stop for good
    cases = [(low | extra, "clone", sig) for low in lows for extra in (0, int(F.VM | F.VFORK), int(F.NEWNS))
             for sig in (0, SIGCHLD) if low | sig != signal.SIGSTOP]
    assert compare(cases, worker_state) == []
    assert all(check(f, via="clone", exit_signal=s, state=worker_state) for f, _, s in cases)


@pytest.mark.parametrize("via", ["clone3", "clone", "unshare"])
def test_seeded_random_combinations(via, worker_state):
    rnd = random.Random(f"clonekit-oracle-{via}")
    cases = _sample(rnd, via, 350)
    accepted = sum(1 for f, v, s in cases if mine(f, v, s, worker_state)[0] == 0)
    assert 20 < accepted < len(cases) - 20, "the sample should hold both accepted and refused calls"
    assert compare(cases, worker_state) == []


def test_legacy_clone_reads_newtime_as_exit_signal_bits_and_makes_no_time_namespace():
    """What check()'s clone.newtime rule claims: clone(CLONE_NEWTIME|SIGCHLD) "succeeds" with no
    new time namespace (0x80 lands in the exit signal), while clone3 makes one."""

    def child() -> tuple[str, int, str, str, int]:
        own = os.readlink("/proc/self/ns/time")

        def read_child_ns(pid: int, r: int, w: int) -> tuple[str, int]:
            if pid == 0:  # the new task: a fork-like copy of this single-threaded process
                os.write(w, os.readlink("/proc/self/ns/time").encode())
                os._exit(0)
            os.close(w)
            seen = os.read(r, 200).decode()
            os.close(r)
            _, status = os.waitpid(pid, 0x40000000)  # __WALL: the exit signal is not SIGCHLD
            return seen, status

        r, w = os.pipe()
        pid = _libc.syscall(56, ctypes.c_ulong(F.NEWTIME | SIGCHLD), None, None, None, None)  # clone
        assert pid >= 0, os.strerror(ctypes.get_errno())
        legacy, status = read_child_ns(pid, r, w)
        args = (ctypes.c_uint64 * 11)(int(F.NEWTIME), 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0)
        r, w = os.pipe()
        pid = _libc.syscall(435, ctypes.byref(args), ctypes.c_size_t(88))  # clone3
        assert pid >= 0, os.strerror(ctypes.get_errno())
        modern, status3 = read_child_ns(pid, r, w)
        return own, status, legacy, modern, status3

    own, status, legacy, modern, status3 = in_child(child)
    assert status == 0 and status3 == 0
    assert legacy == own, "legacy clone with 0x80 must have made no time namespace"
    assert modern != own, "clone3 with CLONE_NEWTIME makes a new time namespace"
    said = check(F.NEWTIME, via="clone", exit_signal=SIGCHLD, state=CallerState())
    assert said is not None and "is the exit signal: 145" in said and "no time namespace is made" in said
    assert check(F.NEWTIME, via="clone3", state=CallerState()) is None


# ------------------------------------------------------------------------------------------
# CLONE_INTO_CGROUP with real cgroup2 directories
# ------------------------------------------------------------------------------------------


def _rmdir_when_empty(path: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY while the last tasks that were in it are released
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture
def oracle_cgroup():
    if not os.path.isdir(UNIFIED):
        pytest.skip(f"no cgroup2 hierarchy at {UNIFIED}")
    top = os.path.join(UNIFIED, "clonekit-test-oracle")
    path = os.path.join(top, uuid.uuid4().hex[:12])
    os.makedirs(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield path, fd
    finally:
        os.close(fd)
        _rmdir_when_empty(path)
        with contextlib.suppress(OSError):  # another run may still use it
            os.rmdir(top)


def test_into_cgroup_with_a_real_cgroup2_directory(oracle_cgroup, worker_state):
    path, fd = oracle_cgroup
    rnd = random.Random("clonekit-oracle-cgroup")
    cases = [(int(F.INTO_CGROUP), "clone3", sig) for sig in SIGNALS]
    cases += [(int(F.INTO_CGROUP | lib), "clone3", 0 if lib & F.THREAD else SIGCHLD) for lib in LIBC]
    cases += [(int(F.INTO_CGROUP) | f, v, s) for f, v, s in _sample(rnd, "clone3", 60)]
    assert compare(cases, worker_state, cgroup_fd=fd) == []
    # a child really made there leaves it empty again (nothing leaked into the cgroup)
    with open(os.path.join(path, "cgroup.procs")) as f:
        assert f.read() == ""


def test_into_cgroup_fd_kinds(oracle_cgroup, worker_state, tmp_path):
    path, _ = oracle_cgroup
    thread = int(F.INTO_CGROUP | F.VM | F.SIGHAND | F.THREAD)
    plain = int(F.INTO_CGROUP)
    fds: dict[str, int] = {}
    try:
        fds["o_path"] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        fds["file_in_cgroup"] = os.open(os.path.join(path, "cgroup.procs"), os.O_RDONLY | os.O_CLOEXEC)
        fds["plain_dir"] = os.open(str(tmp_path), os.O_RDONLY | os.O_CLOEXEC)
        fds["root_cgroup"] = os.open(UNIFIED, os.O_RDONLY | os.O_CLOEXEC)
        if os.path.isdir("/sys/fs/cgroup/pids") and not os.path.samefile("/sys/fs/cgroup/pids", UNIFIED):
            fds["cgroup_v1"] = os.open("/sys/fs/cgroup/pids", os.O_RDONLY | os.O_CLOEXEC)
        fds["closed"] = next(n for n in range(900, 1000) if not os.path.exists(f"/proc/self/fd/{n}"))
        gone = os.path.join(path, "gone")
        os.mkdir(gone)
        fds["removed"] = os.open(gone, os.O_RDONLY | os.O_CLOEXEC)
        os.rmdir(gone)
        seen = {}
        for name, cfd in fds.items():
            for flags, sig in ((plain, SIGCHLD), (thread, 0)):
                bad = compare([(flags, "clone3", sig)], worker_state, cgroup_fd=cfd)
                assert bad == [], f"{name}: {bad}"
                seen[name, flags == thread] = kernel(flags, "clone3", sig, cfd)
        # the answers are not all alike: the rules for each kind of fd were really exercised
        assert seen["closed", False] == seen["plain_dir", False] == errno.EBADF
        assert seen["removed", False] == errno.ENOENT
        assert seen["o_path", False] == 0 and seen["o_path", True] == errno.EOPNOTSUPP
    finally:
        for name, cfd in fds.items():
            if name != "closed":
                os.close(cfd)


# ------------------------------------------------------------------------------------------
# caller states, each made for real in a forked child; check() reads them with current()
# ------------------------------------------------------------------------------------------


def test_multithreaded_caller():
    def child() -> list[str]:
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        try:
            state = CallerState.current()
            assert state.threads == 2
            # refusals first (they change nothing), then the calls that succeed
            cases = [(int(f), "unshare", 0)
                     for f in (F.NEWUSER, F.VM, F.SIGHAND, F.THREAD, F.NEWUSER | F.NEWNS)]
            cases += [(int(F.VM | F.SIGHAND | F.THREAD), "clone3", 0), (int(F.FILES), "clone3", SIGCHLD)]
            cases += [(int(F.FS | F.FILES), "unshare", 0), (int(F.NEWUTS), "unshare", 0)]
            results = []
            for case in cases:
                results += compare([case], state, in_place=True)
            assert mine(int(F.NEWUSER), "unshare", 0, state)[0] == errno.EINVAL
            return results
        finally:
            stop.set()
            worker.join()

    assert in_child(child) == []


def _enter_chroot(base: str) -> None:
    assert sys_unshare(F.NEWNS) == 0
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "proc"))
    mount("proc", os.path.join(root, "proc"), "proc", 0)
    os.chroot(root)
    os.chdir("/")


def test_chrooted_caller():
    base = tempfile.mkdtemp(prefix="clonekit-oracle-chroot-")

    def child() -> list[str]:
        _enter_chroot(base)
        state = CallerState.current()
        assert state.chrooted
        cases = [(int(F.NEWUSER), "clone3", SIGCHLD), (int(F.NEWUSER | F.NEWNET), "clone", SIGCHLD),
                 (int(F.NEWUSER), "unshare", 0), (int(F.NEWUTS), "clone3", SIGCHLD)]
        bad = compare(cases[:2], state) + compare(cases[2:3], state, in_place=True)
        bad += compare(cases[3:], state)
        assert mine(int(F.NEWUSER), "unshare", 0, state)[0] == errno.EPERM
        return bad

    try:
        assert in_child(child) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_pid_1_of_a_new_pid_namespace():
    def child() -> list[str]:
        assert sys_unshare(F.NEWPID) == 0

        def init() -> list[str]:
            state = CallerState.current()
            assert state.is_init and os.getpid() == 1
            cases = [(int(F.PARENT), "clone3", 0), (int(F.PARENT), "clone", SIGCHLD),
                     (int(F.PARENT | F.VM), "clone", 0), (0, "clone3", SIGCHLD)]
            assert mine(int(F.PARENT), "clone3", 0, state)[0] == errno.EINVAL
            return compare(cases, state, in_place=True)

        return in_child(init)

    assert in_child(child) == []


def test_after_unshare_newpid_before_the_first_fork():
    def child() -> list[str]:
        assert sys_unshare(F.NEWPID) == 0
        state = CallerState.current()
        assert state.pid_for_children_differs
        threads = int(F.VM | F.SIGHAND | F.THREAD)
        cases = [(threads, "clone3", 0), (threads, "clone", 0),
                 (int(F.NEWPID), "clone3", SIGCHLD), (int(F.NEWPID), "unshare", 0),
                 (int(F.NEWPID | F.NEWNET), "clone", SIGCHLD),
                 (0, "clone3", SIGCHLD)]  # the first fork: accepted (it makes the namespace's init)
        assert mine(int(F.NEWPID), "unshare", 0, state)[0] == errno.EINVAL
        return compare(cases, state, in_place=True)

    assert in_child(child) == []


def test_after_the_init_of_pid_for_children_has_exited():
    def child() -> list[str]:
        assert sys_unshare(F.NEWPID) == 0
        in_child(lambda: None)  # the first child is the namespace's init; it exits at once
        state = CallerState.current()
        if state.kernel < (6, 11):
            return []  # no NS_GET_TGID_FROM_PIDNS to see it with
        assert state.pid_for_children_differs and state.pid_for_children_dead
        cases = [(0, "clone3", SIGCHLD), (int(F.FILES), "clone", SIGCHLD), (int(F.NEWPID), "clone3", SIGCHLD),
                 (int(F.NEWUTS), "unshare", 0)]
        assert mine(0, "clone3", SIGCHLD, state)[0] == errno.ENOMEM
        return compare(cases, state, in_place=True)

    assert in_child(child) == []


def test_caller_without_privileges():
    def child() -> list[str]:
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        state = CallerState.current()
        assert not state.cap_sys_admin
        cases = [(int(f), via, SIGCHLD if via != "unshare" else 0)
                 for f in (F.NEWUTS, F.NEWNET, F.NEWNS, F.NEWPID, F.NEWIPC, F.NEWCGROUP, F.NEWTIME,
                           F.NEWUSER | F.NEWUTS, F.NEWUSER | F.NEWNS | F.NEWPID, F(0))
                 for via in ("clone3", "clone", "unshare") if expressible(int(f), via, SIGCHLD)]
        refused = [c for c in cases if c[1] != "unshare" or mine(*c, state=state)[0]]
        last = [c for c in cases if c not in refused]
        return compare(refused, state) + compare(last[:1], state, in_place=True)

    assert in_child(child) == []


def test_rlimit_nproc_of_an_unprivileged_user():
    def child() -> list[str]:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]  # no CAP_SYS_RESOURCE to raise it
        resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        low = CallerState.current()
        assert low.nproc_limit == 1 and low.nproc >= 1
        bad = compare([(0, "clone3", SIGCHLD), (int(F.FILES), "clone", SIGCHLD)], low, in_place=True)
        assert mine(0, "clone3", SIGCHLD, low)[0] == errno.EAGAIN
        resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
        high = CallerState.current()
        assert high.nproc_limit in (None, hard)
        return bad + compare([(0, "clone3", SIGCHLD)], high, in_place=True)

    assert in_child(child) == []


def test_unmapped_ids_after_unshare_newuser():
    def child() -> list[str]:
        assert sys_unshare(F.NEWUSER) == 0
        state = CallerState.current()
        assert not state.ids_mapped
        cases = [(int(F.NEWUSER), "clone3", SIGCHLD), (int(F.NEWUSER), "unshare", 0),
                 (int(F.NEWUTS), "clone3", SIGCHLD), (int(F.NEWNET), "unshare", 0)]
        return compare(cases, state, in_place=True)

    assert in_child(child) == []


def _write_maps(uid: int, gid: int) -> None:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def test_namespace_limits_of_zero():
    def child() -> list[str]:
        uid, gid = os.geteuid(), os.getegid()
        assert sys_unshare(F.NEWUSER) == 0
        _write_maps(uid, gid)
        for kind in ("user", "net", "uts"):
            with open(f"/proc/sys/user/max_{kind}_namespaces", "w") as f:
                f.write("0")
        state = CallerState.current()
        assert state.ns_limits["net"] == 0
        cases = [(int(F.NEWUSER), "clone3", SIGCHLD), (int(F.NEWNET), "clone3", SIGCHLD),
                 (int(F.NEWUTS | F.NEWNET), "clone", SIGCHLD), (int(F.NEWNET), "unshare", 0),
                 (int(F.NEWUSER), "unshare", 0), (int(F.NEWIPC), "clone3", SIGCHLD)]
        assert mine(int(F.NEWNET), "unshare", 0, state)[0] == errno.ENOSPC
        return compare(cases, state, in_place=True)

    assert in_child(child) == []


def test_user_namespace_nesting_limit():
    """33 levels below the initial user namespace can be made, a 34th is ENOSPC (the kernel
    refuses a parent deeper than 32).  From inside, the kernel hides the ancestors
    (NS_GET_PARENT answers EPERM), so the depth is given to check()."""

    def child() -> list[str]:
        bad = []
        cases = [(int(F.NEWUSER), "clone3", SIGCHLD), (int(F.NEWUSER | F.NEWPID), "clone", SIGCHLD)]
        for level in range(1, 34):
            uid, gid = os.geteuid(), os.getegid()
            assert sys_unshare(F.NEWUSER) == 0, level
            _write_maps(uid, gid)
            if level >= 32:
                state = dataclasses.replace(CallerState.current(), user_ns_depth=level)
                bad += compare(cases, state)
                expected = errno.ENOSPC if level == 33 else 0
                if mine(int(F.NEWUSER), "unshare", 0, state)[0] != expected:
                    bad.append(f"level {level}: check() disagrees with the known limit")
        state = dataclasses.replace(CallerState.current(), user_ns_depth=33)
        return bad + compare([(int(F.NEWUSER), "unshare", 0)], state, in_place=True)

    assert in_child(child) == []


def test_pid_namespace_nesting_limit():
    """32 levels of PID namespaces; NSpid shows them all, so current() sees the depth itself."""
    start = CallerState.current().pid_ns_depth

    def descend(level: int) -> list[str]:
        state = CallerState.current()
        assert state.pid_ns_depth == level
        if level == 32:
            cases = [(int(F.NEWPID), "clone3", SIGCHLD), (int(F.NEWPID | F.NEWUTS), "clone", SIGCHLD),
                     (int(F.NEWPID), "unshare", 0)]
            assert mine(int(F.NEWPID), "unshare", 0, state)[0] == errno.ENOSPC
            return compare(cases, state, in_place=True)
        assert sys_unshare(F.NEWPID) == 0, level
        return in_child(lambda: descend(level + 1))

    if start != 0:
        pytest.skip("needs to start from the initial PID namespace")
    assert in_child(lambda: descend(0)) == []


def test_after_unshare_newtime_vm_and_threads_are_allowed_on_this_kernel():
    """Before 6.1 a differing time_for_children refused CLONE_VM/CLONE_THREAD; not any more."""

    def child() -> list[str]:
        assert sys_unshare(F.NEWTIME) == 0
        state = CallerState.current()
        assert state.time_for_children_differs
        cases = [(int(F.VM), "clone3", SIGCHLD), (int(F.VM | F.SIGHAND | F.THREAD), "clone3", 0),
                 (int(F.VM | F.VFORK), "clone", SIGCHLD)]
        return compare(cases, state, in_place=True)

    if CallerState().kernel < (6, 1):
        pytest.skip("the rule still exists on this kernel")
    assert in_child(child) == []
