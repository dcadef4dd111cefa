"""linux.resources.devices -> DeviceRules (stub: the real module replaces this body)."""

from __future__ import annotations

from ..security.devices import DeviceRule
from .jsonfields import SpecError


def parse_device_rules(value: object, path: str = "$.linux.resources.devices") -> tuple[DeviceRule, ...]:
    raise SpecError(path, "device rules are not implemented yet")
