"""Reading config.json values with their JSON path: typed getters whose errors say where, what
and why (``$.process.rlimits[2].hard: expected an integer, got the string "x"``).

Shared by :mod:`.spec` and the parsers of its larger sections (seccomp, devices, ...), so every
section reports bad input the same way.  Only the C JSON encoder is imported (the CLI path).
"""

from __future__ import annotations

from .._jsonc import dumps
from ..errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["SPEC", "TYPE_WORDS", "SpecError", "boolean", "check_fields", "describe", "get", "integer",
           "key_path", "obj", "seq", "str_list", "string", "uint32", "wrong_type"]

SPEC = "the OCI runtime-spec"
UINT32_MAX = (1 << 32) - 1


class SpecError(UsageError):
    """config.json is wrong.  ``json_path`` names the value (``$.mounts[2].destination``)."""

    def __init__(self, json_path: str, message: str) -> None:
        super().__init__(f"{json_path}: {message}")
        self.json_path = json_path
        self.message = message


def key_path(path: str, key: object) -> str:
    """``$.a`` + ``b`` -> ``$.a.b``; keys that are not identifiers are quoted: ``$.a["b.c"]``."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{dumps(key if isinstance(key, str) else str(key))}]"


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {dumps(shown)}"
    if isinstance(value, list):
        return "an array"
    return "an object"


TYPE_WORDS = {dict: "an object ({...})", list: "an array ([...])", str: "a string",
              bool: "a boolean (true or false)", int: "an integer"}


def wrong_type(path: str, value: object, expected: str) -> SpecError:
    return SpecError(path, f"expected {expected}, got {describe(value)}: {SPEC} defines this field "
                           f"as {expected}; write it that way")


def obj(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise wrong_type(path, value, TYPE_WORDS[dict])
    return value


def seq(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise wrong_type(path, value, TYPE_WORDS[list])
    return value


def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(path, value, TYPE_WORDS[str])
    if "\0" in value:
        raise SpecError(path, "contains a NUL character (\\u0000): the kernel reads strings up to the "
                              "first NUL, so the value would be cut short; remove it")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: "\ud800" is valid JSON, not text
            raise SpecError(path, f"contains {value[exc.start]!a}, half of a UTF-16 surrogate pair "
                                  f"(at character {exc.start}): it is no character, so it cannot be "
                                  "passed to the kernel as UTF-8; write the whole character or "
                                  "remove it") from None
    return value


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise wrong_type(path, value, TYPE_WORDS[bool])
    return value


def integer(value: object, path: str, lo: int, hi: int, what: str = "an integer") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong_type(path, value, what)
    if not lo <= value <= hi:
        raise SpecError(path, f"{value} is out of range: {what} must be between {lo} and {hi}; "
                              "use a value in that range")
    return value


def uint32(value: object, path: str) -> int:
    return integer(value, path, 0, UINT32_MAX, "an unsigned 32-bit integer")


def str_list(value: object, path: str) -> tuple[str, ...]:
    items = seq(value, path)
    return tuple(string(item, f"{path}[{i}]") for i, item in enumerate(items))


def check_fields(doc: dict[str, Any], path: str, known: frozenset[str] | dict[str, Any],
                 other_platforms: dict[str, type] | None = None, what: str = "") -> None:
    """Unknown keys are ignored, as the runtime-spec requires ("MUST NOT generate an error if
    they encounter an unknown property ... MUST ignore"); each is named in a warning for --log,
    with the closest known name, as a misspelt field would else be dropped without a word.
    ``other_platforms`` names fields the runtime-spec defines for other operating
    systems: a Linux runtime ignores them too, but their type is still checked."""
    for key, value in doc.items():
        if key in known:
            continue
        if other_platforms is not None and key in other_platforms:
            expected = other_platforms[key]
            if value is not None and not (isinstance(value, expected) and not
                                          (expected is int and isinstance(value, bool))):
                raise wrong_type(key_path(path, key), value, TYPE_WORDS[expected])
            continue
        _warn_unknown(key_path(path, key), str(key), sorted({*known, *(other_platforms or {})}), what)


def _warn_unknown(where: str, key: str, names: list[str], what: str) -> None:
    from . import notices

    if not notices.heard():
        return
    import difflib  # only for a field nobody knows, when someone listens

    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(names)})"
    notices.warning(f"{where}: unknown field {key!r} ignored: {SPEC} 1.2 has no such field in "
                    f"{what or 'this object'}{hint}")


def get(doc: dict[str, Any], key: str) -> Any:
    """The value, with JSON null read as absent (as Go's decoder and runc do)."""
    return doc.get(key)
