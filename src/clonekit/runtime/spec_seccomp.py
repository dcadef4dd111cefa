"""linux.seccomp -> Seccomp (stub: the real module replaces this body)."""

from __future__ import annotations

from ..security.seccomp import Seccomp
from .jsonfields import SpecError


def parse_seccomp(value: object, path: str = "$.linux.seccomp") -> Seccomp:
    raise SpecError(path, "seccomp is not implemented yet")
