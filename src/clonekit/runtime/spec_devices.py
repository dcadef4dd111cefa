"""linux.resources.devices -> DeviceRules, each field checked with its JSON path.

As runc reads them (libcontainer/specconv): ``type`` absent or ``""`` is ``"a"`` (all devices);
``major``/``minor`` absent, null or -1 is any; ``access`` must be given.  Stricter than runc where
runc would accept a rule that does not do what it says (each refusal says what to write):

- ``allow`` is required (the runtime-spec says so; Go reads a missing one as false, a deny);
- type ``"a"`` with numbers or a partial access: the kernel reads ``a`` as "every device, every
  access" and ignores the rest, so ``{"allow": false, "access": "r"}`` would deny writes too;
- numbers beyond the kernel's (major 0-4095, minor 0-1048575) could never match a device.

runc refuses ``"u"`` and ``"p"`` as rule types (only a, b and c are cgroup types); so do we, with
the fix in the message.
"""

from __future__ import annotations

from .._jsonc import dumps
from ..security.devices import DeviceRule
from .jsonfields import SpecError, boolean, check_fields, get, integer, key_path, obj, seq, string

__all__ = ["parse_device_rules"]

KNOWN = frozenset({"allow", "type", "major", "minor", "access"})
_LIMITS = {"major": (1 << 12) - 1, "minor": (1 << 20) - 1}  # include/linux/kdev_t.h: 12 + 20 bits
_TYPE_HINTS = {
    "u": "a cgroup rule for an unbuffered character device is a \"c\" rule; write \"c\"",
    "p": "a fifo is not a device the devices cgroup controls, so it needs no rule; remove the rule",
}


def parse_device_rules(value: object, path: str = "$.linux.resources.devices") -> tuple[DeviceRule, ...]:
    """The rules in config order (``[]`` gives ``()``)."""
    return tuple(_rule(item, f"{path}[{i}]") for i, item in enumerate(seq(value, path)))


def _rule(value: object, path: str) -> DeviceRule:
    doc = obj(value, path)
    check_fields(doc, path, KNOWN, what="a device rule")
    if get(doc, "allow") is None:
        raise SpecError(key_path(path, "allow"), "missing: every device rule says whether it allows "
                                                 "(true) or denies (false); add \"allow\"")
    allow = boolean(doc["allow"], key_path(path, "allow"))
    kind = _type(doc, path)
    major, minor = _number(doc, path, "major"), _number(doc, path, "minor")
    access = _access(doc, path)
    if kind == "a" and (major is not None or minor is not None or access != "rwm"):
        raise SpecError(path, "a rule of type \"a\" means every device with every access (the "
                              "kernel ignores numbers and access there); give it no major/minor and "
                              "access \"rwm\", or use type \"c\" or \"b\" to name devices")
    return DeviceRule(allow=allow, type=kind, major=major, minor=minor, access=access)


def _type(doc: dict[str, object], path: str) -> str:
    if get(doc, "type") is None:
        return "a"
    where = key_path(path, "type")
    kind = string(doc["type"], where) or "a"
    if kind in ("a", "b", "c"):
        return kind
    hint = _TYPE_HINTS.get(kind, "use \"a\" (all), \"c\" (character) or \"b\" (block)")
    raise SpecError(where, f"{dumps(kind)} is not a cgroup device type: {hint}")


def _number(doc: dict[str, object], path: str, key: str) -> int | None:
    raw = get(doc, key)
    where = key_path(path, key)
    if raw is None or (type(raw) is int and raw == -1):
        return None
    top = _LIMITS[key]
    return integer(raw, where, 0, top, f"a {key} number (0 to {top}, or -1 for any)")


def _access(doc: dict[str, object], path: str) -> str:
    where = key_path(path, "access")
    if get(doc, "access") is None:
        raise SpecError(where, "missing: say which access the rule is about, a combination of "
                               "r (read), w (write) and m (mknod), e.g. \"rwm\"")
    text = string(doc["access"], where)
    if not text:
        raise SpecError(where, "empty: runc refuses an empty access too; write a combination of "
                               "r (read), w (write) and m (mknod), e.g. \"rwm\"")
    bad = sorted(set(text) - set("rwm"))
    if bad:
        raise SpecError(where, f"{dumps(text)} has {', '.join(map(repr, bad))}: access is a combination "
                               "of r (read), w (write) and m (mknod); remove the other letters")
    return "".join(c for c in "rwm" if c in text)
