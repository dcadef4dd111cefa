"""A helper process that stays outside while its parent moves into new namespaces.

Forked *before* ``unshare()``, it keeps the caller's original user, mount and pid namespaces, so
it can do for its parent what the parent can no longer do for itself: write the id maps of the
new user namespace (with the privileges of the parent namespace, or through newuidmap), and
bind-mount the new namespaces onto files that stay visible outside.

The parent sends requests over a pipe and waits for each answer (a typed message: marshal-coded
tuples); a failure comes back as the exception class, errno, message, step and path and is
raised again in the parent.  EOF on the request pipe ends the helper.
"""

from __future__ import annotations

import marshal
import os
import struct
from typing import Any

from ..errors import Error, KernelError, UsageError

__all__ = ["OutsideHelper"]


def _send(fd: int, obj: Any) -> None:
    data = marshal.dumps(obj)
    os.write(fd, struct.pack("=I", len(data)) + data)


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv(fd: int) -> Any:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack("=I", head)
    body = _read_exact(fd, size)
    return None if body is None else marshal.loads(body)


class OutsideHelper:
    """The helper child; :meth:`call` runs one request in it; :meth:`close` ends it."""

    def __init__(self) -> None:
        self.target = os.getpid()
        req_r, req_w = os.pipe2(os.O_CLOEXEC)
        rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, covered by the ns tests
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                self._serve(req_r, rep_w)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.pid = pid
        self._req = req_w
        self._rep = rep_r

    # ---------------------------------------------------------------- child side
    def _serve(self, req: int, rep: int) -> None:
        while True:
            msg = _recv(req)
            if msg is None:
                return
            op, args = msg
            try:
                getattr(self, f"_op_{op}")(*args)
            except Error as exc:
                _send(rep, ("err", type(exc).__name__, getattr(exc, "errno", 0) or 0, str(exc),
                            getattr(exc, "step", ""), getattr(exc, "filename", None) or ""))
            except OSError as exc:
                _send(rep, ("err", "KernelError", exc.errno or 0, exc.strerror or str(exc), op,
                            exc.filename or ""))
            except Exception as exc:
                _send(rep, ("err", "Error", 0, f"{type(exc).__name__}: {exc}", op, ""))
            else:
                _send(rep, ("ok",))

    def _op_maps(self, uid_text: str | None, gid_text: str | None, setgroups: str | None) -> None:
        from .idmap import IdMap, IdRange, write_maps

        def load(text: str | None) -> IdMap | None:
            if text is None:
                return None
            return IdMap([IdRange(*map(int, line.split())) for line in text.splitlines() if line])

        write_maps(self.target, load(uid_text), load(gid_text), setgroups=setgroups)

    def _op_bind(self, source: str, path: str) -> None:
        from .pin import persist

        persist(source, path)

    # ---------------------------------------------------------------- parent side
    def call(self, op: str, *args: Any) -> None:
        """Run request ``op`` in the helper; raise its failure here."""
        _send(self._req, (op, args))
        answer = _recv(self._rep)
        if answer is None:
            raise Error(f"the namespace helper process {self.pid} died during '{op}'")
        if answer[0] == "ok":
            return
        _, cls, err, message, step, filename = answer
        if cls == "KernelError" or cls.endswith("NamespaceError"):
            raise _Relayed(err, message, step, filename or None)
        if cls in ("UsageError", "NotANamespaceError", "WrongKindError"):
            raise UsageError(message)
        raise Error(message)

    def close(self) -> None:
        """End the helper and reap it."""
        if self._req >= 0:
            os.close(self._req)
            os.close(self._rep)
            self._req = self._rep = -1
            os.waitpid(self.pid, 0)

    def __enter__(self) -> OutsideHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Relayed(KernelError):
    """A KernelError from the helper: its text is already complete."""

    def __init__(self, err: int, message: str, step: str, filename: str | None) -> None:
        super().__init__(err, message, step=step, filename=filename)
        self._text = message

    def __str__(self) -> str:
        return self._text
