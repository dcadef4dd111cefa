"""seccomp filters compiled with libseccomp and installed in a throwaway child: the kernel's
answer to a real syscall is the oracle (errnos, signals, a NOTIFY listener answering)."""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import signal
import stat
import struct

import pytest
from seccomp_helpers import (
    SIGSYS,
    SYS,
    errno_of,
    in_filtered_child,
    killed_by,
    podman_section,
    syscall,
)

from clonekit import _native, _seccomp
from clonekit.errors import KernelError, UsageError
from clonekit.runtime.spec_seccomp import parse_seccomp
from clonekit.security import seccomp as sc
from clonekit.security.seccomp import Seccomp, SeccompArg, SeccompRule

pytestmark = [
    pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers here are x86_64's"),
    pytest.mark.skipif(os.geteuid() != 0, reason="pidfd_getfd on a child and NOTIFY tests need root"),
]

ALLOW, ERRNO = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"
X86S = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")


def rule(name: str, action: str, errno_ret: int | None = None, *args: SeccompArg) -> SeccompRule:
    return SeccompRule(names=(name,), action=action, errno_ret=errno_ret, args=args)


def allow_but(*rules: SeccompRule) -> sc.Filter:
    return sc.compile_filter(Seccomp(default_action=ALLOW, syscalls=rules))


def podman_allowing(without: str = "") -> tuple[SeccompRule, ...]:
    """podman's ALLOW rules (everything a Python process needs), ``without`` one name."""
    s = parse_seccomp(podman_section())
    assert s is not None
    return tuple(SeccompRule(names=tuple(n for n in r.names if n != without), action=r.action,
                             errno_ret=r.errno_ret, args=r.args)
                 for r in s.syscalls if r.action == ALLOW)


# --- actions -------------------------------------------------------------------------------------


def test_errno_action_returns_errno_ret_and_eperm_by_default():
    f = allow_but(rule("getppid", ERRNO, errno.EACCES), rule("getpid", ERRNO))
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == errno.EACCES
    assert in_filtered_child(f, errno_of(SYS["getpid"]))[1] == errno.EPERM


def test_errno_zero_fakes_success():
    _, value = in_filtered_child(allow_but(rule("getppid", ERRNO, 0)), errno_of(SYS["getppid"]))
    assert value == -1  # returned 0 without running


def test_default_errno_ret():
    s = Seccomp(default_action=ERRNO, default_errno_ret=errno.EXDEV, syscalls=podman_allowing("getppid"))
    assert in_filtered_child(sc.compile_filter(s), errno_of(SYS["getppid"]))[1] == errno.EXDEV


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL"])
def test_kill_actions_end_the_child_with_sigsys(action):
    status, value = in_filtered_child(allow_but(rule("getppid", action)), errno_of(SYS["getppid"]))
    assert value is None and killed_by(status) == SIGSYS


def test_trap_sends_sigsys_to_a_handler():
    def body() -> int:
        seen: list[int] = []
        signal.signal(SIGSYS, lambda signum, frame: seen.append(signum))
        syscall(SYS["getppid"])
        return len(seen)
    status, value = in_filtered_child(allow_but(rule("getppid", "SCMP_ACT_TRAP")), body)
    assert value == 1 and os.WIFEXITED(status)


def test_trace_without_a_tracer_is_enosys():
    f = allow_but(rule("getppid", "SCMP_ACT_TRACE", errno.EACCES))
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == errno.ENOSYS


def test_log_lets_the_syscall_run_under_a_denying_default():
    rules = (*podman_allowing("getppid"), rule("getppid", "SCMP_ACT_LOG"))
    f = sc.compile_filter(Seccomp(default_action=ERRNO, architectures=X86S, syscalls=rules))
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == -os.getpid() - 1
    # and the rule is what made the difference
    f = sc.compile_filter(Seccomp(default_action=ERRNO, architectures=X86S,
                                  syscalls=podman_allowing("getppid")))
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == errno.EPERM


def test_notify_listener_answers_the_syscall():
    f = allow_but(rule("getppid", "SCMP_ACT_NOTIFY"))
    assert f.notify and f.flags & sc.FLAG_NEW_LISTENER
    seen = {}

    def agent(pid: int, fd_number: int) -> None:
        pidfd = os.pidfd_open(pid)
        try:
            listener = _native.pidfd_getfd(pidfd, fd_number)
        finally:
            os.close(pidfd)
        try:
            seen.update(answer_one(listener, value=4242))
        finally:
            os.close(listener)

    _, value = in_filtered_child(f, errno_of(SYS["getppid"]), parent=agent)
    assert value == -4242 - 1
    assert seen["nr"] == SYS["getppid"] and seen["arch"] == sc.ARCHITECTURES["SCMP_ARCH_X86_64"]


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp)


def answer_one(listener: int, value: int = 0, error: int = 0) -> dict[str, int]:
    """Receive one notification and make the syscall return ``value`` (or fail with ``error``)."""
    buf = bytearray(80)  # struct seccomp_notif: id, pid, flags, data{nr, arch, ip, args[6]}
    fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    ident, pid, _flags, nr, arch = struct.unpack_from("=QIIiI", buf)
    resp = struct.pack("=QqiI", ident, value, -error, 0)  # struct seccomp_notif_resp
    fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp), True)
    return {"pid": pid, "nr": nr, "arch": arch}


# --- arguments -------------------------------------------------------------------------------------

# (operator, value, value_two, the argument, matches?)
OPERATOR_CASES = [
    ("SCMP_CMP_EQ", 7, 0, 7, True), ("SCMP_CMP_EQ", 7, 0, 8, False),
    ("SCMP_CMP_NE", 7, 0, 8, True), ("SCMP_CMP_NE", 7, 0, 7, False),
    ("SCMP_CMP_LT", 7, 0, 6, True), ("SCMP_CMP_LT", 7, 0, 7, False),
    ("SCMP_CMP_LE", 7, 0, 7, True), ("SCMP_CMP_LE", 7, 0, 8, False),
    ("SCMP_CMP_GT", 7, 0, 8, True), ("SCMP_CMP_GT", 7, 0, 7, False),
    ("SCMP_CMP_GE", 7, 0, 7, True), ("SCMP_CMP_GE", 7, 0, 6, False),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x30, 0x3C, True), ("SCMP_CMP_MASKED_EQ", 0xF0, 0x30, 0x4C, False),
    # the upper 32 bits count too (libseccomp compares both halves on a 64-bit arch)
    ("SCMP_CMP_EQ", 1 << 40, 0, 1 << 40, True), ("SCMP_CMP_EQ", 1 << 40, 0, 0, False),
    ("SCMP_CMP_GT", 5, 0, 1 << 40, True),
]


@pytest.mark.parametrize(("op", "value", "value_two", "arg", "matches"), OPERATOR_CASES)
def test_each_operator(op, value, value_two, arg, matches):
    f = allow_but(rule("getppid", ERRNO, errno.EACCES, SeccompArg(1, value, value_two, op)))
    got = in_filtered_child(f, errno_of(SYS["getppid"], 0, arg))[1]
    assert (got == errno.EACCES) is matches


def test_conditions_on_two_arguments_are_and_on_one_argument_or():
    both = allow_but(rule("getppid", ERRNO, errno.EACCES, SeccompArg(0, 1, 0, "SCMP_CMP_EQ"),
                          SeccompArg(1, 2, 0, "SCMP_CMP_EQ")))
    assert in_filtered_child(both, errno_of(SYS["getppid"], 1, 2))[1] == errno.EACCES
    assert in_filtered_child(both, errno_of(SYS["getppid"], 1, 3))[1] < 0
    # runc adds one rule per condition when two test the same argument
    either = allow_but(rule("getppid", ERRNO, errno.EACCES, SeccompArg(0, 1, 0, "SCMP_CMP_EQ"),
                            SeccompArg(0, 2, 0, "SCMP_CMP_EQ")))
    assert in_filtered_child(either, errno_of(SYS["getppid"], 2))[1] == errno.EACCES
    assert in_filtered_child(either, errno_of(SYS["getppid"], 3))[1] < 0


# --- runc's ENOSYS patch ---------------------------------------------------------------------------


def test_syscalls_newer_than_the_profile_get_enosys():
    s = Seccomp(default_action=ERRNO, architectures=X86S, syscalls=podman_allowing())
    f = sc.compile_filter(s)
    assert in_filtered_child(f, errno_of(1000))[1] == errno.ENOSYS               # beyond the profile
    assert in_filtered_child(f, errno_of(0x40000000 | 1000))[1] == errno.ENOSYS  # x32, beyond too
    assert in_filtered_child(f, errno_of(SYS["uselib"]))[1] == errno.EPERM       # old, not allowed
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == -os.getpid() - 1


def test_no_enosys_stub_when_the_default_lets_syscalls_through_or_is_enosys():
    for default, errno_ret in [(ALLOW, None), ("SCMP_ACT_LOG", None), ("SCMP_ACT_TRACE", None),
                               (ERRNO, errno.ENOSYS)]:
        s = Seccomp(default_action=default, default_errno_ret=errno_ret, architectures=X86S,
                    syscalls=(rule("getppid", "SCMP_ACT_KILL_PROCESS"),))
        assert sc._enosys_stub(s, tuple(sc.ARCHITECTURES[a] for a in X86S)) == b""
    # as runc: only the architectures the profile lists are patched
    s = Seccomp(default_action=ERRNO, syscalls=(rule("getppid", ALLOW),))
    assert sc._enosys_stub(s, ()) == b""


def test_podman_default_profile_behaves_as_under_podman():
    s = parse_seccomp(podman_section())
    assert s is not None and s.default_errno_ret == errno.ENOSYS
    f = sc.compile_filter(s)
    assert f.flags == sc.FLAGS["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] and not f.notify
    assert in_filtered_child(f, errno_of(SYS["uselib"]))[1] == errno.EPERM   # podman's errnoRet 1
    assert in_filtered_child(f, errno_of(1000))[1] == errno.ENOSYS
    # acct (163) needs CAP_SYS_PACCT in podman's profile, so a rule returns EPERM (without the
    # filter, the bad pointer would give EFAULT)
    assert in_filtered_child(f, errno_of(163, 1))[1] == errno.EPERM


# --- what runc skips, flags, status -----------------------------------------------------------------


def test_unknown_names_are_skipped_and_the_rest_applies():
    f = allow_but(SeccompRule(names=("no_such_syscall", "getppid"), action=ERRNO, errno_ret=errno.EACCES))
    assert in_filtered_child(f, errno_of(SYS["getppid"]))[1] == errno.EACCES
    assert _seccomp.compile(0x7FFF0000, (), (("no_such_syscall", 0x50001, ()),), 1)[1] == ("no_such_syscall",)


def test_a_rule_equal_to_the_default_is_skipped():
    same = sc.compile_filter(Seccomp(default_action=ERRNO, syscalls=(rule("getppid", ERRNO, 1),)))
    none = sc.compile_filter(Seccomp(default_action=ERRNO, syscalls=()))
    assert same.program == none.program


def test_flags():
    s = Seccomp(default_action=ALLOW)
    assert sc.compile_filter(s).flags == sc.FLAGS["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]  # runc's default
    assert sc.compile_filter(Seccomp(default_action=ALLOW, flags=())).flags == 0
    flags = ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC")
    assert sc.compile_filter(Seccomp(default_action=ALLOW, flags=flags)).flags == sc.FLAGS[flags[0]]


def test_status_shows_the_filter():
    f = sc.compile_filter(Seccomp(default_action=ALLOW, flags=("SECCOMP_FILTER_FLAG_LOG",)))

    def body() -> int:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["Seccomp"]) * 10 + int(fields["Seccomp_filters"])
    assert in_filtered_child(f, body)[1] == 21


def test_install_errors_name_the_step_and_errno():
    def body() -> int:
        try:
            sc.install(sc.Filter(program=b"\0" * 8))  # BPF_LD|BPF_IMM: no return, refused
        except KernelError as exc:
            assert "seccomp(SECCOMP_SET_MODE_FILTER)" in str(exc)
            return exc.errno or 0
        return 0
    assert in_filtered_child(sc.compile_filter(Seccomp(default_action=ALLOW)), body)[1] == errno.EINVAL


def test_bad_records_are_usage_errors():
    with pytest.raises(UsageError, match="SCMP_ACT_NOTIFY cannot be the default"):
        sc.compile_filter(Seccomp(default_action="SCMP_ACT_NOTIFY"))
    with pytest.raises(UsageError, match="unknown operator 'SCMP_CMP_XX'"):
        allow_but(rule("getppid", ERRNO, None, SeccompArg(0, 1, 0, "SCMP_CMP_XX")))


def test_tables_match_libseccomp():
    for name, token in sc.ARCHITECTURES.items():
        assert _seccomp.arch_token(name.removeprefix("SCMP_ARCH_").lower()) == token, name
    assert _seccomp.native_arch() == sc.ARCHITECTURES["SCMP_ARCH_X86_64"]
    assert sc.action_value(ERRNO, None) == 0x00050001 and sc.action_value("SCMP_ACT_TRACE", 3) == 0x7FF00003


# --- the cache -------------------------------------------------------------------------------------


def test_cache_keeps_programs_root_only(tmp_path):
    cache = str(tmp_path / "seccomp")
    s = parse_seccomp(podman_section())
    assert s is not None
    first = sc.compile_filter(s, cache_dir=cache)
    (entry,) = os.listdir(cache)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(cache, entry)).st_mode) == 0o600
    assert sc.compile_filter(s, cache_dir=cache) == first == sc.compile_filter(s)
    # a program someone else could have written is not trusted: compiled again
    path = os.path.join(cache, entry)
    with open(path, "wb") as f:
        f.write(b"\x06\0\0\0\0\0\xff\x7f")  # ret ALLOW
    os.chmod(path, 0o620)
    assert sc.compile_filter(s, cache_dir=cache) == first
    # another rule set, another entry
    sc.compile_filter(Seccomp(default_action=ALLOW), cache_dir=cache)
    assert len(os.listdir(cache)) == 2


def test_cache_hit_is_fast(tmp_path):
    import time

    s = parse_seccomp(podman_section())
    assert s is not None
    cache = str(tmp_path / "c")
    sc.compile_filter(s, cache_dir=cache)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        sc.compile_filter(s, cache_dir=cache)
        times.append(time.perf_counter() - t)
    assert sorted(times)[10] < 0.005  # a compile takes ~25 ms
