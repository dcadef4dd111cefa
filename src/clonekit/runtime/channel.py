"""The runtime <-> container-init conversation: typed messages over a SOCK_SEQPACKET socketpair.

Each message is one JSON object with a "msg" tag.  A failure inside the container travels back
as {"msg": "error", "step": ..., "errno": ..., "path": ..., "text": ...}, so the runtime's final
error line names the root cause rather than "init failed".
"""

from __future__ import annotations

import json
import os
import select
import socket

from ..errors import KernelError

__all__ = ["Channel"]


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: str, **fields: object) -> None:
        self.sock.send(json.dumps({"msg": msg, **fields}).encode())

    def send_error(self, exc: BaseException, step: str) -> None:
        err = getattr(exc, "errno", None) or 0
        path = getattr(exc, "filename", None)
        self.send("error", step=getattr(exc, "step", "") or step, errno=err,
                  path=os.fsdecode(path) if path is not None else None, text=_text(exc))

    def expect(self, msg: str, *, task_fd: int | None = None, timeout: float = 60.0) -> dict[str, object]:
        """Wait for message ``msg``; an error message, EOF or the init's death raise KernelError."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        if task_fd is not None:
            poller.register(task_fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            raise KernelError(62, f"the container's init did not answer within {timeout} s "
                              f"(waiting for {msg!r})", step="create")
        data = self.sock.recv(1 << 16) if _readable(self.sock) else b""
        if not data:
            raise KernelError(0, "the container's init died before it was ready (see its stderr "
                              "above, or --log)", step="create")
        doc = json.loads(data)
        if doc.get("msg") == "error":
            raise KernelError(int(doc.get("errno") or 0), str(doc.get("text")),
                              step=str(doc.get("step") or ""), filename=doc.get("path"))
        if doc.get("msg") != msg:
            raise KernelError(0, f"protocol error: expected {msg!r}, got {doc.get('msg')!r}", step="create")
        return doc

    def close(self) -> None:
        self.sock.close()


def _readable(sock: socket.socket) -> bool:
    r, _, _ = select.select([sock], [], [], 0)
    return bool(r)


def _text(exc: BaseException) -> str:
    """The message without errno and path: both travel in fields of their own."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
