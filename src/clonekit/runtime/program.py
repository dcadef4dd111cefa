"""The user's program inside the container: found on the process's PATH, given a HOME, the
container's keyring, only the fds meant for it, default signals.

Shared by the init (the container's first process) and ``exec`` (every later one), so a fix to
what a container's process starts with reaches both.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_PATH", "absent_fds", "chown_stdio", "close_all_but", "find_program", "hand_over_fds",
           "join_keyring", "listen_fds", "restore_default_signals", "with_activation", "with_home"]

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


def hand_over_fds(preserve_fds: int, absent: tuple[int, ...] = ()) -> None:
    """Only stdio and fds 3 .. 3+N-1 (--preserve-fds, socket activation) reach the program, but
    those the caller did not have open (``absent``: a number the runtime's own fds may have taken
    since); ours close at execve.  (The CVE-2024-21626 class: a leaked host fd, e.g. of
    /sys/fs/cgroup, used as cwd.)"""
    from .. import _native

    first_free = 3 + preserve_fds
    for fd in range(3, first_free):
        if fd in absent:
            continue
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    _native.close_range(first_free, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)


def absent_fds(first: int, count: int) -> tuple[int, ...]:
    """The fds of ``first`` .. ``first+count-1`` the caller has not opened.  Read before the
    runtime opens any fd of its own: its lock on the state dir, channel or cgroup fd would take
    the lowest free numbers, and handed to the container the lock would keep `start` waiting
    for ever.  Those numbers are skipped (crun too hands over only what is open; runc 1.1 hands
    over whatever fd of its own sits there)."""
    out = []
    for fd in range(first, first + count):
        try:
            os.fstat(fd)
        except OSError:
            out.append(fd)
    return tuple(out)


def listen_fds(environ: Mapping[str, str], pid: int) -> int:
    """systemd socket activation (sd_listen_fds): how many fds from 3 on were passed to us,
    when LISTEN_PID names this process; 0 otherwise (a LISTEN_FDS meant for another)."""
    try:
        if int(environ.get("LISTEN_PID", "")) != pid:
            return 0
        return max(0, int(environ.get("LISTEN_FDS", "")))
    except ValueError:
        return 0


def with_activation(env: dict[str, str], count: int) -> dict[str, str]:
    """The container's process gets the activation fds as its own, as runc passes them:
    LISTEN_FDS=N and LISTEN_PID=1 (the container's init is pid 1 of its pid namespace)."""
    if not count:
        return env
    return {**env, "LISTEN_FDS": str(count), "LISTEN_PID": "1"}


def chown_stdio(uid: int, gid: int) -> None:
    """In a user namespace, stdio that is a file, pipe or socket (not a terminal or device) is
    given to the process's user, as crun (maybe_chown_std_streams) and runc (fixStdioPermissions)
    do, so the process can reopen /proc/self/fd/1 (``> /dev/stdout``).  Called as root of the
    namespace, before the user changes; what the namespace may not chown (an owner it does not
    map: EPERM/EINVAL, a read-only mount: EROFS) is left as it is, as both leave it."""
    import stat

    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or st.st_uid == uid:
                continue  # a terminal or /dev/null: the container's own devices, or already its user's
            os.fchown(fd, uid, gid)
        except OSError as exc:
            if exc.errno not in (9, 1, 22, 30):  # EBADF, EPERM, EINVAL, EROFS
                raise OSError(exc.errno, f"chown of stdio fd {fd} to {uid}:{gid}: {exc.strerror}") from None


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
