"""JSON through CPython's C accelerator (``_json``), without importing :mod:`json`.

``import json`` costs ~9 ms here: ``json.decoder`` compiles regular expressions at import (and
pulls in ``re``, ``enum``, ``functools``).  The runtime reads config.json and writes its state
once per container, so it uses the C scanner and encoder that :mod:`json` itself uses, with
json's defaults.  Errors are :class:`json.JSONDecodeError` (imported only when one happens).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

__all__ = ["dumps", "loads"]

_WHITESPACE = " \t\n\r"


class _Decoding:
    """The attributes ``_json.make_scanner`` reads from its context (json.JSONDecoder's)."""

    strict = True
    object_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # "NaN", "Infinity", "-Infinity", as json.loads accepts them

    def __init__(self, object_pairs_hook: Callable[[list[tuple[str, object]]], object] | None) -> None:
        self.object_pairs_hook = object_pairs_hook


_scan = _json.make_scanner(_Decoding(None))  # type: ignore[arg-type]  # typeshed wants a scanner


def loads(text: str, *, object_pairs_hook: Callable[[list[tuple[str, object]]], object] | None = None) -> Any:
    """Like ``json.loads(text)`` for a str (with its ``object_pairs_hook``)."""
    scan = _scan if object_pairs_hook is None else _json.make_scanner(_Decoding(object_pairs_hook))  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration as stop:
        raise _error("Expecting value", text, stop.value) from None
    except SystemError:
        # Python 3.11's scanner finds JSONDecodeError in sys.modules only (3.12+ imports it):
        # with json.decoder imported, the same scan raises the real error
        import json.decoder  # noqa: F401

        value, end = scan(text, start)
    rest = text[end:]
    if rest.strip(_WHITESPACE):
        raise _error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    return value


def _error(msg: str, text: str, pos: int) -> Exception:
    from json import JSONDecodeError

    return JSONDecodeError(msg, text, pos)


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encoder(item_separator: str, key_separator: str) -> Callable[[object, int], Any]:
    # json.dumps' defaults: ensure_ascii, check_circular, allow_nan.  A new one per call, as
    # json makes: the circular check's markers dict keeps entries when encoding fails midway,
    # and a shared one would then call the next encoding of that object circular.
    return _json.make_encoder(
        {}, _not_serializable, _json.encode_basestring_ascii, None, key_separator, item_separator,
        False, False, True,
    )


def dumps(value: object, *, indent: int | None = None, compact: bool = False) -> str:
    """Like ``json.dumps(value)``; ``indent`` as json's (its exact output), ``compact`` as
    ``separators=(",", ":")``."""
    encode = _encoder(",", ":") if compact else _encoder(", ", ": ")
    if indent is not None:
        return "".join(_indented(value, " " * indent, "\n", encode))
    return "".join(encode(value, 0))


def _key(key: object, encode: Callable[[object, int], Any]) -> str:
    # json's rule for keys: str as is; True/False/None/numbers as their JSON text, quoted
    if not isinstance(key, str):
        if not isinstance(key, (int, float)) and key is not None:
            raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
        key = "".join(encode(key, 0))
    return "".join(encode(key, 0))


def _indented(value: object, step: str, newline: str, encode: Callable[[object, int], Any]) -> list[str]:
    # containers laid out here, leaves by the C encoder: json.dumps(indent=N) byte for byte
    if isinstance(value, dict) and value:
        inner = newline + step
        parts = [f"{_key(k, encode)}: " + "".join(_indented(v, step, inner, encode))
                 for k, v in value.items()]
        return ["{", inner, ("," + inner).join(parts), newline, "}"]
    if isinstance(value, (list, tuple)) and value:
        inner = newline + step
        return [
            "[",
            inner,
            ("," + inner).join("".join(_indented(v, step, inner, encode)) for v in value),
            newline,
            "]",
        ]
    return list(encode(value, 0))
