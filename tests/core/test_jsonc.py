"""clonekit._jsonc against the json module: the same text out, the same values and errors in."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from clonekit import _jsonc


def _value(rng: random.Random, depth: int = 0) -> object:
    pick = rng.random()
    if depth > 3 or pick < 0.3:
        return rng.choice([1, -2.5, 'a\u00e9"\n\\', True, False, None, 10**20, "", 0.1, "\u2028\U0001f600"])
    if pick < 0.6:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["k", "\u00e9", "x y", 1, True, None, 2.5]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_dumps_and_loads_match_json_byte_for_byte() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        value = _value(rng)
        assert _jsonc.dumps(value) == json.dumps(value)
        assert _jsonc.dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))
        for indent in (2, 4):
            assert _jsonc.dumps(value, indent=indent) == json.dumps(value, indent=indent)
        text = json.dumps(value, indent=rng.choice([None, 2]))
        assert _jsonc.loads(f" \n{text}\t ") == json.loads(text)


@pytest.mark.parametrize("text", ["", "  ", "{", "[1,]", "1 2", '{"a":1}x', "nul", '"\x01"', '{"a" 1}'])
def test_errors_are_json_decode_errors_at_the_same_place(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        _jsonc.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


def test_a_fresh_interpreter_reports_errors_without_json_imported_first() -> None:
    # Python 3.11's C scanner looks JSONDecodeError up in sys.modules only
    code = (
        "import sys\nfrom clonekit import _jsonc\nassert 'json' not in sys.modules\n"
        "try:\n    _jsonc.loads('{\"a\": 1,}')\nexcept ValueError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads('{"a": 1,}')
    assert out.strip() == f"JSONDecodeError {theirs.value}"


def test_object_pairs_hook_sees_every_pair() -> None:
    pairs: list[list[tuple[str, object]]] = []
    _jsonc.loads('{"a": 1, "a": {"b": 2}}', object_pairs_hook=lambda p: pairs.append(p) or dict(p))
    assert pairs == [[("b", 2)], [("a", 1), ("a", {"b": 2})]]


def test_a_failed_encoding_does_not_poison_the_next() -> None:
    # the C encoder's circular check keeps its entries when it fails midway: json makes a new
    # encoder per call, and so must we
    doc: dict[str, object] = {"a": [1, 2], "bad": object()}
    with pytest.raises(TypeError):
        _jsonc.dumps(doc)
    del doc["bad"]
    assert _jsonc.dumps(doc) == json.dumps(doc) == '{"a": [1, 2]}'
