"""Errors of the runtime: each names the container and says what to do."""

from __future__ import annotations

from ..errors import Error, KernelError, UsageError

__all__ = [
    "ContainerError",
    "ContainerExists",
    "ContainerStateError",
    "InitFailed",
    "KernelError",
    "NoSuchContainer",
]


class ContainerError(Error):
    """A lifecycle operation cannot be done."""


class NoSuchContainer(ContainerError, LookupError):
    def __init__(self, container_id: str, root: str) -> None:
        super().__init__(f"container {container_id!r} does not exist (state dir {root}); "
                         "`clonekit list` shows the containers there, --root picks another state dir")


class ContainerExists(ContainerError, FileExistsError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists: delete it first, or pick another id")


class ContainerStateError(ContainerError):
    """The container is in the wrong state for the operation (start twice, kill a stopped one)."""


class InvalidId(UsageError):
    pass


class StateDirError(ContainerError):
    """The state directory (--root) cannot be used."""


class InitFailed(KernelError):
    """A step inside the new container failed; carries the step, the path and the errno."""
