"""The one error of the rootfs steps: which step, which path inside the container, which errno."""

from __future__ import annotations

import os

from ..errors import KernelError

__all__ = ["RootfsError"]


class RootfsError(KernelError):
    """A rootfs step failed: ``step`` names it ("mount proc on /proc", "mknod /dev/null",
    "pivot_root"), ``filename`` is the path inside the container, ``errno`` the kernel's errno and
    ``hint`` what to do about it (may be empty)."""

    def __init__(self, err: int, step: str, path: str | None = None, hint: str = ""):
        text = os.strerror(err) if err else "refused"
        if hint:
            text = f"{text}: {hint}"
        super().__init__(err, text, step=step, filename=path)
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:  # picklable: the init sends it to the runtime
        return (type(self), (self.errno, self.step, getattr(self, "filename", None), self.hint))
