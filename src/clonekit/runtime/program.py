"""The user's program inside the container: found on the process's PATH, given a HOME, the
container's keyring, only the fds meant for it, default signals.

Shared by the init (the container's first process) and ``exec`` (every later one), so a fix to
what a container's process starts with reaches both.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_PATH", "close_all_but", "find_program", "hand_over_fds", "join_keyring",
           "restore_default_signals", "with_home"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLOSE_RANGE_CLOEXEC = 4


def join_keyring(container_id: str) -> None:
    """The container's session keyring ``_ses.ID`` (the init makes it, exec joins it, as runc)."""
    from .. import _native

    try:
        _native.join_session_keyring(f"_ses.{container_id}"[:64])
    except OSError as exc:
        if exc.errno not in (38, 1, 122):  # ENOSYS, EPERM, EDQUOT: no keyrings, or quota: runc goes on
            raise


def close_all_but(keep: set[int]) -> None:
    """Close every fd but ``keep`` (a child holds copies of all of the runtime's)."""
    from .. import _native

    start = 0
    for fd in [*sorted(keep), 1 << 32]:
        if fd > start:
            _native.close_range(start, fd - 1)
        start = fd + 1


def hand_over_fds(preserve_fds: int) -> None:
    """Only stdio and fds 3 .. 3+N-1 (--preserve-fds) reach the program; ours close at execve.
    (The CVE-2024-21626 class: a leaked host fd, e.g. of /sys/fs/cgroup, used as cwd.)"""
    from .. import _native

    first_free = 3 + preserve_fds
    for fd in range(3, first_free):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    _native.close_range(first_free, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)


def with_home(env: dict[str, str], uid: int) -> dict[str, str]:
    """HOME from the container's /etc/passwd when process.env lacks it (as runc and crun do)."""
    if "HOME" in env:
        return env
    home = "/"
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 5 and fields[2] == str(uid):
                    home = fields[5] or "/"
                    break
    except OSError:
        pass
    return {**env, "HOME": home}


def restore_default_signals() -> None:
    """Right before execve: every signal at its default, none blocked.  Ignored signals survive
    execve, and the runtime is Python (which ignores SIGPIPE and SIGXFSZ) started by a caller
    that may ignore more; runc's Go runtime resets them too (it keeps one real-time signal)."""
    from .. import _native

    _native.reset_signals()


def find_program(name: str, env: dict[str, str]) -> str:
    """Resolve args[0] inside the container now, so a missing program is an error of the
    runtime (with its name) rather than a silent exit status 127."""
    if "/" in name:
        if not os.access(name, os.X_OK):
            raise FileNotFoundError(2, f"exec: {name!r}: no such executable file in the container", name)
        return name
    path = env.get("PATH", DEFAULT_PATH)
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(2, f"exec: {name!r}: executable file not found in $PATH ({path})", name)
