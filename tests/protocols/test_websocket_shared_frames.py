"""Frames made once for many peers (the broadcast fan-out): ``unmasked_frame()`` is the frame
websockets would have made for any peer without an extension, and ``shares_frames`` says when
a connection may take such bytes instead of framing its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from tests.protocols.wsclient import Pair, frame
from uvicorn.protocols.websocket_frames import BINARY_FIN, TEXT_FIN, unmasked_frame

CLOSE = 0x8


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_the_frame_is_the_one_websockets_makes(length: int) -> None:
    # RFC 6455 section 5.2: 7, 7+16 or 7+64 bits of length, at 126 and 65536.
    payload = bytes(i % 251 for i in range(length))
    for first, opcode in ((TEXT_FIN, Opcode.TEXT), (BINARY_FIN, Opcode.BINARY)):
        expected = Frame(opcode, payload).serialize(mask=False, extensions=[])
        assert unmasked_frame(first, payload) == expected


def test_a_client_reads_it() -> None:
    pair = Pair()
    pair.client.receive_data(unmasked_frame(TEXT_FIN, "héllo".encode()))
    pair.client.receive_data(unmasked_frame(BINARY_FIN, b"\x00" * 200))
    received = [e for e in pair.client.events_received() if isinstance(e, Frame)]
    assert [(f.opcode, bytes(f.data)) for f in received] == [
        (Opcode.TEXT, "héllo".encode()),
        (Opcode.BINARY, b"\x00" * 200),
    ]


def test_an_open_connection_without_extensions_shares_frames() -> None:
    assert Pair().core.shares_frames


def test_not_before_the_handshake_is_answered() -> None:
    assert not Pair(accept=False).core.shares_frames


def test_not_with_permessage_deflate() -> None:
    # RFC 7692 section 7.2.1: each connection compresses with its own context.
    pair = Pair(client_deflate=True)
    assert [e.name for e in pair.client.extensions] == ["permessage-deflate"]
    assert not pair.core.shares_frames


def test_not_once_closing() -> None:
    # RFC 6455 section 5.5.1: no data frame after a close frame.
    pair = Pair()
    pair.core.close(1000, "")
    assert not pair.core.shares_frames
    pair = Pair()
    pair.send(frame(CLOSE, b"\x03\xe8"))  # the peer's close, answered
    assert not pair.core.shares_frames


def test_not_while_something_else_waits_to_be_written() -> None:
    pair = Pair()
    pair.core.send_ping(b"")  # queued, not yet taken by data_to_send()
    assert not pair.core.shares_frames
    pair.server_out()
    assert pair.core.shares_frames


def test_the_state_read_is_websockets_own() -> None:
    # The core reads the protocol's state from the attribute websockets' property returns (a
    # Python call saved per member per group message): they must agree at every step of a
    # connection's life, on every websockets version setup.cfg allows.
    def agree(pair: Pair) -> None:
        protocol = pair.core.protocol
        assert protocol._state is protocol.state
        assert pair.core.is_open is (protocol.state is State.OPEN)

    pair = Pair(accept=False)
    agree(pair)  # CONNECTING
    pair.accept()
    agree(pair)  # OPEN
    pair.send(frame(0x1, b"hi"))
    agree(pair)
    pair.core.close(1000, "")
    agree(pair)  # CLOSING
    pair.send(frame(CLOSE, b"\x03\xe8"))
    agree(pair)
    pair.core.receive_eof()
    agree(pair)  # CLOSED
    assert pair.core.protocol.state is State.CLOSED
    pair = Pair()
    pair.send(b"\x81\x02hi")  # unmasked (RFC 6455 section 5.1): the connection fails
    if pair.core.failing:  # (held back until the caller asks)
        agree(pair)
        pair.core.fail_now()
    agree(pair)
    assert pair.core.protocol.state is State.CLOSING


def uncached(pair: Pair) -> bool:
    """``shares_frames`` as read from websockets' protocol now (the core keeps a flag)."""
    protocol = pair.core.protocol
    return (
        not protocol.extensions
        and protocol.state is State.OPEN
        and not protocol.writes
        and not protocol.expect_continuation_frame
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda pair: pair.core.close(1000, ""),
        lambda pair: pair.send(frame(CLOSE, b"\x03\xe8")),  # the peer's close, answered
        lambda pair: pair.send(frame(0x9, b"ping")),  # a pong queued in answer
        lambda pair: pair.core.send_ping(b""),
        lambda pair: pair.core.send_text("queued"),
        lambda pair: pair.core.send_bytes(b"queued"),
        lambda pair: pair.core.receive_eof(),
        lambda pair: pair.send(b"\x81\x02hi"),  # unmasked: the connection fails
    ],
)
def test_a_call_that_changes_it_is_seen_after_it_was_read(change: Callable[[Pair], Any]) -> None:
    # Read (and held) as true first, as each delivery of a group message reads it.
    pair = Pair()
    assert pair.core.shares_frames and uncached(pair)
    change(pair)
    assert pair.core.shares_frames is uncached(pair) is False
    if pair.core.failing:
        pair.core.fail_now()
        assert pair.core.shares_frames is uncached(pair) is False
    pair.server_out()  # what was queued is written: shared frames may follow again if open
    assert pair.core.shares_frames is uncached(pair)
