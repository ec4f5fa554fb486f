"""The JSON codec that carries group messages between processes: types survive, nothing is
ever unpickled, and what it cannot carry is a TypeError at the sender."""

from __future__ import annotations

import json
from typing import Any

import pytest

from uvicorn.broadcast_backends import decode, encode


def round_trip(message: Any) -> Any:
    return decode(json.loads(json.dumps(encode(message))))


@pytest.mark.parametrize(
    "message",
    [
        {"bytes": b"\x00\xff binary \x80"},
        {"bytes": b""},
        {"text": "h\u00e9llo \U0001f600", "n": 1, "f": 1.5, "t": True, "none": None},
        {"nested": {"a": [1, {"b": b"x", "c": [b"y", [b"z"]]}], "d": {"e": {"f": None}}}},
        {"list": [[], {}, [[]], ""]},
        {"$b": "not a tag"},  # keys that look like the codec's own tags
        {"$d": [["x", 1]], "$": 0, "$$": {"$b": b"real bytes"}},
        {"inner": {"$b": "AAAA", "other": 1}},
        {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        {b"bytes key": b"bytes value", "str key": 1},
        {"mixed": {1: {"$x": [b"a"]}}},
    ],
)
def test_round_trip_keeps_types(message: Any) -> None:
    result = round_trip(message)
    assert result == message
    assert _types(result) == _types(message)


def _types(value: Any) -> Any:
    """The type of every value, nested: so that b'x' and 'x' or 1 and True never compare equal."""
    if isinstance(value, dict):
        return {(type(k).__name__, k): _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_bytes_like_values_arrive_as_bytes() -> None:
    assert round_trip({"a": bytearray(b"ab"), "m": memoryview(b"cd")}) == {"a": b"ab", "m": b"cd"}


def test_tuples_arrive_as_lists() -> None:
    assert round_trip({"t": (1, (2, b"3"))}) == {"t": [1, [2, b"3"]]}


def test_the_wire_form_is_plain_json_without_pickle() -> None:
    wire = json.dumps(encode({"bytes": b"\x80\x04", "$k": 1}))
    assert json.loads(wire) == {"$d": [["bytes", {"$b": "gAQ="}], ["$k", 1]]}


@pytest.mark.parametrize(
    "message",
    [
        {"obj": object()},
        {"set": {1, 2}},
        {"nested": [{"deep": {"x": 1j}}]},
        {"exc": ValueError("x")},
        {frozenset({1}): "unhashable once a list"},
        {(1, 2): "a tuple key would come back as an unhashable list"},
    ],
)
def test_unsupported_types_are_a_type_error(message: Any) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        encode(message)
