"""The sandbox's default seccomp filter: what container engines allow by default (podman's
profile as the base, docker's choice of EPERM for the rest), minus what a sandbox has no use
for and an escape would: ptrace, every mount API, new namespaces (``unshare``/``clone`` with a
namespace flag, ``setns``), keyrings, reading another process's memory, ``chroot``.
``clone3`` answers ENOSYS, so libc falls back to ``clone``, whose flags a filter can read."""

from __future__ import annotations

from .. import _bits
from ..security.seccomp import Seccomp, SeccompArg, SeccompRule

__all__ = ["DEFAULT", "DENIED"]


def _words(text: str) -> list[str]:
    return text.split()


_ALLOWED = _words("""
accept accept4 access alarm bind brk capget capset chdir chmod chown clock_getres clock_gettime
clock_nanosleep close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fallocate fchdir fchmod fchmodat fchown fchownat fcntl
fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate
futex futimesat get_mempolicy get_robust_list getcpu getcwd getdents getdents64 getegid geteuid
getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
getresgid getresuid getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid
getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy
io_getevents io_setup io_submit ioctl ioprio_get ioprio_set kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lgetxattr link linkat listen listxattr
llistxattr lremovexattr lseek lsetxattr lstat madvise mbind membarrier memfd_create memfd_secret
mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe
pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min sched_getaffinity
sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop
semtimedop sendfile sendmmsg sendmsg sendto set_mempolicy set_robust_list set_thread_area
set_tid_address setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid
setresgid setresuid setreuid setrlimit setsid setsockopt setuid setxattr shmat shmctl shmdt shmget
shutdown sigaltstack signalfd signalfd4 socketpair splice stat statfs statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill truncate
umask uname unlink unlinkat utime utimensat utimes vfork wait4 waitid write writev arch_prctl
modify_ldt
""")

#: what the default filter refuses on purpose (with EPERM), for the tests and the docs
DENIED = ("ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen",
          "fsmount", "fspick", "fsconfig", "open_tree", "move_mount", "mount_setattr", "keyctl",
          "add_key", "request_key", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
          "name_to_handle_at", "open_by_handle_at", "bpf", "perf_event_open", "userfaultfd",
          "io_uring_setup", "kexec_load", "init_module", "finit_module", "reboot", "syslog",
          "swapon", "acct", "settimeofday", "clock_settime", "adjtimex")

# every CLONE_NEW* bit clone() can carry (CLONE_NEWTIME shares its bit with the exit signal there)
_CLONE_NAMESPACES = _bits.NAMESPACES & ~_bits.NEWTIME  # clone(2) reads 0x80 as the exit signal
_UNSHARE_NAMESPACES = _bits.NAMESPACES


def _arg0(op: str, value: int, value_two: int = 0) -> tuple[SeccompArg, ...]:
    return (SeccompArg(index=0, value=value, value_two=value_two, op=op),)


DEFAULT = Seccomp(
    default_action="SCMP_ACT_ERRNO",
    default_errno_ret=1,  # EPERM, as docker
    syscalls=(
        SeccompRule(names=tuple(_ALLOWED), action="SCMP_ACT_ALLOW"),
        # personalities docker allows (Linux, and the 32-bit/uname26 queries)
        *(SeccompRule(names=("personality",), action="SCMP_ACT_ALLOW", args=_arg0("SCMP_CMP_EQ", p))
          for p in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
        # sockets, except the kernel's audit log (AF_NETLINK, NETLINK_AUDIT)
        SeccompRule(names=("socket",), action="SCMP_ACT_ALLOW", args=_arg0("SCMP_CMP_NE", 16)),
        SeccompRule(names=("socket",), action="SCMP_ACT_ALLOW",
                    args=(SeccompArg(index=2, value=9, value_two=0, op="SCMP_CMP_NE"),)),
        # threads and processes, never in new namespaces
        SeccompRule(names=("clone",), action="SCMP_ACT_ALLOW",
                    args=_arg0("SCMP_CMP_MASKED_EQ", _CLONE_NAMESPACES, 0)),
        SeccompRule(names=("unshare",), action="SCMP_ACT_ALLOW",
                    args=_arg0("SCMP_CMP_MASKED_EQ", _UNSHARE_NAMESPACES, 0)),
        SeccompRule(names=("clone3",), action="SCMP_ACT_ERRNO", errno_ret=38),  # ENOSYS
    ),
)
