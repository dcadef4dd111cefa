"""A layer blob read as a tar stream: decompressed by its magic bytes (gzip with Python's zlib,
zstd through the ``zstd`` command when it is installed: Python 3.11 has no zstd module), the
blob checked against its digest and the tar against its diff_id as they are read."""

from __future__ import annotations

import shutil
import subprocess
import threading

from .errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import tarfile
    from collections.abc import Callable
    from typing import IO, Protocol

    class Readable(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...

__all__ = ["LayerStream"]

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 16


class _Hashing:
    """A reader that hashes (and counts) what passes through it."""

    def __init__(self, f: Readable, digest: str | None, on_read: Callable[[int], None] | None = None):
        import hashlib  # OpenSSL's sha256 is several times faster than the builtin on a layer

        self.f = f
        self.digest = digest
        self.hash = hashlib.new(digest.partition(":")[0]) if digest else None
        self.count = 0
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if self.hash is not None:
            self.hash.update(data)
        self.count += len(data)
        if self.on_read is not None:
            self.on_read(self.count)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def mismatch(self) -> str | None:
        """The digest read when it is not the expected one, else None."""
        if self.hash is None or self.digest is None:
            return None
        got = f"{self.digest.partition(':')[0]}:{self.hash.hexdigest()}"
        return None if got == self.digest else got


class _Prefixed:
    """A reader that first returns ``head`` (the bytes peeked for the magic), then ``f``."""

    def __init__(self, head: bytes, f: _Hashing):
        self.head = head
        self.f = f

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.f.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.f.read(n)


class _Zstd:
    """``zstd -dc`` fed by a thread from the blob; read its output."""

    def __init__(self, body: _Prefixed, where: str):
        command = shutil.which("zstd")
        if command is None:
            raise ImageError(f"{where} is zstd-compressed and Python 3.11 cannot read zstd itself: "
                             "install the zstd command (apt install zstd)")
        self.proc = subprocess.Popen([command, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.error: BaseException | None = None
        self.feeder = threading.Thread(target=self._feed, args=(body,), daemon=True)
        self.feeder.start()

    def _feed(self, body: _Prefixed) -> None:
        assert self.proc.stdin is not None
        try:
            while chunk := body.read(_CHUNK):
                self.proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # zstd stopped reading: its status says why
        except BaseException as exc:  # a read error of the blob: reported by close()
            self.error = exc
        finally:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def read(self, n: int = -1) -> bytes:
        assert self.proc.stdout is not None
        return self.proc.stdout.read(n)

    def close(self, where: str) -> None:
        if self.proc.poll() is None and self.proc.stdout is not None:
            self.proc.stdout.close()  # an early end (an error): zstd gets EPIPE and exits
        status = self.proc.wait()
        self.feeder.join()
        err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        if self.error is not None:
            raise self.error
        if status != 0:
            raise ImageError(f"{where}: zstd could not decompress it (status {status}): {err}")


class LayerStream:
    """``tar()`` gives the layer's members as a stream; ``close()`` checks the digests (after
    the whole blob was read) and releases everything."""

    def __init__(self, blob: IO[bytes], *, where: str, digest: str | None, diff_id: str | None,
                 on_read: Callable[[int], None] | None = None):
        import gzip

        self.where = where
        self.blob = blob
        self.raw = _Hashing(blob, digest, on_read)
        head = self.raw.read(4)
        body = _Prefixed(head, self.raw)
        self.zstd: _Zstd | None = None
        plain: Readable
        if head.startswith(_GZIP):
            plain = gzip.GzipFile(fileobj=body, mode="rb")  # type: ignore[call-overload]
        elif head.startswith(_ZSTD):
            plain = self.zstd = _Zstd(body, where)
        else:
            plain = body
        self.plain = plain
        self.tarstream = _Hashing(plain, diff_id)

    def tar(self) -> tarfile.TarFile:
        import tarfile

        try:
            return tarfile.open(fileobj=self.tarstream, mode="r|",  # type: ignore[call-overload]
                                errors="surrogateescape")
        except tarfile.TarError as exc:
            raise ImageError(f"{self.where}: not a tar archive: {exc}") from None

    def finish(self) -> None:
        """Read what is left (the tar's end blocks, the compressor's trailer) and check both
        digests: a layer that is not what its manifest and config say is refused."""
        import zlib

        try:
            self.tarstream.drain()
            self.raw.drain()
        except (OSError, EOFError, zlib.error) as exc:
            raise ImageError(f"{self.where}: damaged: {exc}") from None
        if self.zstd is not None:
            self.zstd.close(self.where)
            self.zstd = None
        got = self.raw.mismatch()
        if got is not None:
            raise ImageError(f"{self.where}: the blob hashes to {got}, not {self.raw.digest}: the "
                             "image is damaged or was changed")
        got = self.tarstream.mismatch()
        if got is not None:
            raise ImageError(f"{self.where}: the uncompressed layer hashes to {got}, not its diff_id "
                             f"{self.tarstream.digest} from the image config: the image is damaged "
                             "or was changed")

    def close(self) -> None:
        if self.zstd is not None:
            try:
                self.zstd.close(self.where)
            except (ImageError, OSError):
                pass  # already failing: the first error is the one reported
            self.zstd = None
        self.blob.close()
