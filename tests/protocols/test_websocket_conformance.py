"""What the Autobahn|Testsuite checks beyond a plain reading of RFC 6455, on ``WebSocketCore``:
bytes in, events and bytes out (conformance/autobahn.py runs the suite itself)."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.protocols.wsclient import Pair, close_payload, closed, core_for, frame, messages
from uvicorn.protocols.websocket import Closed, Event, Failing, Message

TEXT, BINARY, CONT, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9
KOSME = "κόσμε".encode()  # Autobahn's 6.4.x prefix
TOO_BIG = b"\xf4\x90\x80\x80"  # U+110000 as UTF-8 would write it: beyond Unicode


def fed(pair: Pair, data: bytes, step: int) -> list[Event]:
    return pair.send(*[data[i : i + step] for i in range(0, len(data), step)])


def failed_with(pair: Pair, events: list[Event], code: int) -> None:
    assert [e.code for e in events if isinstance(e, Closed)] == [code]
    assert pair.close_frame()[0] == code


# UTF-8 fails fast (RFC 6455 section 8.1; Autobahn 6.4.1 to 6.4.4).


def test_invalid_utf8_in_a_fragment_fails_before_the_message_ends() -> None:
    # 6.4.1: the second fragment is invalid; the third never needs to come.
    pair = Pair()
    assert pair.send(frame(TEXT, KOSME, fin=False)) == []
    failed_with(pair, pair.send(frame(CONT, TOO_BIG, fin=False)), 1007)
    assert pair.client.close_rcvd is not None
    assert pair.client.close_rcvd.reason == "invalid UTF-8"


def test_invalid_utf8_across_a_fragment_boundary_fails_fast() -> None:
    # 6.4.2: the first fragment ends with a lead byte that the next one cannot continue.
    pair = Pair()
    assert pair.send(frame(TEXT, KOSME + TOO_BIG[:1], fin=False)) == []
    failed_with(pair, pair.send(frame(CONT, TOO_BIG[1:2], fin=False)), 1007)


@pytest.mark.parametrize("cut", [0, 1], ids=["whole-sequence", "split-sequence"])
def test_invalid_utf8_in_a_frame_still_arriving_fails_fast(cut: int) -> None:
    # 6.4.3 and 6.4.4: one frame, its payload in chops; the bad bytes fail it before the rest.
    payload = KOSME + TOO_BIG + b"edited"
    data = frame(TEXT, payload)
    head = len(data) - len(payload)
    pair = Pair()
    assert pair.send(data[: head + len(KOSME) + cut]) == []
    assert pair.server_out() == ([], False)
    events = pair.send(data[head + len(KOSME) + cut : head + len(KOSME) + len(TOO_BIG)])
    failed_with(pair, events, 1007)


def test_invalid_utf8_in_a_continuation_still_arriving_fails_fast() -> None:
    pair = Pair()
    data = frame(CONT, b"ok" + TOO_BIG + b"x" * 200)  # an 8-byte header (16-bit length)
    assert pair.send(frame(TEXT, KOSME, fin=False), data[:8]) == []
    assert pair.send(data[8:10]) == []
    failed_with(pair, pair.send(data[10:12]), 1007)


def test_valid_text_fed_byte_by_byte_is_never_failed() -> None:
    # The payload still arriving is unmasked from the right mask byte whatever the cut, and a
    # character may be cut anywhere, across frames as across reads.
    text = "a€𝄞ö" * 40
    encoded = text.encode()
    data = (
        frame(TEXT, encoded)
        + frame(TEXT, encoded[:5], fin=False)
        + frame(CONT, encoded[5:200], fin=False)
        + frame(PING, b"p")
        + frame(CONT, encoded[200:], fin=True)
        + frame(TEXT, encoded * 300)  # a 16-bit length
    )
    for step in (1, 3, 7, 1000):
        pair = Pair()
        assert messages(fed(pair, data, step)) == [text, text, text * 300]


def test_a_header_that_arrives_alone_then_its_payload_in_pieces() -> None:
    pair = Pair()
    data = frame(TEXT, KOSME * 20)
    head = len(data) - len(KOSME) * 20
    assert pair.send(data[:head]) == []
    assert messages(fed(pair, data[head:], 5)) == ["κόσμε" * 20]
    pair = Pair()
    bad = frame(TEXT, KOSME + TOO_BIG + KOSME * 20)
    assert pair.send(bad[:head], bad[head : head + 3]) == []
    failed_with(pair, pair.send(bad[head + 3 : head + 20]), 1007)


def test_binary_still_arriving_is_not_checked() -> None:
    pair = Pair()
    assert messages(fed(pair, frame(BINARY, TOO_BIG * 10), 3)) == [TOO_BIG * 10]


def test_compressed_text_in_pieces() -> None:
    pair = Pair(client_deflate=True)
    pair.client.send_text(("chunk of text " * 500).encode(), fin=False)
    pair.client.send_continuation(b"end", fin=True)
    assert messages(fed(pair, pair.client_out(), 5)) == ["chunk of text " * 500 + "end"]


def test_frames_after_invalid_utf8_are_not_processed() -> None:
    # The check is made as websockets parses, so a ping after the bad frame in the same read is
    # not answered, exactly as when it comes in a later read.
    pair = Pair()
    events = pair.send(frame(TEXT, b"before") + frame(TEXT, b"\xff") + frame(PING, b"p"))
    assert messages(events) == ["before"]
    frames, eof = pair.server_out()
    assert [f.opcode for f in frames] == [Opcode.CLOSE] and eof


def test_a_failure_does_not_depend_on_how_the_bytes_were_cut() -> None:
    bad = frame(CONT, b"c\xe2\x28x" * 9)
    data = frame(TEXT, b"one") + frame(TEXT, b"ab", fin=False) + bad + frame(PING, b"p")
    outcomes = set()
    for step in (1, 2, 5, len(data)):
        pair = Pair()
        events = fed(pair, data, step)
        frames, eof = pair.server_out()
        outcomes.add((repr(messages(events)), repr(closed(events)), repr(frames), eof))
    assert len(outcomes) == 1, outcomes


# A close frame in the middle of a fragmented message (section 5.4; Autobahn 7.1.5).


def test_close_inside_a_fragmented_message_is_a_normal_close() -> None:
    pair = Pair()
    events = pair.send(
        frame(TEXT, b"frag", fin=False), frame(CLOSE, close_payload(1000)), frame(CONT, b"ment")
    )
    assert messages(events) == [] and closed(events) == [(1000, "")]
    assert pair.close_frame() == (1000, "")


# Failing the connection after the app answered what came before (section 7.1.7; Autobahn
# 3.2, 3.3, 4.1.3, 4.1.4, 4.2.3, 4.2.4, 5.15).


def deferring() -> Pair:
    pair = Pair()
    pair.core.protocol.defer_failures = True  # as WebSocketSession has it
    return pair


def test_messages_before_a_protocol_error_can_be_answered() -> None:
    pair = deferring()
    events = pair.send(frame(TEXT, b"Hello") + frame(TEXT, b"x", rsv=0b010) + frame(PING))
    assert [type(e) for e in events] == [Message, Failing]
    failing = events[1]
    assert isinstance(failing, Failing) and failing.code == 1002
    assert pair.core.is_open and pair.server_out() == ([], False)  # the ping was not read
    pair.core.send_text("Hello")  # the app answers
    assert closed(pair.core.fail_now()) == [(1002, "reserved bits must be 0")]
    frames, eof = pair.server_out()
    assert [(f.opcode, bytes(f.data)) for f in frames] == [
        (Opcode.TEXT, b"Hello"),
        (Opcode.CLOSE, close_payload(1002, b"reserved bits must be 0")),
    ]
    assert eof and not pair.core.is_open and pair.core.closed
    assert pair.core.fail_now() == []


@pytest.mark.parametrize(
    "bad",
    [frame(0x5, b"x"), frame(CONT, b"x", fin=False), frame(TEXT, b"\xff")],
    ids=["reserved-opcode", "nothing-to-continue", "invalid-utf8"],
)
def test_any_failure_can_wait(bad: bytes) -> None:
    pair = deferring()
    events = pair.send(frame(TEXT, b"first", fin=False) + frame(CONT, b" message") + bad)
    assert messages(events) == ["first message"]
    (failing,) = [e for e in events if isinstance(e, Failing)]
    assert pair.send(frame(TEXT, b"ignored")) == []  # nothing more is read
    assert closed(pair.core.fail_now()) == [(failing.code, failing.reason)]
    assert pair.close_frame()[0] == failing.code


def test_the_peer_ending_the_stream_fails_it_at_once() -> None:
    pair = deferring()
    (failing,) = pair.send(frame(0xB))
    assert isinstance(failing, Failing)
    assert closed(pair.core.receive_eof()) == [(1002, failing.reason)]
    assert pair.close_frame()[0] == 1002
    assert pair.core.fail_now() == []


def test_closing_while_a_failure_waits_sends_the_failure() -> None:
    pair = deferring()
    pair.send(frame(0xB))
    pair.core.close(1000)
    assert pair.close_frame()[0] == 1002
    assert closed(pair.core.fail_now()) == [(1002, "invalid opcode")]


def test_a_connection_lost_while_a_failure_waits_is_1006() -> None:
    pair = deferring()
    pair.send(frame(0xB))
    assert closed(pair.core.connection_lost()) == [(1006, "")]
    assert pair.core.fail_now() == []


def test_without_deferral_the_failure_is_immediate() -> None:
    pair = Pair()
    events = pair.send(frame(TEXT, b"Hello") + frame(TEXT, b"x", rsv=0b010))
    assert messages(events) == ["Hello"] and closed(events) == [(1002, "reserved bits must be 0")]
    assert pair.close_frame()[0] == 1002


# permessage-deflate's settings (RFC 7692 section 7.1.2; measurements: conformance/README.md).


def test_deflate_windows_are_4_kib_both_ways() -> None:
    pair = Pair(client_deflate=True, accept=False)  # websockets' client offers
    response = pair.accept()  # client_max_window_bits
    offer = response.headers["Sec-WebSocket-Extensions"]
    assert "server_max_window_bits=12" in offer and "client_max_window_bits=12" in offer
    (server,) = pair.core.protocol.extensions
    assert (server.local_max_window_bits, server.remote_max_window_bits) == (12, 12)  # type: ignore[attr-defined]
    assert server.compress_settings == {"memLevel": 5}  # type: ignore[attr-defined]
    text = "".join(f"{i:06d} some text to compress " for i in range(2000))  # 60 KB
    pair.client.send_text(text.encode())
    assert messages(pair.send(pair.client_out())) == [text]
    pair.core.send_text(text)
    pair.client.receive_data(pair.core.data_to_send()[0])
    (echo,) = pair.client.events_received()
    assert bytes(echo.data) == text.encode()  # type: ignore[union-attr]


def test_a_client_that_cannot_shrink_its_window_keeps_15_bits() -> None:
    # Section 7.1.2.2: client_max_window_bits only in answer to a client that offered it.
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    client = ClientProtocol(parse_uri("ws://example.com/"), extensions=[factory], max_size=None)
    client.send_request(client.connect())
    core = core_for(b"".join(client.data_to_send()))
    core.accept()
    client.receive_data(core.data_to_send()[0])
    (response,) = client.events_received()
    assert isinstance(response, Response)
    offer = response.headers["Sec-WebSocket-Extensions"]
    assert "server_max_window_bits=12" in offer and "client_max_window_bits" not in offer
    (server,) = core.protocol.extensions
    assert server.remote_max_window_bits == 15  # type: ignore[attr-defined]
    text = "".join(f"{i:06d} far apart {i % 7} " for i in range(3000))  # 60 KB
    client.send_text(text.encode())
    (message,) = core.receive_data(b"".join(client.data_to_send()))
    assert isinstance(message, Message) and message.text == text
