"""Helpers of the seccomp tests: podman's default profile as an OCI section, and a throwaway child
that installs a filter, makes a syscall and reports what it saw."""

from __future__ import annotations

import ctypes
import json
import os
import signal
from collections.abc import Callable

from clonekit import _native
from clonekit.security import seccomp as sc

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PODMAN_PROFILE = os.path.join(DATA, "podman-default-seccomp.json")
# podman's default capabilities (containers.conf, default_capabilities)
PODMAN_CAPS = frozenset({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                         "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
                         "CAP_SETUID", "CAP_SYS_CHROOT"})

SYS = {"getppid": 110, "getpid": 39, "uselib": 134}  # x86_64 numbers
PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def podman_section(caps: frozenset[str] = PODMAN_CAPS, arch: str = "SCMP_ARCH_X86_64",
                   goarch: str = "amd64") -> dict[str, object]:
    """podman's seccomp.json (its own format: archMap, includes/excludes by arch and capability)
    turned into the ``linux.seccomp`` section podman writes into config.json."""
    with open(PODMAN_PROFILE) as f:
        profile = json.load(f)
    archs: list[str] = []
    for entry in profile.get("archMap") or ():
        if entry["architecture"] == arch:
            archs = [arch, *entry["subArchitectures"]]
    rules = []
    for entry in profile["syscalls"]:
        inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        rule: dict[str, object] = {"names": entry["names"], "action": entry["action"]}
        if entry.get("errnoRet") is not None:
            rule["errnoRet"] = entry["errnoRet"]
        if entry.get("args"):
            rule["args"] = [{k: v for k, v in a.items() if k != "valueTwo" or v} for a in entry["args"]]
        rules.append(rule)
    return {"defaultAction": profile["defaultAction"], "defaultErrnoRet": profile["defaultErrnoRet"],
            "architectures": archs, "syscalls": rules}


def syscall(nr: int, *args: int) -> tuple[int, int]:
    """(return value, errno) of a raw syscall."""
    ctypes.set_errno(0)
    ret = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
    return ret, (ctypes.get_errno() if ret == -1 else 0)


def in_filtered_child(f: sc.Filter, body: Callable[[], int],
                      parent: Callable[[int, int], None] | None = None) -> tuple[int, int | None]:
    """Fork; the child sets no_new_privs, installs ``f``, runs ``body`` and reports its int.
    ``parent(pid, listener_fd_number)`` runs meanwhile when the filter has a listener (the child
    sends the number first).  Returns (wait status, the child's int or None if it died first)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            _native.prctl(PR_SET_NO_NEW_PRIVS, 1)
            fd = sc.install(f)
            if f.notify:
                os.write(w, fd.to_bytes(4, "little", signed=True))
            value = body()
            os.write(w, value.to_bytes(8, "little", signed=True))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        if parent is not None:
            number = int.from_bytes(_read_exactly(r, 4), "little", signed=True)
            parent(pid, number)
        data = _read_exactly(r, 8)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    return status, (int.from_bytes(data, "little", signed=True) if len(data) == 8 else None)


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def errno_of(nr: int, *args: int) -> Callable[[], int]:
    """A child body: the syscall's errno, or -(its return value) - 1 when it succeeded."""
    def body() -> int:
        ret, err = syscall(nr, *args)
        return err if ret == -1 else -ret - 1
    return body


def killed_by(status: int) -> int | None:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


SIGSYS = signal.SIGSYS
