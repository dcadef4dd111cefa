"""OOM notifications of a group, as runc's ``events`` gets them.

* v1: an eventfd registered on ``memory.oom_control`` through ``cgroup.event_control``; the
  kernel signals it on each OOM in the group and once more when the group is removed (told
  apart by whether ``cgroup.event_control`` is still there).
* v2: ``memory.events`` is polled (kernfs wakes POLLPRI on a change); an OOM is a rise of its
  ``oom_kill`` count; ``cgroup.events`` saying ``populated 0`` (or the group going) ends it.

The registration writes to the container's own group only (its ``cgroup.event_control``).
"""

from __future__ import annotations

import os
import select

from .errors import cgroup_error

__all__ = ["OomWatch"]


class OomWatch:
    """``fileno()`` to poll (``events()``: the poll mask), then :meth:`read` once it is ready:
    how many OOMs happened since the last read; ``closed`` turns True once the group is gone."""

    __slots__ = ("_count", "_dir", "_fds", "closed", "events", "version")

    def __init__(self, memory_dir: str, *, version: int) -> None:
        self._dir = memory_dir
        self.version = version
        self.closed = False
        self._fds: list[int] = []
        try:
            if version == 1:
                efd = os.eventfd(0, os.EFD_CLOEXEC)
                self._fds.append(efd)
                control = os.path.join(memory_dir, "memory.oom_control")
                try:
                    ofd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise cgroup_error(exc, "watch OOM", control) from None
                self._fds.append(ofd)
                where = os.path.join(memory_dir, "cgroup.event_control")
                try:
                    fd = os.open(where, os.O_WRONLY | os.O_CLOEXEC)
                    try:
                        os.write(fd, f"{efd} {ofd}".encode())
                    finally:
                        os.close(fd)
                except OSError as exc:
                    raise cgroup_error(exc, "watch OOM", where) from None
                self.events = select.POLLIN
                self._count = 0
            else:
                events = os.path.join(memory_dir, "memory.events")
                try:
                    self._fds.append(os.open(events, os.O_RDONLY | os.O_CLOEXEC))
                except OSError as exc:
                    raise cgroup_error(exc, "watch OOM", events) from None
                self.events = select.POLLPRI | select.POLLERR
                self._count = self._oom_kills()
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._fds[0]

    def read(self) -> int:
        """New OOMs since the last call (0 if none); sets ``closed`` when the group went."""
        if self.version == 1:
            try:
                count = int.from_bytes(os.read(self._fds[0], 8), "little")
            except BlockingIOError:
                count = 0
            if not os.path.exists(os.path.join(self._dir, "cgroup.event_control")):
                self.closed = True
                return 0  # the removal's wake-up, not an OOM
            return count
        now = self._oom_kills()
        new, self._count = max(0, now - self._count), now
        if now < 0 or "populated 0" in _read(os.path.join(self._dir, "cgroup.events")):
            self.closed = True
        return new

    def _oom_kills(self) -> int:
        try:
            text = os.pread(self._fds[0], 4096, 0).decode()
        except OSError:
            return -1
        for line in text.split("\n"):
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> OomWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return "populated 0"  # gone
