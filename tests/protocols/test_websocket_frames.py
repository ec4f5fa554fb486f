"""WebSocket data transfer and closing on ``WebSocketCore``: frames in, events and frames out
(RFC 6455 sections 5 to 8)."""

from __future__ import annotations

import pytest
from websockets.frames import Opcode

from tests.protocols.wsclient import Pair, close_payload, closed, frame, messages
from uvicorn.protocols.websocket import Closed, Message, Pong

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def test_text_and_binary_messages_from_a_real_client() -> None:
    pair = Pair()
    pair.client.send_text("héllo".encode())
    pair.client.send_binary(b"\x00\xff")
    events = pair.send(pair.client_out())
    assert messages(events) == ["héllo", b"\x00\xff"]
    text, data = events
    assert isinstance(text, Message) and text.data is None
    assert isinstance(data, Message) and data.text is None
    assert pair.server_out() == ([], False)


def test_empty_messages() -> None:
    pair = Pair()
    assert messages(pair.send(frame(TEXT), frame(BINARY))) == ["", b""]


def test_messages_split_anywhere_in_the_byte_stream() -> None:
    pair = Pair()
    data = frame(TEXT, b"a" * 200) + frame(BINARY, b"b" * 70000) + frame(TEXT, b"end")
    events = pair.send(*[data[i : i + 7] for i in range(0, len(data), 7)])
    assert messages(events) == ["a" * 200, b"b" * 70000, "end"]


def test_server_sends_text_and_binary() -> None:
    pair = Pair()
    pair.core.send_text("héllo")
    pair.core.send_bytes(b"\x01\x02")
    frames, eof = pair.server_out()
    assert not eof
    assert [(f.opcode, bytes(f.data)) for f in frames] == [
        (Opcode.TEXT, "héllo".encode()),
        (Opcode.BINARY, b"\x01\x02"),
    ]


def test_server_frames_are_not_masked() -> None:
    # RFC 6455 section 5.1: "A server MUST NOT mask any frames that it sends to the client."
    pair = Pair()
    pair.core.send_text("hi")
    data, _ = pair.core.data_to_send()
    assert data == b"\x81\x02hi"


# Fragmentation (section 5.4).


def test_fragmented_messages_are_reassembled() -> None:
    pair = Pair()
    events = pair.send(
        frame(TEXT, b"Hel", fin=False),
        frame(CONT, b"lo, ", fin=False),
        frame(CONT, b"world", fin=True),
        frame(BINARY, b"\x00", fin=False),
        frame(CONT, b"\x01", fin=True),
    )
    assert messages(events) == ["Hello, world", b"\x00\x01"]


def test_a_text_fragment_may_end_inside_a_utf8_character() -> None:
    encoded = "€uro ✓".encode()  # the euro sign is 3 bytes: split after its first one
    pair = Pair()
    events = pair.send(
        frame(TEXT, encoded[:1], fin=False),
        frame(CONT, encoded[1:2], fin=False),
        frame(CONT, encoded[2:], fin=True),
    )
    assert messages(events) == ["€uro ✓"]


def test_control_frames_in_the_middle_of_a_fragmented_message() -> None:
    # Section 5.4: "Control frames MAY be injected in the middle of a fragmented message."
    pair = Pair()
    events = pair.send(frame(TEXT, b"a", fin=False), frame(PING, b"p"), frame(CONT, b"b", fin=True))
    assert messages(events) == ["ab"]
    frames, _ = pair.server_out()
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.PONG, b"p")]


def test_fragmented_message_from_a_real_client() -> None:
    pair = Pair()
    pair.client.send_text(b"one ", fin=False)
    pair.client.send_continuation(b"two ", fin=False)
    pair.client.send_continuation(b"three", fin=True)
    assert messages(pair.send(pair.client_out())) == ["one two three"]


# Control frames.


def test_ping_is_answered_with_a_pong_with_the_same_data() -> None:
    # Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
    # response", with "identical Application data".
    pair = Pair()
    assert pair.send(frame(PING, b"are you there")) == []
    frames, eof = pair.server_out()
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.PONG, b"are you there")]
    assert not eof


def test_pong_is_reported_for_keep_alive() -> None:
    pair = Pair()
    pair.core.send_ping(b"1")
    frames, _ = pair.server_out()
    assert frames[0].opcode is Opcode.PING
    (event,) = pair.send(pair.client_out())  # the client answered automatically
    assert isinstance(event, Pong)
    assert [type(e) for e in pair.send(frame(PONG, b"unsolicited"))] == [Pong]


# The closing handshake (section 7).


def test_client_close_is_echoed_and_reported() -> None:
    pair = Pair()
    pair.client.send_close(1000, "bye")
    events = pair.send(pair.client_out())
    assert closed(events) == [(1000, "bye")]
    assert pair.core.closed and not pair.core.is_open
    # Section 5.5.1: the endpoint "MUST send a Close frame in response" and "typically echos
    # the status code it received"; section 7.1.1: the server closes the TCP connection first.
    assert pair.close_frame() == (1000, "bye")


@pytest.mark.parametrize("code", [1001, 1008, 3000, 4999])
def test_any_valid_close_code_reaches_the_app(code: int) -> None:
    pair = Pair()
    assert closed(pair.send(frame(CLOSE, close_payload(code, b"r")))) == [(code, "r")]
    assert pair.close_frame() == (code, "r")


def test_empty_close_frame_is_1005_for_the_app() -> None:
    # Section 7.1.5: "If this Close control frame contains no status code, _The WebSocket
    # Connection Close Code_ is considered to be 1005."
    pair = Pair()
    assert closed(pair.send(frame(CLOSE))) == [(1005, "")]
    frames, eof = pair.server_out()
    assert [(f.opcode, bytes(f.data)) for f in frames] == [(Opcode.CLOSE, b"")]
    assert eof


def test_data_after_a_close_frame_is_ignored() -> None:
    pair = Pair()
    events = pair.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"late"))
    assert messages(events) == [] and closed(events) == [(1000, "")]
    assert pair.send(frame(TEXT, b"later")) == []


def test_server_initiated_close() -> None:
    pair = Pair()
    pair.core.close(1001, "going away")
    assert not pair.core.is_open and pair.core.close_expected
    frames, eof = pair.server_out()
    assert [f.opcode for f in frames] == [Opcode.CLOSE] and not eof  # waits for the answer
    assert pair.client.close_rcvd is not None and pair.client.close_rcvd.code == 1001
    pair.core.close(1000)  # already closing: nothing more is sent
    assert pair.server_out() == ([], False)
    events = pair.send(pair.client_out())  # the client echoed 1001
    assert closed(events) == [(1001, "going away")]
    assert pair.server_out()[1], "the server closes TCP once the handshake is complete"


def test_lost_connection_is_1006() -> None:
    # Section 7.1.5: "If _The WebSocket Connection is Closed_ and no Close control frame was
    # received by the endpoint ..., _The WebSocket Connection Close Code_ is considered to be
    # 1006."
    pair = Pair()
    assert closed(pair.core.connection_lost()) == [(1006, "")]
    assert pair.core.closed
    assert pair.core.connection_lost() == []  # reported once


def test_eof_without_close_frame_is_1006() -> None:
    pair = Pair()
    events = pair.send(frame(TEXT, b"last"))
    events += pair.core.receive_eof()
    assert messages(events) == ["last"]
    assert closed(events) == [(1006, "")]
    frames, eof = pair.server_out()
    assert frames == [] and eof  # no close frame: the peer is already gone


def test_eof_after_our_close_frame_is_1006_too() -> None:
    pair = Pair()
    pair.core.close(1001)
    pair.server_out()
    assert closed(pair.core.receive_eof()) == [(1006, "")]


def test_lost_connection_after_the_close_handshake_keeps_its_code() -> None:
    pair = Pair()
    assert closed(pair.send(frame(CLOSE, close_payload(4000)))) == [(4000, "")]
    assert pair.core.connection_lost() == []


# Failing the connection (section 7.1.7).


def failed(pair: Pair, events: list[object], code: int) -> None:
    assert [e.code for e in events if isinstance(e, Closed)] == [code]
    assert pair.close_frame()[0] == code
    assert not pair.core.is_open and pair.core.closed


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"\xc3\x28", b"abc\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"],
    ids=["ff", "bad-continuation", "surrogate", "above-max", "truncated"],
)
def test_invalid_utf8_text_is_1007(payload: bytes) -> None:
    # Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
    # byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
    # Connection_"; section 7.4.1: 1007 for "data within a message that was not consistent with
    # the type of the message".
    pair = Pair()
    failed(pair, pair.send(frame(TEXT, payload)), 1007)


def test_invalid_utf8_across_fragments_is_1007() -> None:
    pair = Pair()
    events = pair.send(frame(TEXT, b"ok\xe2", fin=False), frame(CONT, b"\x28\xa1", fin=True))
    failed(pair, events, 1007)


def test_nothing_is_delivered_after_a_failure() -> None:
    pair = Pair()
    events = pair.send(frame(TEXT, b"\xff") + frame(TEXT, b"after"))
    assert messages(events) == []
    failed(pair, events, 1007)


def test_invalid_utf8_in_binary_is_fine() -> None:
    pair = Pair()
    assert messages(pair.send(frame(BINARY, b"\xff"))) == [b"\xff"]


@pytest.mark.parametrize(
    "data",
    [
        frame(TEXT, b"hi", masked=False),  # section 5.1: a server MUST close on unmasked frames
        frame(0x3, b"x"),  # reserved non-control opcode
        frame(0xB, b"x"),  # reserved control opcode
        frame(TEXT, b"x", rsv=0b100),  # RSV1 without a negotiated extension (section 5.2)
        frame(TEXT, b"x", rsv=0b010),
        frame(TEXT, b"x", rsv=0b001),
        frame(PING, b"x" * 126),  # section 5.5: control frames have payloads <= 125 bytes
        frame(PING, b"x", fin=False),  # ... "and MUST NOT be fragmented"
        frame(CLOSE, b"\x03"),  # a 1-byte close payload
        frame(CLOSE, close_payload(1005)),  # a code no endpoint may send (section 7.4.1)
        frame(CLOSE, close_payload(999)),
        frame(CONT, b"x"),  # a continuation with nothing to continue
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),  # a new message inside a fragmented one
    ],
    ids=[
        "unmasked",
        "opcode-3",
        "opcode-11",
        "rsv1",
        "rsv2",
        "rsv3",
        "long-ping",
        "fragmented-ping",
        "short-close",
        "close-1005",
        "close-999",
        "stray-continuation",
        "interleaved",
    ],
)
def test_protocol_violations_are_1002(data: bytes) -> None:
    pair = Pair()
    events = pair.send(data)
    assert messages(events) == []
    failed(pair, events, 1002)


def test_message_over_max_size_is_1009() -> None:
    pair = Pair(max_size=1000)
    assert messages(pair.send(frame(BINARY, b"x" * 1000))) == [b"x" * 1000]
    failed(pair, pair.send(frame(TEXT, b"x" * 1001)), 1009)


def test_fragmented_message_over_max_size_is_1009() -> None:
    pair = Pair(max_size=1000)
    events = pair.send(*[frame(TEXT if i == 0 else CONT, b"x" * 300, fin=False) for i in range(3)])
    assert events == []
    failed(pair, pair.send(frame(CONT, b"x" * 101, fin=True)), 1009)


def test_max_size_is_checked_from_the_frame_header() -> None:
    # A declared length over the limit fails the connection before the payload arrives.
    pair = Pair(max_size=1000)
    failed(pair, pair.send(frame(BINARY, b"x" * 70000)[:14]), 1009)


def test_close_with_an_internal_error_code() -> None:
    pair = Pair()
    pair.core.close(1011)
    assert pair.server_out()[0][0].opcode is Opcode.CLOSE
    assert pair.client.close_rcvd is not None and pair.client.close_rcvd.code == 1011


# permessage-deflate (RFC 7692).


def test_permessage_deflate_is_negotiated_when_offered() -> None:
    pair = Pair(client_deflate=True, accept=False)
    response = pair.accept()
    assert "permessage-deflate" in response.headers["Sec-WebSocket-Extensions"]
    assert [e.name for e in pair.client.extensions] == ["permessage-deflate"]


def test_permessage_deflate_is_not_negotiated_when_off() -> None:
    pair = Pair(client_deflate=True, deflate=False, accept=False)
    response = pair.accept()
    assert "Sec-WebSocket-Extensions" not in response.headers
    assert pair.client.extensions == []


def test_compressed_frames_are_decoded_and_encoded() -> None:
    pair = Pair(client_deflate=True)
    text = "compress me " * 100
    pair.client.send_text(text.encode())
    pair.client.send_binary(b"\x00" * 5000)
    wire = pair.client_out()
    assert wire[0] & 0x40, "RSV1: the client compressed the message"
    assert len(wire) < 500
    assert messages(pair.send(wire)) == [text, b"\x00" * 5000]
    pair.core.send_text(text)
    data, _ = pair.core.data_to_send()
    assert data[0] & 0x40 and len(data) < 200  # the server compresses too
    pair.client.receive_data(data)
    (received,) = pair.client.events_received()
    assert bytes(received.data) == text.encode()  # type: ignore[union-attr]


def test_compressed_fragmented_message() -> None:
    pair = Pair(client_deflate=True)
    pair.client.send_text(b"first part, ", fin=False)
    pair.client.send_continuation(b"second part", fin=True)
    assert messages(pair.send(pair.client_out())) == ["first part, second part"]


def test_max_size_applies_to_the_decompressed_message() -> None:
    pair = Pair(client_deflate=True, max_size=10_000)
    pair.client.send_binary(b"\x00" * 10_001)  # a few bytes on the wire
    wire = pair.client_out()
    assert len(wire) < 200
    failed(pair, pair.send(wire), 1009)


def test_compressed_invalid_utf8_is_1007() -> None:
    pair = Pair(client_deflate=True)
    pair.client.send_text(b"\xff\xfe" * 50)
    failed(pair, pair.send(pair.client_out()), 1007)


def test_rsv1_on_a_control_frame_with_deflate_is_1002() -> None:
    pair = Pair(client_deflate=True)
    failed(pair, pair.send(frame(PING, b"", rsv=0b100)), 1002)
