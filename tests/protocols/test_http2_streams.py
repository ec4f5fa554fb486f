"""RFC 9113 section 5: stream states (5.1), identifiers (5.1.1), concurrency (5.1.2), error
handling (5.4), and our GOAWAY (6.8), with raw frames fed to ``H2Core`` (h2spec's catalogue as
the checklist)."""

from __future__ import annotations

import pytest

from tests.protocols.h2frames import (
    CANCEL,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    Client,
    T,
    continuation,
    data,
    headers,
    kinds,
    post,
    raw,
    rst_stream,
    settings,
    window_update,
)
from uvicorn.protocols.http2 import BODY, END, REQUEST, RESET, WINDOW, H2Settings
from uvicorn.protocols.http2_control import RESET_MEMORY
from uvicorn.protocols.http2_frames import H2ConnectionError

# Section 5.1: idle.


@pytest.mark.parametrize(
    "frame",
    [data(1, b"x"), rst_stream(1), window_update(1, 1), continuation(1, b"\x82")],
    ids=["DATA", "RST_STREAM", "WINDOW_UPDATE", "CONTINUATION"],
)
def test_frames_on_an_idle_stream_are_a_protocol_error(frame: bytes) -> None:
    """5.1 idle: anything but HEADERS or PRIORITY is a connection error PROTOCOL_ERROR."""
    assert Client().connection_error(frame) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_headers_open_a_stream_and_end_stream_half_closes_it() -> None:
    """5.1: idle -> open (HEADERS) -> half-closed (remote) (END_STREAM)."""
    client = Client()
    assert kinds(client.request(1, post(), end_stream=False)) == [(REQUEST, 1)]
    assert client.core.streams[1].remote_open
    assert kinds(client.send(data(1, b"ab"), data(1, b"", True))) == [(BODY, 1, 2), (END, 1)]
    assert not client.core.streams[1].remote_open and client.core.streams[1].local_open
    client.respond(1, b"done")
    assert client.sent() == [("HEADERS", 1, False, True), ("DATA", 1, 4, True)]
    assert 1 not in client.core.streams  # closed


# Section 5.1: half-closed (remote).


def test_data_on_a_half_closed_remote_stream_is_a_stream_error() -> None:
    """5.1 half-closed (remote): frames other than WINDOW_UPDATE, PRIORITY, RST_STREAM are a
    stream error of type STREAM_CLOSED."""
    client = Client()
    client.request(1)
    assert kinds(client.send(data(1, b"x"))) == [(RESET, 1, STREAM_CLOSED)]
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]
    client.still_serves(3)


def test_headers_on_a_half_closed_remote_stream_is_a_stream_error() -> None:
    """5.1 half-closed (remote): a second HEADERS with END_STREAM is a stream error of type
    STREAM_CLOSED; its block still decoded, the HPACK context kept in step (4.3)."""
    client = Client()
    client.request(1)
    block = client.block([("x-trailer", "late")])
    assert kinds(client.send(headers(1, block))) == [(RESET, 1, STREAM_CLOSED)]
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]
    client.still_serves(3)


def test_continuation_on_a_half_closed_remote_stream_is_a_protocol_error() -> None:
    """5.1, 6.10: CONTINUATION without a field block before it."""
    client = Client()
    client.request(1)
    assert client.connection_error(continuation(1, b"\x82")) == ("GOAWAY", 1, PROTOCOL_ERROR)


def test_window_update_priority_and_rst_stream_on_a_half_closed_remote_stream() -> None:
    """5.1 half-closed (remote): WINDOW_UPDATE, PRIORITY and RST_STREAM are accepted."""
    client = Client()
    client.request(1)
    events = client.send(window_update(1, 100), raw(T.PRIORITY, 0, 1, b"\0\0\0\0\x10"))
    assert kinds(events) == [(WINDOW, 1)]
    assert kinds(client.send(rst_stream(1, CANCEL))) == [(RESET, 1, CANCEL)]
    assert client.sent() == []
    client.still_serves(3)


# Section 5.1: closed.


def test_frames_on_a_stream_we_reset_are_ignored() -> None:
    """5.1 closed: after our RST_STREAM, frames already in flight are ignored (their window
    given back); their field blocks still decoded."""
    client = Client()
    client.request(1, post(), end_stream=False)
    client.core.reset(1, CANCEL)
    assert client.sent() == [("RST_STREAM", 1, CANCEL)]
    window = client.core.conn_recv
    trailers = client.block([("x-checksum", "1")])
    assert client.send(data(1, b"x" * 1000), window_update(1, 5), headers(1, trailers)) == []
    assert client.sent() == []  # (less than half the connection's window: not yet given back)
    assert client.core.conn_recv == window - 1000 and client.core._conn_credit == 1000
    assert client.send(rst_stream(1), raw(T.PRIORITY, 0, 1, b"\0\0\0\0\x10")) == []
    client.still_serves(3)


def test_data_on_a_closed_stream_is_a_stream_error() -> None:
    """5.1 closed: DATA after both ends closed, a stream error of type STREAM_CLOSED."""
    client = Client()
    client.request(1)
    client.respond(1)
    client.sent()
    assert client.send(data(1, b"x")) == []
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]
    client.still_serves(3)


def test_headers_on_a_closed_stream_is_a_connection_error() -> None:
    """5.1 closed: HEADERS on a closed stream, a connection error of type STREAM_CLOSED (the
    field block would be a new request on a used stream id)."""
    client = Client()
    client.request(1)
    client.respond(1)
    client.sent()
    assert client.connection_error(headers(1, client.block())) == ("GOAWAY", 1, STREAM_CLOSED)


def test_window_update_and_rst_stream_on_a_closed_stream_are_ignored() -> None:
    """5.1 closed: WINDOW_UPDATE and RST_STREAM may arrive after END_STREAM was sent."""
    client = Client()
    client.request(1)
    client.respond(1)
    client.sent()
    assert client.send(window_update(1, 10), rst_stream(1, NO_ERROR)) == []
    assert client.sent() == []
    client.still_serves(3)


# Section 5.1.1: stream identifiers.


def test_even_stream_identifiers_are_a_protocol_error() -> None:
    """5.1.1: streams a client opens are odd-numbered."""
    client = Client()
    client.request(1)
    wire = raw(T.HEADERS, 0x5, 4, client.block())
    assert client.connection_error(wire) == ("GOAWAY", 1, PROTOCOL_ERROR)


def test_a_stream_id_lower_than_the_last_is_a_connection_error() -> None:
    """5.1.1: a new stream's id must be greater than every one opened before; a lower one is
    a connection error (as its stream is closed, 5.1.1's implicit close, the code is
    STREAM_CLOSED: the core keeps no record of which ids were used)."""
    client = Client()
    client.request(5)
    goaway = client.connection_error(headers(3, client.block()))
    assert goaway in [("GOAWAY", 5, PROTOCOL_ERROR), ("GOAWAY", 5, STREAM_CLOSED)]


def test_skipped_stream_ids_are_closed() -> None:
    """5.1.1: opening stream 7 closes idle streams 1 to 5; DATA on them is a stream error."""
    client = Client()
    client.request(7)
    assert client.send(data(3, b"x")) == []
    assert client.sent() == [("RST_STREAM", 3, STREAM_CLOSED)]
    client.still_serves(9)


# Section 5.1.2: concurrency.


def test_streams_beyond_max_concurrent_streams_are_refused() -> None:
    """5.1.2: beyond SETTINGS_MAX_CONCURRENT_STREAMS, a stream error: REFUSED_STREAM (8.7:
    nothing was processed, the client may retry). Half-closed streams count; a stream closed
    makes room again."""
    client = Client(H2Settings(max_concurrent_streams=2))
    assert kinds(client.request(1, post(), end_stream=False) + client.request(3)) == [
        (REQUEST, 1), (REQUEST, 3)
    ]  # fmt: skip
    assert client.request(5) == []
    assert client.sent() == [("RST_STREAM", 5, REFUSED_STREAM)]
    assert client.send(data(5, b"late")) == [] and client.sent() == []  # refused: ignored
    client.respond(3)
    client.sent()
    assert kinds(client.request(7)) == [(REQUEST, 7)]


# Section 5.4: error handling.


def test_a_stream_error_resets_one_stream_and_the_connection_goes_on() -> None:
    """5.4.2: RST_STREAM with the code; other streams are unaffected."""
    client = Client()
    client.request(1, post(), end_stream=False)
    client.request(3, post(), end_stream=False)
    assert kinds(client.send(window_update(3, 0))) == [(RESET, 3, PROTOCOL_ERROR)]
    assert client.sent() == [("RST_STREAM", 3, PROTOCOL_ERROR)]
    assert kinds(client.send(data(1, b"abc", True))) == [(BODY, 1, 3), (END, 1)]
    client.still_serves(5)


def test_a_connection_error_sends_goaway_with_the_last_stream_and_stops() -> None:
    """5.4.1: GOAWAY with the last stream processed and the error code, then nothing more is
    read, not even the rest of the same read."""
    client = Client()
    client.request(1, end_stream=False)
    client.request(3, end_stream=False)
    block = client.block()
    goaway = client.connection_error(raw(T.PING, 0, 1, b"x" * 8) + headers(5, block))
    assert goaway == ("GOAWAY", 3, PROTOCOL_ERROR)


# Section 6.8: our GOAWAY.


def test_streams_above_our_goaway_are_ignored_whole() -> None:
    """6.8: after our GOAWAY, streams above its last stream id are ignored: their HEADERS
    (still decoded), DATA (window given back) and trailers, without error."""
    client = Client()
    client.request(1, end_stream=False)
    client.core.goaway(NO_ERROR)
    assert client.sent() == [("GOAWAY", 1, NO_ERROR)]
    wire = headers(3, client.block(post()), end_stream=False) + data(3, b"x" * 100)
    trailers = client.block([("x-sum", "1")])
    assert client.send(wire, headers(3, trailers), rst_stream(3), window_update(3, 1)) == []
    assert client.sent() == []
    assert kinds(client.send(data(1, b"", True))) == [(END, 1)]  # stream 1 goes on


def test_a_graceful_goaway_then_the_last_stream() -> None:
    """6.8: GOAWAY with the largest id first (nothing in flight is lost), then the real last
    stream; a stream between the two is served."""
    client = Client()
    client.request(1)
    client.core.goaway(NO_ERROR, 2**31 - 1)
    assert client.sent() == [("GOAWAY", 2**31 - 1, NO_ERROR)]
    assert kinds(client.request(3)) == [(REQUEST, 3)]
    client.core.goaway(NO_ERROR)
    assert client.sent() == [("GOAWAY", 3, NO_ERROR)]
    assert client.request(5) == []


def test_a_later_goaway_never_raises_the_last_stream_id() -> None:
    """6.8: "Endpoints MUST NOT increase the value they send in the last stream identifier":
    streams ignored after our GOAWAY are not counted by a connection error's GOAWAY."""
    client = Client()
    client.request(1)
    client.core.goaway(NO_ERROR)
    client.sent()
    client.request(3)
    client.request(5)
    assert client.connection_error(raw(T.PING, 0, 1, b"x" * 8)) == ("GOAWAY", 1, PROTOCOL_ERROR)


# Section 8.1: streams and requests.


def test_a_second_headers_without_end_stream_is_a_stream_error() -> None:
    """8.1: trailers must end the stream: a second HEADERS without END_STREAM is malformed."""
    client = Client()
    client.request(1, post(), end_stream=False)
    block = client.block([("x-trailer", "1")])
    assert kinds(client.send(headers(1, block, end_stream=False))) == [(RESET, 1, PROTOCOL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    client.still_serves(3)


def test_the_client_resetting_a_stream_ends_it() -> None:
    """6.4: RST_STREAM from the client: RESET, and later frames on it are STREAM_CLOSED."""
    client = Client()
    client.request(1, post(), end_stream=False)
    assert kinds(client.send(rst_stream(1, CANCEL))) == [(RESET, 1, CANCEL)]
    assert client.core.room(1) == 0
    assert client.send(data(1, b"x")) == []
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]


def test_the_memory_of_reset_streams_is_bounded() -> None:
    """5.1 closed: late frames on streams we reset are ignored, for the last RESET_MEMORY
    of them; older ones get the closed stream's answer (STREAM_CLOSED)."""
    client = Client()
    count = RESET_MEMORY + 10
    for n in range(count):
        stream_id = 2 * n + 1
        client.request(stream_id, end_stream=False)
        client.core.reset(stream_id, CANCEL)
    client.sent()
    assert len(client.core._reset) == RESET_MEMORY
    assert client.send(data(2 * count - 1, b"x")) == [] and client.sent() == []
    assert client.send(data(1, b"x")) == []
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]


# RFC 7540 section 3.2: h2c (stream 1 is the upgraded request).


def test_an_upgraded_connection_has_stream_1_half_closed() -> None:
    """RFC 7540 3.2: the request that asked for h2c is stream 1, half-closed (remote); its
    HTTP2-Settings apply (and are not acknowledged: the 101 does)."""
    client = Client(handshake=False)
    client.core.upgraded(settings({4: 1000})[9:])  # (the payload only)
    assert client.core.peer_window == 1000 and client.sent() == []
    assert client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings()) == []
    assert client.sent() == [("SETTINGS", "ACK")]
    client.core.send_headers(1, b"\x88", False)
    assert client.core.send_data(1, b"x" * 1500, True) == 1000
    assert client.sent() == [("HEADERS", 1, False, True), ("DATA", 1, 1000, False)]
    client.send(window_update(1, 500))
    assert client.core.send_data(1, b"x" * 500, True) == 500
    assert client.sent() == [("DATA", 1, 500, True)]
    assert client.send(data(1, b"x")) == []
    assert client.sent() == [("RST_STREAM", 1, STREAM_CLOSED)]
    client.still_serves(3)


BAD_HTTP2_SETTINGS = [
    (b"\0\x02\0\0\0\x02", PROTOCOL_ERROR), (b"\0\x04\x80\0\0\0", FLOW_CONTROL_ERROR),
    (b"\0\x05\0\0\0\x01", PROTOCOL_ERROR), (b"\0\x04\0", FRAME_SIZE_ERROR),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "code"), BAD_HTTP2_SETTINGS)
def test_invalid_http2_settings_of_an_upgrade_are_a_connection_error(
    payload: bytes, code: int
) -> None:
    """RFC 7540 3.2.1: HTTP2-Settings is a SETTINGS payload; values no SETTINGS frame may hold
    are the same connection error (after the 101: the connection is HTTP/2 already)."""
    client = Client(handshake=False)
    with pytest.raises(H2ConnectionError):
        client.core.upgraded(payload)
    assert client.sent() == [("GOAWAY", 0, code)] and client.core.closed
