"""A task held by its pidfd: wait, signal, poll and reap without PID-reuse races.

Everything goes through the pidfd (``waitid(P_PIDFD)``, ``pidfd_send_signal``), so a PID that
was reaped and reused by someone else can never be signalled or waited for by mistake.
"""

from __future__ import annotations

import os
import select
import time
from _signal import SIGKILL, SIGTERM, pidfd_send_signal  # `signal` would import enum

from .errors import KernelError, UsageError, from_errno

__all__ = ["Task"]

_WALL = 0x40000000  # __WALL: also children whose exit signal is not SIGCHLD
_WAIT_EXITED = os.WEXITED | _WALL
_PIDFD_GET_INFO = 0xC040FF0B  # _IOWR(0xFF, 11, struct pidfd_info), Linux 6.13+
_PIDFD_INFO_EXIT = 1 << 3  # Linux 6.15+


class Task:
    """A child task, held by a pidfd.

    ``returncode`` follows :mod:`subprocess`: the exit status, or ``-N`` when signal N ended the
    task; ``None`` while it runs.  Use it as a context manager to make sure it is reaped.
    """

    def __init__(self, pid: int, pidfd: int, *, is_child: bool = True) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._is_child = is_child

    @classmethod
    def from_pid(cls, pid: int) -> Task:
        """Hold an existing process by a new pidfd (it need not be our child)."""
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            raise from_errno(exc.errno or 0, f"pidfd_open({pid})", "no such process") from None
        return cls(pid, fd, is_child=_is_our_child(pid))

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"returncode={self.returncode}"
        return f"<Task pid={self.pid} {state}>"

    def fileno(self) -> int:
        """The pidfd: readable (for select/poll/epoll/asyncio) once the task has ended."""
        if self._pidfd < 0:
            raise UsageError(f"task {self.pid}: its pidfd is closed")
        return self._pidfd

    # -- waiting ---------------------------------------------------------------------------
    def poll(self) -> int | None:
        """The returncode if the task has ended (reaping it), else None; never blocks."""
        if self.returncode is None and self._pidfd >= 0:
            self._reap(block=False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the task to end and return its returncode.

        Raises :class:`TimeoutError` when ``timeout`` seconds pass first.
        """
        if self.returncode is not None:
            return self.returncode
        if timeout is None and self._is_child:
            # the common case, inline: right after a fork every page the parent touches is a
            # copy-on-write fault, so the shortest path to waitid is also the fastest
            try:
                info = os.waitid(os.P_PIDFD, self._pidfd, _WAIT_EXITED)
            except InterruptedError:
                info = None
            except ChildProcessError:
                self._is_child = False  # CLONE_PARENT made it our sibling
                info = None
            if info is not None:
                self.returncode = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
                return self.returncode
        start = time.monotonic()
        if timeout is None and self._is_child:
            self._reap(block=True)
        if self.returncode is None:
            if not self._ended(timeout):
                raise TimeoutError(f"task {self.pid} still runs after {timeout} s")
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            self._reap(block=True, timeout=left)
        if self.returncode is None:
            raise TimeoutError(
                f"task {self.pid} has ended, but it is not our child (CLONE_PARENT) and its "
                f"parent has not reaped it within {timeout} s, so its exit status is unknown"
            )
        return self.returncode

    async def wait_async(self) -> int:
        """``await task.wait_async()``: wait in an asyncio loop, which watches the pidfd."""
        import asyncio

        if self.poll() is not None:
            return self.returncode  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        fd = self.fileno()
        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(fd)
        return self.wait()

    def _ended(self, timeout: float | None) -> bool:
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if poller.poll(left):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _reap(self, *, block: bool, timeout: float | None = None) -> None:
        if self._is_child:
            options = os.WEXITED | _WALL | (0 if block else os.WNOHANG)
            while True:
                try:
                    info = os.waitid(os.P_PIDFD, self._pidfd, options)
                except InterruptedError:
                    continue
                except ChildProcessError:
                    self._is_child = False  # CLONE_PARENT made it our sibling
                    break
                if info is not None:
                    self.returncode = _returncode(info.si_code, info.si_status)
                return
        if block or self._ended(0):
            self.returncode = self._exit_code_of_non_child(timeout)

    def _exit_code_of_non_child(self, timeout: float | None) -> int | None:
        """Exit status of a task that is not our child (CLONE_PARENT).  Linux 6.15+ gives it to
        pidfd holders once the task's real parent has reaped it; wait for that."""
        import fcntl
        import struct

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            buf = bytearray(64)
            struct.pack_into("Q", buf, 0, _PIDFD_INFO_EXIT)
            try:
                fcntl.ioctl(self._pidfd, _PIDFD_GET_INFO, buf, True)
            except OSError as exc:
                raise KernelError(
                    exc.errno or 0,
                    f"task {self.pid} has ended but is not our child (CLONE_PARENT), and this "
                    "kernel cannot report its exit status through a pidfd (needs Linux 6.15)",
                    step="PIDFD_GET_INFO",
                ) from None
            (mask,) = struct.unpack_from("Q", buf, 0)
            if mask & _PIDFD_INFO_EXIT:
                (status,) = struct.unpack_from("i", buf, 60)  # exit_code
                return os.waitstatus_to_exitcode(status)
            if deadline is not None and time.monotonic() >= deadline:
                return None  # ended, but its parent has not reaped it yet
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    # -- signals ---------------------------------------------------------------------------
    def send_signal(self, sig: int) -> None:
        """Send ``sig`` through the pidfd; a no-op once the task is reaped (like subprocess)."""
        if self.returncode is not None:
            return
        try:
            pidfd_send_signal(self.fileno(), sig)
        except ProcessLookupError:
            pass  # ended but not reaped yet: same as subprocess

    def terminate(self) -> None:
        self.send_signal(SIGTERM)

    def kill(self) -> None:
        self.send_signal(SIGKILL)

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the pidfd (after that the task can no longer be waited for here)."""
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pidfd >= 0 and self.returncode is None:
                self.wait()
        finally:
            self.close()

    def __del__(self) -> None:
        if getattr(self, "_pidfd", -1) >= 0:
            if self.returncode is None and self._is_child:
                import warnings

                warnings.warn(f"task {self.pid} is still running or not reaped", ResourceWarning,
                              stacklevel=2)
            self.close()


def _returncode(code: int, status: int) -> int:
    if code == os.CLD_EXITED:
        return status
    return -status  # CLD_KILLED / CLD_DUMPED: status is the signal


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return ppid == os.getpid()
