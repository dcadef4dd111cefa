"""The runtime <-> container-init conversation: typed messages over a pair of pipes.

Each message is one line of JSON with a "msg" tag.  A failure inside the container travels back
as {"msg": "error", "step": ..., "errno": ..., "path": ..., "text": ...}, so the runtime's final
error line names the root cause rather than "init failed".  (Pipes, not a socketpair: the
socket module would cost the per-container start-up ~4 ms of imports.)
"""

from __future__ import annotations

import os
import select

from .._jsonc import dumps, loads
from ..errors import KernelError

__all__ = ["Channel"]


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.fds = (read_fd, write_fd)
        self._buffer = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a_read, b_write = os.pipe()
        b_read, a_write = os.pipe()
        return cls(a_read, a_write), cls(b_read, b_write)

    def send(self, msg: str, **fields: object) -> None:
        os.write(self.fds[1], dumps({"msg": msg, **fields}).encode() + b"\n")

    def send_error(self, exc: BaseException, step: str) -> None:
        err = getattr(exc, "errno", None) or 0
        path = getattr(exc, "filename", None)
        self.send("error", step=getattr(exc, "step", "") or step, errno=err,
                  path=os.fsdecode(path) if path is not None else None, text=_text(exc))

    def expect(self, msg: str, *, task_fd: int | None = None, timeout: float = 60.0) -> dict[str, object]:
        """Wait for message ``msg``; an error message, EOF or the init's death raise KernelError."""
        line = self._line(task_fd, timeout, msg)
        doc = loads(line.decode())
        if doc.get("msg") == "error":
            raise KernelError(int(doc.get("errno") or 0), str(doc.get("text")),
                              step=str(doc.get("step") or ""), filename=doc.get("path"))
        if doc.get("msg") != msg:
            raise KernelError(0, f"protocol error: expected {msg!r}, got {doc.get('msg')!r}", step="create")
        return doc

    def _line(self, task_fd: int | None, timeout: float, waiting_for: str) -> bytes:
        poller = select.poll()
        poller.register(self.fds[0], select.POLLIN)
        while b"\n" not in self._buffer:
            if not poller.poll(int(timeout * 1000)):
                raise KernelError(62, f"the container's init did not answer within {timeout} s "
                                  f"(waiting for {waiting_for!r})", step="create")
            chunk = os.read(self.fds[0], 65536)
            if not chunk:  # every write end is closed: the init is gone
                raise KernelError(0, "the container's init died before it was ready (see its "
                                  "stderr above, or --log)", step="create")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = (-1, -1)


def _text(exc: BaseException) -> str:
    """The message without errno and path: both travel in fields of their own."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
