"""RFC 9113 sections 3.4, 4 and 6, frame by frame, at the level of h2spec's catalogue: raw frames
fed to ``H2Core``, the frames and events that come back compared exactly. Stream states are
``test_http2_streams.py``'s, windows and settings ``test_http2_flow.py``'s, fields
``test_http2_fields.py``'s."""

from __future__ import annotations

import pytest

from tests.protocols.h2frames import (
    CANCEL,
    COMPRESSION_ERROR,
    FRAME_SIZE_ERROR,
    GET,
    PREFACE,
    PROTOCOL_ERROR,
    Client,
    T,
    continuation,
    data,
    describe,
    headers,
    kinds,
    parse_frames,
    ping,
    post,
    raw,
    rst_stream,
    settings,
    window_update,
)
from uvicorn.protocols.http2 import BODY, END, REQUEST, RESET, H2Core, H2Settings

# Section 3.4: the connection preface.


def test_the_server_preface_is_settings_then_the_connection_window() -> None:
    """3.4: the server's preface is a SETTINGS frame (here with the connection's receive window
    raised at once, section 6.9.2: SETTINGS cannot raise it)."""
    client = Client(handshake=False)
    assert client.server_preface == [
        ("SETTINGS", {3: 100, 6: 8190 + 100 * (8190 + 32), 2: 0}),
        ("WINDOW_UPDATE", 0, 100 * 65535 - 65535),  # every stream's window, capped at 16 MiB
    ]


def test_the_client_preface_may_come_a_byte_at_a_time() -> None:
    """3.4: the preface and the SETTINGS after it, split anywhere."""
    client = Client(handshake=False)
    for octet in PREFACE + settings():
        assert client.send(bytes([octet])) == []
    assert client.sent() == [("SETTINGS", "ACK")]
    client.still_serves(1)


def test_an_invalid_preface_is_a_protocol_error() -> None:
    """3.4: an invalid connection preface is a connection error of type PROTOCOL_ERROR."""
    client = Client(handshake=False)
    assert client.connection_error(b"GET / HTTP/1.1\r\n\r\n") == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("first", [ping(), raw(T.SETTINGS, 1, 0), b"\0" * 9])
def test_the_preface_must_be_followed_by_settings(first: bytes) -> None:
    """3.4: the preface MUST be followed by a SETTINGS frame (not an ACK); otherwise the
    preface is invalid: PROTOCOL_ERROR."""
    client = Client(handshake=False)
    assert client.connection_error(PREFACE + first) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_headers_before_the_preface_settings_is_a_protocol_error() -> None:
    """3.4: HEADERS in place of the preface's SETTINGS."""
    client = Client(handshake=False)
    block = client.block()
    assert client.connection_error(PREFACE, headers(1, block)) == ("GOAWAY", 0, PROTOCOL_ERROR)


# Section 4.1: frame format.


def test_a_frame_of_unknown_type_is_ignored() -> None:
    """4.1, 5.5: frames of unknown types are ignored and discarded."""
    client = Client()
    assert client.send(raw(0x20, 0xFF, 1, b"whatever"), raw(0xFF, 0, 0, b"")) == []
    assert client.sent() == []
    client.still_serves(1)


def test_undefined_flags_are_ignored() -> None:
    """4.1: flags with no meaning for the frame type are ignored."""
    client = Client()
    assert client.send(raw(T.PING, 0x16 | 0x80, 0, b"flagged!")) == []
    assert client.sent() == [("PING", "ACK", b"flagged!")]
    events = client.send(raw(T.HEADERS, 0x5 | 0x2 | 0x40, 1, client.block()))
    assert kinds(events) == [(REQUEST, 1)]


def test_the_reserved_bit_is_ignored() -> None:
    """4.1: the reserved bit of the stream identifier is ignored when received."""
    client = Client()
    assert client.send(raw(T.PING, 0, 0x80000000, b"reserved")) == []
    assert client.sent() == [("PING", "ACK", b"reserved")]
    events = client.send(raw(T.HEADERS, 0x5, 0x80000001, client.block()))
    assert kinds(events) == [(REQUEST, 1)]


def test_frames_split_anywhere_give_the_same_events() -> None:
    """4.1: frames are a byte stream; a request fed one byte at a time."""
    client = Client()
    wire = headers(1, client.block(post(5)), end_stream=False) + data(1, b"hello", True)
    events = []
    for octet in wire:
        events += client.send(bytes([octet]))
    assert kinds(events) == [(REQUEST, 1), (BODY, 1, 5), (END, 1)]


# Section 4.2: frame size.


def test_a_data_frame_of_the_default_maximum_size_is_accepted() -> None:
    """4.2: frames up to 2^14 octets must be received."""
    client = Client()
    client.request(1, post(16384), end_stream=False)
    assert kinds(client.send(data(1, b"x" * 16384, True))) == [(BODY, 1, 16384), (END, 1)]


@pytest.mark.parametrize("kind", [T.DATA, T.HEADERS, T.PING, T.SETTINGS, 0x20])
def test_a_frame_beyond_max_frame_size_is_a_frame_size_error(kind: int) -> None:
    """4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR, a connection error
    (for DATA a stream error would do; the connection is simpler). Refused on its header
    alone: the payload is never buffered."""
    client = Client()
    client.request(1, post(), end_stream=False)
    header = (16385).to_bytes(3, "big") + bytes((kind, 0)) + (1).to_bytes(4, "big")
    assert client.connection_error(header) == ("GOAWAY", 1, FRAME_SIZE_ERROR)


def test_max_frame_size_is_what_the_server_announced() -> None:
    """4.2, 6.5.2: frames up to our SETTINGS_MAX_FRAME_SIZE are accepted."""
    client = Client(H2Settings(max_frame_size=65536))
    assert client.server_preface[0][1][5] == 65536
    client.request(1, post(40000), end_stream=False)
    assert kinds(client.send(data(1, b"x" * 40000, True))) == [(BODY, 1, 40000), (END, 1)]


# Section 4.3: field blocks.


def test_an_invalid_field_block_is_a_compression_error() -> None:
    """4.3: a field block that cannot be decoded: COMPRESSION_ERROR (index 0 here)."""
    client = Client()
    client.request(1)
    wire = headers(3, b"\x80")
    assert client.connection_error(wire) == ("GOAWAY", 1, COMPRESSION_ERROR)


@pytest.mark.parametrize(
    "between",
    [
        raw(T.PRIORITY, 0, 1, b"\0\0\0\0\x10"),
        headers(3, b"\x82", end_stream=True),
        data(1, b"x"),
        ping(),
        raw(0x20, 0, 0, b"unknown"),  # 5.5: not even an unknown type
        raw(T.CONTINUATION, 4, 3, b""),  # another stream
        window_update(0, 1),
    ],
    ids=["PRIORITY", "HEADERS", "DATA", "PING", "unknown", "CONTINUATION 3", "WINDOW_UPDATE"],
)
def test_a_field_block_must_be_contiguous(between: bytes) -> None:
    """4.3, 6.2, 6.10: a field block is HEADERS then CONTINUATION frames of the same stream,
    with no other frame between: anything else is a PROTOCOL_ERROR."""
    client = Client()
    block = client.block()
    wire = headers(1, block[:3], end_headers=False) + between + continuation(1, block[3:])
    assert client.connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


# Section 6.1: DATA.


def test_data_on_stream_0_is_a_protocol_error() -> None:
    """6.1: DATA not associated with a stream."""
    assert Client().connection_error(raw(T.DATA, 0, 0, b"x")) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_data_with_a_pad_length_too_long_is_a_protocol_error() -> None:
    """6.1: padding as long as the payload or longer."""
    client = Client()
    client.request(1, post(), end_stream=False)
    wire = raw(T.DATA, 0x8, 1, b"\x05abcd")
    assert client.connection_error(wire) == ("GOAWAY", 1, PROTOCOL_ERROR)


def test_padded_data_is_delivered_without_its_padding() -> None:
    """6.1: the padding is not data; but it counts against the windows (6.9.1), and its window
    is given back at once, as nobody reads it."""
    client = Client()
    client.request(1, post(3), end_stream=False)
    events = client.send(data(1, b"abc", True, pad_length=200))
    assert [e[2] for e in events if e[0] == BODY] == [b"abc"] and kinds(events)[-1] == (END, 1)
    assert client.core.conn_recv == 100 * 65535 - 204


# Section 6.2: HEADERS.


@pytest.mark.parametrize("stream_id", [0, 2])
def test_headers_on_stream_0_or_an_even_stream_is_a_protocol_error(stream_id: int) -> None:
    """6.2, 5.1.1: HEADERS on stream 0; a client opens odd streams only."""
    client = Client()
    wire = raw(T.HEADERS, 0x5, stream_id, client.block())
    assert client.connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("flags", [0x8 | 0x5, 0x8 | 0x20 | 0x5], ids=["PADDED", "+PRIORITY"])
def test_headers_with_a_pad_length_too_long_is_a_protocol_error(flags: int) -> None:
    """6.2: padding as long as what follows the Pad Length field, or longer: PROTOCOL_ERROR
    (even when the PRIORITY fields would not fit either)."""
    client = Client()
    wire = raw(T.HEADERS, flags, 1, b"\x09" + b"\0" * 5 + b"\x82\x84")
    assert client.connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_headers_with_padding_and_priority_are_accepted() -> None:
    """6.2: PADDED and PRIORITY flags; the priority is ignored (5.3.2)."""
    client = Client()
    events = client.send(headers(1, client.block(), pad_length=10, depends_on=0))
    assert kinds(events) == [(REQUEST, 1)]
    events = client.send(headers(3, client.block(), depends_on=1, exclusive=True))
    assert kinds(events) == [(REQUEST, 3)]


def test_headers_too_short_for_their_priority_is_a_frame_size_error() -> None:
    """6.2, 4.2: too small to hold the mandatory fields."""
    client = Client()
    assert client.connection_error(raw(T.HEADERS, 0x25, 1, b"\0\0")) == (
        "GOAWAY", 0, FRAME_SIZE_ERROR
    )  # fmt: skip


def test_headers_depending_on_their_own_stream_is_a_stream_error() -> None:
    """5.3.1: a stream cannot depend on itself: a stream error of type PROTOCOL_ERROR. The
    field block is still decoded (4.3: the HPACK context is the connection's), and no request
    comes of it."""
    client = Client()
    block = client.block([*GET, ("x-indexed", "yes")])  # (adds to the dynamic table)
    assert client.send(headers(1, block, depends_on=1)) == []
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]
    events = client.request(3, [*GET, ("x-indexed", "yes")])  # refers to the table
    assert kinds(events) == [(REQUEST, 3)]
    assert (b"x-indexed", b"yes") in events[0][2].fields


# Section 6.3: PRIORITY.


def test_priority_on_stream_0_is_a_protocol_error() -> None:
    """6.3."""
    wire = raw(T.PRIORITY, 0, 0, b"\0\0\0\x01\x10")
    assert Client().connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


@pytest.mark.parametrize("size", [4, 6])
def test_priority_of_a_wrong_length_is_a_stream_error(size: int) -> None:
    """6.3: a length other than 5: a stream error of type FRAME_SIZE_ERROR."""
    client = Client()
    assert client.send(raw(T.PRIORITY, 0, 1, b"\0" * size)) == []
    assert client.sent() == [("RST_STREAM", 1, FRAME_SIZE_ERROR)]


def test_priority_depending_on_its_own_stream_is_a_stream_error() -> None:
    """5.3.1: a stream cannot depend on itself, PRIORITY frames included."""
    client = Client()
    client.request(1, post(), end_stream=False)
    events = client.send(raw(T.PRIORITY, 0, 1, b"\0\0\0\x01\x10"))
    assert kinds(events) == [(RESET, 1, PROTOCOL_ERROR)]
    assert client.sent() == [("RST_STREAM", 1, PROTOCOL_ERROR)]


def test_priority_on_an_idle_stream_then_a_lower_stream_is_served() -> None:
    """6.3, 5.1: PRIORITY may be sent in any state, idle included, and does not open it."""
    client = Client()
    assert client.send(raw(T.PRIORITY, 0, 9, b"\0\0\0\x01\x10")) == []
    assert client.sent() == []
    client.still_serves(3)


# Section 6.10: CONTINUATION.


def test_a_field_block_in_many_continuation_frames() -> None:
    """6.10: HEADERS then any number of CONTINUATION frames (within the limits), the last with
    END_HEADERS; END_STREAM is the HEADERS frame's."""
    client = Client()
    block = client.block([*GET, ("x-long", "v" * 100)], huffman=False)
    wire = headers(1, block[:1], end_stream=True, end_headers=False)
    for at in range(1, len(block) - 1, 7):
        wire += continuation(1, block[at : at + 7], end_headers=False)
    wire += continuation(1, b"", end_headers=True)
    events = client.send(wire)
    assert kinds(events) == [(REQUEST, 1)] and events[0][3] is True
    assert (b"x-long", b"v" * 100) in events[0][2].fields


@pytest.mark.parametrize(
    "before",
    ["nothing", "HEADERS with END_HEADERS", "CONTINUATION with END_HEADERS", "DATA"],
)
def test_continuation_not_after_an_unfinished_block_is_a_protocol_error(before: str) -> None:
    """6.10: CONTINUATION only follows HEADERS or CONTINUATION without END_HEADERS."""
    client = Client()
    block = client.block(post() if before == "DATA" else GET)
    wire = {
        "nothing": b"",
        "HEADERS with END_HEADERS": headers(1, block, end_stream=False),
        "CONTINUATION with END_HEADERS": headers(1, block[:2], False, False)
        + continuation(1, block[2:]),
        "DATA": headers(1, block, end_stream=False) + data(1, b"x"),
    }[before]
    assert client.connection_error(wire + continuation(1, b"\x82")) == (
        "GOAWAY", 0 if before == "nothing" else 1, PROTOCOL_ERROR
    )  # fmt: skip


def test_continuation_on_stream_0_is_a_protocol_error() -> None:
    """6.10."""
    client = Client()
    wire = headers(1, client.block()[:2], end_headers=False) + raw(T.CONTINUATION, 4, 0)
    assert client.connection_error(wire) == ("GOAWAY", 0, PROTOCOL_ERROR)


def test_the_server_splits_a_large_field_block_into_continuations() -> None:
    """6.10: a response field block larger than the client's SETTINGS_MAX_FRAME_SIZE."""
    core = H2Core()
    core.initiate()
    core.receive_data(PREFACE + settings() + headers(1, Client().block()))
    core.data_to_send()
    core.send_headers(1, b"\x88" * 40000, True)  # (any block: sent as it is)
    frames = [describe(f) for f in parse_frames(core.data_to_send())]
    assert frames == [("HEADERS", 1, True, False), ("CONTINUATION", 1, False, False),
                      ("CONTINUATION", 1, False, True)]  # fmt: skip
    assert not core.streams  # and the stream is done


def test_cancel_then_a_late_continuation_of_the_same_block_is_still_decoded() -> None:
    """4.3, 5.1: the client reset a stream whose block it was still sending: the block must
    still end (no frame may come between) and is decoded, as the HPACK context is shared."""
    client = Client()
    block = client.block([*GET, ("x-a", "1")])
    wire = headers(1, block[:4], end_headers=False) + continuation(1, block[4:])
    assert kinds(client.send(wire, rst_stream(1, CANCEL))) == [(REQUEST, 1), (RESET, 1, CANCEL)]
    client.still_serves(3)
