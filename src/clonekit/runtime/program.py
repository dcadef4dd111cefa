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
    """Python ignores SIGPIPE and SIGXFSZ; a program execve'd from it would inherit that (as
    subprocess's restore_signals says): the user's program gets the defaults, as under runc."""
    from _signal import SIG_DFL, SIGPIPE, SIGXFSZ, signal  # `signal` would import enum

    for sig in (SIGPIPE, SIGXFSZ):
        signal(sig, SIG_DFL)


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
