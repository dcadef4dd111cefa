"""The sandbox's errors, in clonekit's tree: a bad option is a :class:`SandboxUsageError`
(a ``ValueError``), a step the kernel refused is a :class:`SandboxError` (an ``OSError`` with the
kernel's errno and the step's name)."""

from __future__ import annotations

from ..errors import KernelError, UsageError

__all__ = ["SandboxError", "SandboxUsageError"]


class SandboxError(KernelError):
    """A step of making the sandbox failed: ``errno`` is the kernel's, ``step`` says which
    (``"mount /usr read-only"``, ``"exec python3"``, ...), the message what to do."""


class SandboxUsageError(UsageError):
    """An option the sandbox cannot honour (a bad size, a relative path, an unknown network)."""
