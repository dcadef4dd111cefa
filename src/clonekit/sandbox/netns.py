"""Network namespaces made ahead of the runs that use them.

Making a network namespace is the costliest part of a run's clone (~0.6 ms of kernel work,
more than the mount tree).  As root, a Sandbox keeps a couple of fresh, empty ones ready: a
helper thread makes them (``unshare`` in that thread, which then goes back to its own
namespace; a thread of ours, so even a failure there strands no caller's thread) while runs
execute, and a run's child enters one with ``setns``.  Each is used by one run only and closed
by the parent after the clone, so it goes away with the run.  With none ready, the run's clone
makes its own (``CLONE_NEWNET``), as rootless runs always do.
"""

from __future__ import annotations

import os
import threading
import weakref

from .. import _native

__all__ = ["SpareNetns"]

_spares: weakref.WeakSet[SpareNetns] = weakref.WeakSet()


def _forget_after_fork() -> None:
    """In a fork's child: the spares are the parent's too (its next runs take them) and the
    helper thread is gone; the child closes its copies and makes namespaces of its own, so no
    two runs ever share one."""
    for spare in list(_spares):
        spare._cond = threading.Condition()
        spare._thread = None
        fds, spare._fds = spare._fds, []
        for fd in fds:
            os.close(fd)


os.register_at_fork(after_in_child=_forget_after_fork)


class SpareNetns:
    __slots__ = ("__weakref__", "_cond", "_fds", "_size", "_stopped", "_thread")

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._fds: list[int] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        _spares.add(self)

    def take(self) -> int:
        """A fresh namespace's fd (the caller closes it), or -1 when none is ready."""
        with self._cond:
            if self._stopped:
                return -1
            if self._thread is None:
                self._thread = threading.Thread(target=self._fill, name="clonekit-sandbox-netns", daemon=True)
                self._thread.start()
            fd = self._fds.pop() if self._fds else -1
            self._cond.notify()
            return fd

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._cond:
            fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and len(self._fds) >= self._size:
                    self._cond.wait()
                if self._stopped:
                    return
            try:
                fd = _native.sandbox_new_netns()
            except OSError:  # runs make their own from now on
                with self._cond:
                    self._stopped = True
                return
            with self._cond:
                if self._stopped:
                    os.close(fd)
                    return
                self._fds.append(fd)
