"""Device access rules (stub: the real module replaces this body; names and signatures stay)."""

from __future__ import annotations

from .._record import record

__all__ = ["DeviceRule"]


@record(frozen=True)
class DeviceRule:
    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"
