"""Whole one-frame messages taken ahead of websockets' parser
(``StrictServerProtocol.take_whole_frames``): the same events and the same server frames as
websockets' parser alone, for any client stream split anywhere, valid or not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from tests.protocols.invariants import chunks_at
from tests.protocols.invariants_websocket import WebSocketRun, build_client_stream
from tests.protocols.invariants_websocket_frames import BINARY, PING, PONG, TEXT, client_frame
from tests.protocols.test_properties_websocket import PROFILE, any_ops, cut_lists, max_sizes
from tests.protocols.wsclient import Pair, frame, messages


def parser_only(run: WebSocketRun) -> WebSocketRun:
    run.core.protocol.take_whole_frames = lambda data: 0  # type: ignore[method-assign]
    return run


def outcome(run: WebSocketRun) -> tuple[Any, ...]:
    frames = [(f.opcode, f.payload) for f in run.reader.frames]
    return run.events, frames, run.reader.eof


@PROFILE
@given(any_ops(), cut_lists, max_sizes)
def test_the_same_as_websockets_parser_alone(ops: Any, cuts: list[int], max_size: int) -> None:
    fast, slow = WebSocketRun(max_size), parser_only(WebSocketRun(max_size))
    data, _ = build_client_stream(ops, fast.negotiated, max_size)
    for chunk in chunks_at(data, cuts):
        fast.feed(chunk)
        slow.feed(chunk)
    fast.feed_eof()
    slow.feed_eof()
    assert outcome(fast) == outcome(slow)


# Each one between two valid frames, in one read: what the parser alone would do.
EDGES = {
    "over max_size": (125, client_frame(TEXT, b"x" * 126)),
    "at max_size": (125, client_frame(TEXT, b"x" * 125)),
    "16-bit length": (2**20, client_frame(BINARY, b"y" * 300)),
    "16-bit length under 126": (2**20, b"\x81\xfe\x00\x05" + b"\x00" * 4 + b"hello"),
    "64-bit length": (2**20, client_frame(BINARY, b"z" * 70000)),
    "not masked": (2**20, b"\x81\x02ok"),
    "rsv1 without an extension": (2**20, client_frame(TEXT, b"x", rsv=0b100)),
    "invalid UTF-8": (2**20, client_frame(TEXT, b"\xff\xfe")),
    "a first fragment": (2**20, client_frame(TEXT, b"a", fin=False) + client_frame(0x0, b"b")),
    "a ping": (2**20, client_frame(PING, b"p")),
    "a close": (2**20, client_frame(0x8, b"\x03\xe8")),
    "an empty text": (2**20, client_frame(TEXT, b"")),
}


@pytest.mark.parametrize("name", list(EDGES))
@pytest.mark.parametrize("cut", [None, 1, 3, 7])
def test_edge_frames_as_the_parser_alone(name: str, cut: int | None) -> None:
    max_size, middle = EDGES[name]
    data = client_frame(TEXT, b"before") + middle + client_frame(BINARY, b"after")
    fast, slow = WebSocketRun(max_size), parser_only(WebSocketRun(max_size))
    at = len(data) if cut is None else len(client_frame(TEXT, b"before")) + cut
    for run in (fast, slow):
        run.feed(data[:at])
        run.feed(data[at:])
    assert outcome(fast) == outcome(slow)
    assert fast.events[0] == ("text", "before")


def test_several_messages_in_one_read_and_a_ping_between() -> None:
    run = WebSocketRun()
    run.feed(
        client_frame(TEXT, b"one") + client_frame(BINARY, b"\x00" * 300)
        + client_frame(PING, b"p") + client_frame(TEXT, "é".encode())
    )  # fmt: skip
    assert run.events == [("text", "one"), ("data", b"\x00" * 300), ("text", "é")]
    assert [(f.opcode, f.payload) for f in run.reader.frames] == [(PONG, b"p")]


def test_a_frame_whose_header_came_alone_is_left_to_the_parser() -> None:
    pair = Pair()
    data = frame(TEXT, b"hello")
    protocol = pair.core.protocol
    assert protocol.take_whole_frames(data) == len(data)
    protocol.events_received()
    pair.send(data[:6])  # header and mask: the parser now waits inside the frame
    assert protocol.take_whole_frames(frame(TEXT, b"x")) == 0
    assert messages(pair.send(data[6:])) == ["hello"]
    assert protocol.take_whole_frames(data) == len(data)  # between frames again


def test_not_with_permessage_deflate() -> None:
    pair = Pair(client_deflate=True)
    assert pair.core.protocol.take_whole_frames(frame(TEXT, b"x")) == 0
