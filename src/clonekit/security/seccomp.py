"""seccomp filters (stub: the real module replaces this body; names and signatures stay)."""

from __future__ import annotations

from .._record import record

__all__ = ["Filter", "Seccomp", "compile_filter", "install", "send_to_listener"]


@record(frozen=True)
class Seccomp:
    default_action: str
    listener_path: str | None = None
    listener_metadata: str = ""


@record(frozen=True)
class Filter:
    program: bytes
    flags: int = 0
    notify: bool = False


def compile_filter(s: Seccomp) -> Filter:
    raise NotImplementedError("seccomp is not implemented yet")


def install(f: Filter) -> int:
    raise NotImplementedError("seccomp is not implemented yet")


def send_to_listener(listener_path: str, listener_fd: int, state: dict[str, object], metadata: str) -> None:
    raise NotImplementedError("seccomp is not implemented yet")
