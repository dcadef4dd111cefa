"""The child's program: a list of raw syscalls with a name for each, for
``_native.sandbox_spawn``.  Built once per Sandbox; a run copies the list and replaces the few
ops that differ (its pipes, its cgroup), so the per-run cost is a list copy.

An op is ``(nr, ok_errno, *args)``; an arg is an int, bytes (a pointer to a buffer the kernel
only reads), ``(0, i)`` for the result of op ``i`` (an fd it opened) or ``(1, program)`` for a
seccomp program passed as a struct sock_fprog.
"""

from __future__ import annotations

import struct

from ..mountflags import AT_FDCWD
from .nr import NR

__all__ = ["Ops", "c_str", "mount_attr"]

Op = tuple[object, ...]


def c_str(text: str | bytes) -> bytes:
    """A NUL-terminated path or string for the kernel."""
    data = text.encode() if isinstance(text, str) else text
    if b"\0" in data:
        raise ValueError(f"{data!r} contains a NUL byte")
    return data + b"\0"


def mount_attr(attr_set: int, attr_clr: int = 0, propagation: int = 0) -> bytes:
    """struct mount_attr (MOUNT_ATTR_SIZE_VER0: 32 bytes)."""
    return struct.pack("=QQQQ", attr_set, attr_clr, propagation, 0)


class Ops:
    """A growing op list with a step name per op and named slots a run replaces."""

    __slots__ = ("ops", "slots", "steps")

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.steps: list[str] = []
        self.slots: dict[str, int] = {}

    def call(self, step: str, name: str, *args: object, ok: int = 0,
             slot: str | None = None) -> tuple[int, int]:
        """Append ``name(*args)``; returns ``(0, index)``, a reference to its result."""
        if len(args) > 6:
            raise ValueError(f"{name}: at most 6 arguments")
        self.ops.append((NR[name], ok, *args))
        self.steps.append(step)
        if slot is not None:
            self.slots[slot] = len(self.ops) - 1
        return (0, len(self.ops) - 1)

    # the few calls the tree and the confinement use, spelled out once

    def mkdir(self, path: str, mode: int = 0o755, *, step: str | None = None) -> None:
        self.call(step or f"mkdir {path}", "mkdirat", AT_FDCWD, c_str(path), mode, ok=17)  # EEXIST

    def mount(self, step: str, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self.call(step, "mount", c_str(source) if source is not None else 0, c_str(target),
                  c_str(fstype) if fstype is not None else 0, flags,
                  c_str(data) if data is not None else 0)

    def setattr(self, step: str, path: str, flags: int, attr: bytes) -> None:
        self.call(step, "mount_setattr", AT_FDCWD, c_str(path), flags, attr, len(attr))

    def write_file(self, step: str, path: str, data: bytes, flags: int) -> None:
        fd = self.call(f"open {path}", "openat", AT_FDCWD, c_str(path), flags, 0o644)
        self.call(step, "write", fd, data, len(data))
        self.call(f"close {path}", "close", fd)
