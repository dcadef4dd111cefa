"""Syscall numbers and constants for the sandbox's child steps (``_native.sandbox_spawn`` takes
raw numbers: it runs no libc); mount bits are in :mod:`clonekit.mountflags` and clone bits in
:mod:`clonekit._bits`.  x86_64 and aarch64, the two architectures the native core has."""

from __future__ import annotations

import os

__all__ = ["NR"]

_X86_64 = {
    "write": 1, "close": 3, "ioctl": 16, "fcntl": 72, "socket": 41, "chdir": 80, "setsid": 112,
    "setgroups": 116, "setresuid": 117, "setresgid": 119, "capset": 126, "pivot_root": 155,
    "prctl": 157, "mount": 165, "umount2": 166, "sethostname": 170, "openat": 257,
    "mkdirat": 258, "symlinkat": 266, "dup3": 292, "prlimit64": 302, "seccomp": 317,
    "close_range": 436, "mount_setattr": 442, "unshare": 272, "setns": 308, "getpid": 39,
    "open_tree": 428, "move_mount": 429,
}
_AARCH64 = {
    "write": 64, "close": 57, "ioctl": 29, "fcntl": 25, "socket": 198, "chdir": 49, "setsid": 157,
    "setgroups": 159, "setresuid": 147, "setresgid": 149, "capset": 91, "pivot_root": 41,
    "prctl": 167, "mount": 40, "umount2": 39, "sethostname": 161, "openat": 56,
    "mkdirat": 34, "symlinkat": 36, "dup3": 24, "prlimit64": 261, "seccomp": 277,
    "close_range": 436, "mount_setattr": 442, "unshare": 97, "setns": 268, "getpid": 172,
    "open_tree": 428, "move_mount": 429,
}

NR: dict[str, int] = _AARCH64 if os.uname().machine == "aarch64" else _X86_64

O_WRONLY, O_CREAT, O_CLOEXEC, O_NOFOLLOW = 0o1, 0o100, 0o2000000, 0o400000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_SET_MODE_FILTER = 1
CLOSE_RANGE_CLOEXEC = 1 << 2
AF_INET, SOCK_DGRAM, SOCK_CLOEXEC = 2, 2, 0o2000000
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
EEXIST, ENOENT = 17, 2
F_SETFD = 2
