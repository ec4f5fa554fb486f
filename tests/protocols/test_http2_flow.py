"""RFC 9113 flow control (sections 5.2, 6.9) and settings (6.5), with raw frames fed to
``H2Core``: windows both ways, their overflow, SETTINGS_INITIAL_WINDOW_SIZE changes, settings
validation and acknowledgement (h2spec's catalogue as the checklist)."""

from __future__ import annotations

import pytest

from tests.protocols.h2frames import (
    FLOW_CONTROL_ERROR,
    MAX_WINDOW,
    PROTOCOL_ERROR,
    Client,
    T,
    data,
    describe,
    kinds,
    parse_frames,
    ping,
    post,
    raw,
    settings,
    settings_ack,
    window_update,
)
from uvicorn.protocols.http2 import BODY, END, RESET, WINDOW, H2Settings

CONNECTION_WINDOW = 100 * 65535  # what the server opens at once: every stream's window


# Section 6.9.1: the windows the client must keep to.


def test_data_beyond_the_stream_window_is_a_flow_control_error() -> None:
    """6.9.1: a sender MUST NOT exceed the window; a stream error FLOW_CONTROL_ERROR (the
    connection's window given back: the stream's loss is its own)."""
    client = Client(H2Settings(initial_window_size=65535))
    client.send(settings_ack())
    client.request(1, post(), end_stream=False)
    events = client.send(*[data(1, b"x" * 16384)] * 3, data(1, b"x" * 16383))
    assert kinds(events) == [(BODY, 1, 16384)] * 3 + [(BODY, 1, 16383)]
    assert kinds(client.send(data(1, b"x"))) == [(RESET, 1, FLOW_CONTROL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, FLOW_CONTROL_ERROR)]
    # The refused byte is owed back to the connection's window (once half of it is owed).
    assert client.core.conn_recv == CONNECTION_WINDOW - 65536 and client.core._conn_credit == 1
    client.still_serves(3)


def test_data_beyond_the_connection_window_is_a_connection_error() -> None:
    """6.9.1: the connection's window, exceeded: FLOW_CONTROL_ERROR, a connection error."""
    client = Client(H2Settings(max_concurrent_streams=1, initial_window_size=65535))
    client.send(settings_ack())
    client.request(1, post(), end_stream=False)
    client.send(*[data(1, b"x" * 16384)] * 3, data(1, b"x" * 16383))
    client.core.streams[1].recv_window += 10  # (as if the stream's window had been raised)
    assert client.connection_error(data(1, b"x")) == ("GOAWAY", 1, FLOW_CONTROL_ERROR)


def test_the_receive_windows_come_back_as_the_body_is_consumed() -> None:
    """6.9: WINDOW_UPDATEs as the app takes the body, once half of a window is consumed."""
    client = Client(H2Settings(initial_window_size=1000, max_concurrent_streams=4))
    client.send(settings_ack())
    client.request(1, post(), end_stream=False)
    client.send(data(1, b"x" * 1000))
    client.core.consumed(1, 499)
    assert client.sent() == []
    client.core.consumed(1, 1)
    assert client.sent() == [("WINDOW_UPDATE", 1, 500)]
    assert kinds(client.send(data(1, b"x" * 500))) == [(BODY, 1, 500)]  # and it is used
    # The connection's window: here the default (4 streams of 1000 need no more), by halves.
    client = Client(H2Settings(initial_window_size=65535, max_concurrent_streams=1))
    client.request(1, post(), end_stream=False)
    client.send(data(1, b"x" * 16384), data(1, b"x" * 16384))
    client.core.consumed(1, 32766)
    assert client.sent() == []
    client.core.consumed(1, 1)
    assert client.sent() == [("WINDOW_UPDATE", 0, 32767), ("WINDOW_UPDATE", 1, 32767)]


def test_the_connection_window_opening_is_reported_once() -> None:
    """6.9: a connection WINDOW_UPDATE is reported (WINDOW 0, for the streams waiting on it)
    when the window was closed; while it is open no stream waits on it, and none is reported
    (a flood of tiny updates costs no visit of every stream)."""
    client = Client()
    client.request(1)
    client.core.send_headers(1, b"\x88", False)
    assert client.send(window_update(0, 1), window_update(1, 100000)) == [(WINDOW, 1)]
    assert client.core.send_data(1, b"x" * 70000, False) == 65536
    assert client.send(window_update(0, 10), window_update(0, 10)) == [(WINDOW, 0)]
    assert client.core.room(1) == 20


def test_a_window_update_overflowing_the_connection_window_is_a_connection_error() -> None:
    """6.9.1: a window above 2^31-1: FLOW_CONTROL_ERROR, on the connection a connection error."""
    client = Client()
    client.send(window_update(0, MAX_WINDOW - 65535))  # exactly the largest: allowed
    assert client.connection_error(window_update(0, 1)) == ("GOAWAY", 0, FLOW_CONTROL_ERROR)


def test_a_window_update_overflowing_a_stream_window_is_a_stream_error() -> None:
    """6.9.1: on a stream, a stream error FLOW_CONTROL_ERROR."""
    client = Client()
    client.request(1)
    assert kinds(client.send(window_update(1, MAX_WINDOW - 65535))) == [(WINDOW, 1)]
    assert kinds(client.send(window_update(1, 1))) == [(RESET, 1, FLOW_CONTROL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, FLOW_CONTROL_ERROR)]
    client.still_serves(3)


# Section 5.2 and 6.9: what the server sends keeps to the client's windows.


def test_response_data_keeps_to_the_stream_and_connection_windows() -> None:
    """5.2, 6.9: DATA within both windows, no empty frame when there is no window, a WINDOW
    event when it opens; frames no larger than the client's SETTINGS_MAX_FRAME_SIZE."""
    client = Client(client_settings={4: 20000})
    client.request(1)
    client.core.send_headers(1, b"\x88", False)
    assert client.core.send_data(1, b"x" * 50000, True) == 20000
    assert client.sent() == [("HEADERS", 1, False, True), ("DATA", 1, 16384, False),
                             ("DATA", 1, 3616, False)]  # fmt: skip
    assert client.core.room(1) == 0 and client.core.send_data(1, b"x", True) == 0
    assert client.sent() == []
    assert kinds(client.send(window_update(1, 40000))) == [(WINDOW, 1)]
    assert client.core.room(1) == 40000
    assert client.core.send_data(1, b"x" * 30000, True) == 30000
    assert client.sent() == [("DATA", 1, 16384, False), ("DATA", 1, 13616, True)]


def test_initial_window_size_1_then_data_a_byte_at_a_time() -> None:
    """6.9.1 (h2spec): SETTINGS_INITIAL_WINDOW_SIZE 1, then a request: one byte of response."""
    client = Client(client_settings={4: 1})
    client.request(1)
    client.core.send_headers(1, b"\x88", False)
    assert client.core.send_data(1, b"abc", True) == 1
    assert client.sent() == [("HEADERS", 1, False, True), ("DATA", 1, 1, False)]


def test_a_change_of_initial_window_size_moves_every_open_stream_window() -> None:
    """6.9.2: a change of SETTINGS_INITIAL_WINDOW_SIZE adjusts every stream's window by the
    difference, which may make it negative; a WINDOW event for the streams it raises."""
    client = Client()
    client.request(1)
    client.request(3)
    client.core.send_headers(1, b"\x88", False)
    client.core.send_data(1, b"x" * 60000, False)
    client.sent()
    assert client.send(settings({4: 1000})) == []
    assert client.sent() == [("SETTINGS", "ACK")]
    assert client.core.streams[1].send_window == 1000 - 60000 and client.core.room(1) == 0
    assert client.core.send_data(1, b"x", False) == 0 and client.sent() == []
    assert kinds(client.send(settings({4: 70000}))) == [(WINDOW, 1), (WINDOW, 3)]
    assert client.core.streams[1].send_window == 10000
    assert client.core.room(1) == client.core.room(3) == 65535 - 60000  # the connection's


def test_initial_window_size_overflowing_a_stream_window_is_a_flow_control_error() -> None:
    """6.9.2: a change that makes a window exceed 2^31-1: a connection error
    FLOW_CONTROL_ERROR."""
    client = Client()
    client.request(1)
    client.send(window_update(1, MAX_WINDOW - 65535))
    assert client.connection_error(settings({4: 65536})) == ("GOAWAY", 1, FLOW_CONTROL_ERROR)


def test_several_initial_window_sizes_in_one_frame_are_taken_in_order() -> None:
    """6.5.3 (h2spec): values processed in the order they appear; the last one stands."""
    client = Client()
    client.request(1)
    client.send(raw(T.SETTINGS, 0, 0, b"\0\x04\0\0\0\x64" + b"\0\x04\0\0\0\x01"))
    assert client.sent() == [("SETTINGS", "ACK")]
    assert client.core.streams[1].send_window == 1


# Section 6.5: SETTINGS values.


@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [
        (2, 2, PROTOCOL_ERROR),  # ENABLE_PUSH other than 0 or 1
        (4, MAX_WINDOW + 1, FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE above 2^31-1
        (5, 16383, PROTOCOL_ERROR),  # MAX_FRAME_SIZE below 2^14
        (5, 2**24, PROTOCOL_ERROR),  # ... above 2^24-1
        (8, 2, PROTOCOL_ERROR),  # ENABLE_CONNECT_PROTOCOL (RFC 8441 section 3)
    ],
)
def test_settings_out_of_range_are_connection_errors(setting: int, value: int, code: int) -> None:
    """6.5.2."""
    wire = raw(T.SETTINGS, 0, 0, setting.to_bytes(2, "big") + value.to_bytes(4, "big"))
    assert Client().connection_error(wire) == ("GOAWAY", 0, code)


def test_unknown_settings_are_ignored_and_every_settings_is_acknowledged() -> None:
    """6.5.2: unknown identifiers are ignored; 6.5.3: each SETTINGS gets its ACK at once."""
    client = Client()
    assert client.send(settings({0x99: 7, 1: 0, 3: 0, 6: 10}), settings({})) == []
    assert client.sent() == [("SETTINGS", "ACK"), ("SETTINGS", "ACK")]
    client.still_serves(1)


def test_the_client_max_frame_size_bounds_what_is_sent() -> None:
    """6.5.2: SETTINGS_MAX_FRAME_SIZE, the largest frame the client takes."""
    client = Client(client_settings={5: 20000, 4: 100000})
    client.request(1)
    client.core.send_headers(1, b"\x88" * 30000, False)
    assert client.core.send_data(1, b"x" * 30000, True) == 30000
    assert client.sent() == [("HEADERS", 1, False, False), ("CONTINUATION", 1, False, True),
                             ("DATA", 1, 20000, False), ("DATA", 1, 10000, True)]  # fmt: skip


def test_a_large_body_is_sent_as_views_and_a_mutable_one_is_copied_first() -> None:
    """A body larger than a frame goes out as views of it (``take_frames``, for a gathering
    write); one the app may still change (a bytearray) is copied once, never viewed: the
    frames hold what it was when sent, and the app can still grow it."""
    client = Client(client_settings={4: 100000})
    client.request(1)
    client.request(3)
    client.sent()  # (what the requests made the server send)
    body = b"".join(bytes([i]) * 1000 for i in range(30))  # (both within the 64 KiB window)
    assert client.core.send_data(1, body, True) == 30000 and client.core.large
    frames = client.core.take_frames()
    assert not client.core.large and client.core.data_to_send() == b""
    assert sum(isinstance(piece, memoryview) for piece in frames) == 2
    assert [describe(f) for f in parse_frames(b"".join(frames))] == [
        ("DATA", 1, 16384, False), ("DATA", 1, 13616, True)
    ]  # fmt: skip
    assert b"".join(frame.data for frame in parse_frames(b"".join(frames))) == body
    mutable = bytearray(body)
    assert client.core.send_data(3, mutable, True) == 30000
    mutable[:5] = b"later"
    mutable += b"more"  # (a view of it would forbid this: BufferError)
    sent = parse_frames(client.core.data_to_send())
    assert b"".join(frame.data for frame in sent) == body


def test_the_server_announces_connect_protocol_when_websockets_are_on() -> None:
    """RFC 8441 section 3, RFC 9113 6.5.2: our settings, from the configuration."""
    client = Client(H2Settings(extended_connect=True, max_concurrent_streams=7,
                               initial_window_size=1 << 20, max_frame_size=1 << 15))  # fmt: skip
    assert client.server_preface[0][1] == {3: 7, 6: 8190 + 100 * (8190 + 32), 2: 0,
                                           4: 1 << 20, 5: 1 << 15, 8: 1}  # fmt: skip


def test_a_small_window_is_in_force_only_once_acknowledged() -> None:
    """6.9.2, 6.5.3: "the receiver MUST be prepared to receive data that exceeds this window
    size, since the sender might send data that exceeds the lower limit prior to processing
    the SETTINGS frame": a stream opened before our SETTINGS are acknowledged has the default
    window, and is shrunk to ours by the ACK."""
    client = Client(H2Settings(initial_window_size=1000))
    client.request(1, post(), end_stream=False)
    events = client.send(*[data(1, b"x" * 16384)] * 3, data(1, b"x" * 16383, True))
    assert kinds(events)[-2:] == [(BODY, 1, 16383), (END, 1)]
    client.request(3, post(), end_stream=False)
    client.send(data(3, b"x" * 5000))
    assert client.send(settings_ack()) == [] and client.sent() == []
    # Stream 3 had 65535 - 5000 left; the ACK takes 64535 of it: 1000 - 5000.
    assert kinds(client.send(data(3, b"x"))) == [(RESET, 3, FLOW_CONTROL_ERROR)]
    client.request(5, post(), end_stream=False)
    assert kinds(client.send(data(5, b"x" * 1000))) == [(BODY, 5, 1000)]
    assert kinds(client.send(data(5, b"x"))) == [(RESET, 5, FLOW_CONTROL_ERROR)]


def test_a_settings_ack_is_not_answered() -> None:
    """6.5: an ACK acknowledges; it is never answered."""
    client = Client()
    assert client.send(settings_ack(), ping()) == []
    assert client.sent() == [("PING", "ACK", b"12345678")]
