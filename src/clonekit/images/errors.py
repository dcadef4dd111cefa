"""The one error of image unpacking: which image, which layer, which member, and why."""

from __future__ import annotations

from ..errors import Error

__all__ = ["ImageError"]


class ImageError(Error, OSError):
    """An image could not be read or unpacked.

    The message names the source file, the layer (its digest or archive path) and the member
    when there is one, says why it was refused and what to do.  ``errno`` is the system's errno
    where the failure came from the kernel (a full disk, a missing file), else ``None`` (a
    malformed image, a member refused by the extraction rules); ``filename`` is the file
    involved, if any."""

    def __init__(self, message: str, *, err: int | None = None, filename: str | None = None):
        if err:
            super().__init__(err, message)
        else:
            super().__init__(message)
        self.message = message
        if filename is not None:
            self.filename = filename

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.message, self.errno, getattr(self, "filename", None)))


def _rebuild(message: str, err: int | None, filename: str | None) -> ImageError:
    return ImageError(message, err=err, filename=filename)
