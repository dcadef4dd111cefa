"""The user's program inside the container: found on the process's PATH, given a HOME.

Shared by the init (the container's first process) and ``exec`` (every later one); both call
these after entering the container's root, as root, before confining themselves.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_PATH", "find_program", "restore_default_signals", "with_home"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
