"""A progress bar on stderr for large layers, drawn only when stderr is a terminal."""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import TextIO

__all__ = ["LARGE", "Progress"]

LARGE = 32 << 20  # bytes of a layer blob from which a bar is worth drawing
_EVERY = 0.1      # seconds between redraws


class Progress:
    """``update(done)`` redraws at most every 0.1 s; ``close()`` ends the line.  Does nothing
    (no output at all) unless ``total`` is large and stderr is a terminal."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None):
        out = sys.stderr if stream is None else stream
        self.out = out
        self.label = label
        self.total = total
        self.active = total >= LARGE and _isatty(out)
        self.last = 0.0
        self.drawn = False

    def update(self, done: int) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if now - self.last < _EVERY and done < self.total:
            return
        self.last = now
        self._draw(done)

    def _draw(self, done: int) -> None:
        width = 30
        frac = min(done / self.total, 1.0) if self.total > 0 else 0.0
        bar = "#" * int(frac * width)
        line = (f"\r{self.label} [{bar:<{width}}] {frac * 100:3.0f}% "
                f"{done / (1 << 20):.1f}/{self.total / (1 << 20):.1f} MiB")
        self.out.write(line)
        self.out.flush()
        self.drawn = True

    def close(self, done: int | None = None) -> None:
        if self.active and self.drawn:
            self._draw(self.total if done is None else done)
            self.out.write("\n")
            self.out.flush()
        self.active = False


def _isatty(stream: TextIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
