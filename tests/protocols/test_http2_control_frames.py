"""RFC 9113 sections 6.4 to 6.9, the frames that control a connection rather than carry a
request (RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE), at the level of h2spec's
catalogue: raw frames fed to ``H2Core``, what comes back compared exactly. Settings values and
windows: ``test_http2_flow.py``."""

from __future__ import annotations

import pytest

from tests.protocols.h2frames import (
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    Client,
    T,
    describe,
    goaway,
    kinds,
    ping,
    post,
    raw,
    rst_stream,
    window_update,
)
from uvicorn.protocols.http2 import GOAWAY, PONG, RESET

# Section 6.4: RST_STREAM.


def test_rst_stream_on_stream_0_is_a_protocol_error() -> None:
    """6.4."""
    wire = raw(T.RST_STREAM, 0, 0, b"\0\0\0\x08")
    assert Client().connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("size", [3, 5])
def test_rst_stream_of_a_wrong_length_is_a_frame_size_error(size: int) -> None:
    """6.4: a length other than 4: a connection error of type FRAME_SIZE_ERROR."""
    client = Client()
    client.request(1, end_stream=False)
    wire = raw(T.RST_STREAM, 0, 1, b"\0" * size)
    assert client.connection_error(wire) == ("GOAWAY", 1, FRAME_SIZE_ERROR)


def test_rst_stream_with_an_unknown_error_code_is_accepted() -> None:
    """7: unknown error codes are not errors; they mean INTERNAL_ERROR at most."""
    client = Client()
    client.request(1, post(), end_stream=False)
    assert kinds(client.send(rst_stream(1, 0xABCD))) == [(RESET, 1, 0xABCD)]
    client.still_serves(3)


# Section 6.5: SETTINGS frames (values: test_http2_flow.py).


def test_settings_ack_with_a_payload_is_a_frame_size_error() -> None:
    """6.5."""
    wire = raw(T.SETTINGS, 1, 0, b"\0\x03\0\0\0\x01")
    assert Client().connection_error(wire) == ("GOAWAY", 0, FRAME_SIZE_ERROR)


def test_settings_on_a_stream_is_a_protocol_error() -> None:
    """6.5."""
    assert Client().connection_error(raw(T.SETTINGS, 0, 1)) == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("size", [1, 5, 7])
def test_settings_not_a_multiple_of_6_octets_is_a_frame_size_error(size: int) -> None:
    """6.5."""
    wire = raw(T.SETTINGS, 0, 0, b"\0" * size)
    assert Client().connection_error(wire) == ("GOAWAY", 0, FRAME_SIZE_ERROR)


# Section 6.6 (and 8.4): PUSH_PROMISE.


def test_push_promise_from_a_client_is_a_protocol_error() -> None:
    """6.6, 8.4: a client cannot push (and we announced SETTINGS_ENABLE_PUSH 0)."""
    client = Client()
    client.request(1, end_stream=False)
    wire = raw(T.PUSH_PROMISE, 4, 1, b"\0\0\0\x02" + client.block())
    assert client.connection_error(wire) == ("GOAWAY", 1, PROTOCOL_ERROR)


# Section 6.7: PING.


def test_ping_is_answered_with_its_payload() -> None:
    """6.7: an ACK with an identical payload."""
    client = Client()
    assert client.send(ping(b"\x00\xff" * 4)) == []
    assert client.sent() == [("PING", "ACK", b"\x00\xff" * 4)]


def test_a_ping_ack_is_not_answered_and_ours_is_a_pong() -> None:
    """6.7: PING ACKs are not answered; the ACK of our own PING is reported."""
    client = Client()
    assert client.send(ping(ack=True)) == []
    client.core.ping()
    (ours,) = client.frames()
    assert describe(ours) == ("PING", "", bytes(ours.opaque_data))
    assert client.send(ping(bytes(ours.opaque_data), ack=True)) == [(PONG,)]
    assert client.sent() == []


def test_ping_on_a_stream_is_a_protocol_error() -> None:
    """6.7."""
    wire = raw(T.PING, 0, 1, b"12345678")
    assert Client().connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("size", [0, 7, 9])
def test_ping_of_a_length_other_than_8_is_a_frame_size_error(size: int) -> None:
    """6.7."""
    wire = raw(T.PING, 0, 0, b"x" * size)
    assert Client().connection_error(wire) == ("GOAWAY", 0, FRAME_SIZE_ERROR)


# Section 6.8: GOAWAY (from the client; ours: test_http2_streams.py).


def test_goaway_from_the_client_is_reported() -> None:
    """6.8: the client will open no more streams; unknown codes are accepted (7)."""
    client = Client()
    client.request(1, end_stream=False)
    assert client.send(goaway(0, 0xFFFF, b"debug data")) == [(GOAWAY, 0, 0xFFFF)]
    assert client.sent() == []


def test_goaway_on_a_stream_is_a_protocol_error() -> None:
    """6.8."""
    wire = raw(T.GOAWAY, 0, 1, b"\0" * 8)
    assert Client().connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_goaway_too_short_is_a_frame_size_error() -> None:
    """6.8, 4.2: too small to hold the last stream id and the error code."""
    wire = raw(T.GOAWAY, 0, 0, b"\0" * 7)
    assert Client().connection_error(wire) == ("GOAWAY", 0, FRAME_SIZE_ERROR)


# Section 6.9: WINDOW_UPDATE frames (flow control itself: test_http2_flow.py).


def test_window_update_of_0_on_the_connection_is_a_protocol_error() -> None:
    """6.9."""
    assert Client().connection_error(window_update(0, 0)) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_window_update_of_0_on_a_stream_is_a_stream_error() -> None:
    """6.9: on a stream, a stream error of type PROTOCOL_ERROR."""
    client = Client()
    client.request(1)
    assert kinds(client.send(window_update(1, 0))) == [(RESET, 1, PROTOCOL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    client.still_serves(3)


@pytest.mark.parametrize("size", [3, 5])
def test_window_update_of_a_wrong_length_is_a_frame_size_error(size: int) -> None:
    """6.9."""
    wire = raw(T.WINDOW_UPDATE, 0, 0, b"\0\0\0\x01\0"[:size])
    assert Client().connection_error(wire) == ("GOAWAY", 0, FRAME_SIZE_ERROR)
