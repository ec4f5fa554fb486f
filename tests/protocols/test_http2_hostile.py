"""Hostile peers against ``H2Core``: floods of frames of no use (CVE-2023-44487 rapid reset,
CVE-2019-9512 ping, 9515 settings, 9518 empty frames), CVE-2024-27316 CONTINUATION floods,
HPACK bombs, and what a connection may hold. Each costs the connection a bounded amount of
work and memory, then ENHANCE_YOUR_CALM (or the error its frames are); an ordinary client never
runs out of budget. The same peers against a worker: tests/worker/test_http2_hostile.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import hpack
import pytest

from tests.helpers import UNIT
from tests.protocols.h2frames import (
    CANCEL,
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    GET,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Client,
    T,
    continuation,
    data,
    headers,
    kinds,
    ping,
    post,
    raw,
    rst_stream,
    settings,
    settings_ack,
    window_update,
)
from uvicorn.protocols.http2 import BODY, MALFORMED, REQUEST, H2Settings
from uvicorn.protocols.http2_control import CALM_BUDGET
from uvicorn.protocols.http2_frames import H2ConnectionError

LIST_SIZE = H2Settings().max_header_list_size


def flooded(client: Client, frame: Callable[[int], bytes], most: int = CALM_BUDGET + 10) -> int:
    """Send ``frame(n)`` until the connection is closed: how many went; the GOAWAY is
    ENHANCE_YOUR_CALM and what was queued before it is bounded by the budget."""
    client.sent()
    for n in range(most):
        try:
            client.send(frame(n))
        except H2ConnectionError:
            break
        assert len(client.core.out) <= n + 1  # (at most an answer a frame)
    else:
        raise AssertionError(f"{most} frames and not calmed")
    frames = client.sent()
    assert frames[-1] == ("GOAWAY", client.core.last_stream, ENHANCE_YOUR_CALM), frames[-1]
    assert client.core.closed
    return n


def test_rapid_reset_is_calmed() -> None:
    """CVE-2023-44487: streams opened and reset before any answer."""
    client = Client()
    n = flooded(client, lambda n: headers(2 * n + 1, client.block()) + rst_stream(2 * n + 1))
    assert n == CALM_BUDGET


def test_answered_requests_refill_the_budget() -> None:
    """An ordinary client: PINGs, SETTINGS, resets after answers, never calmed. Each answered
    request gives back some budget (8 frames)."""
    client = Client()
    for n in range(3 * CALM_BUDGET):
        stream_id = 2 * n + 1
        client.request(stream_id)
        client.respond(stream_id)
        client.send(ping(), settings(), rst_stream(stream_id, CANCEL))  # (late: junk)
        client.send(raw(T.PRIORITY, 0, stream_id, b"\0\0\0\0\x10"))
        client.sent()
    client.still_serves(6 * CALM_BUDGET + 1)


FLOODS = [
    "PING", "SETTINGS", "SETTINGS ACK", "empty DATA", "PRIORITY", "unknown", "PING ACK",
    "RST_STREAM on a closed stream", "WINDOW_UPDATE on a closed stream",
]  # fmt: skip


@pytest.mark.parametrize("flood", FLOODS)
def test_floods_of_frames_of_no_use_are_calmed(flood: str) -> None:
    """CVE-2019-9512 (ping), 9515 (settings), 9518 (empty frames), and their kin."""
    client = Client()
    client.request(1, post(), end_stream=False)
    client.request(3)
    client.respond(3)
    frame = {
        "PING": ping(),
        "SETTINGS": settings({4: 65535}),
        "SETTINGS ACK": settings_ack(),
        "empty DATA": data(1, b""),
        "PRIORITY": raw(T.PRIORITY, 0, 1, b"\0\0\0\0\x10"),
        "unknown": raw(0x42, 0, 0, b""),
        "PING ACK": ping(ack=True),
        "RST_STREAM on a closed stream": rst_stream(3, CANCEL),
        "WINDOW_UPDATE on a closed stream": window_update(3, 1),
    }[flood]
    n = flooded(client, lambda n: frame)
    assert CALM_BUDGET - 10 <= n <= CALM_BUDGET + 1


def test_empty_headers_on_new_streams_are_calmed() -> None:
    """CVE-2019-9518: empty HEADERS, each a malformed request reset."""
    client = Client()
    flooded(client, lambda n: headers(2 * n + 1, b"", end_stream=False))


def test_streams_beyond_the_limit_are_refused_then_calmed() -> None:
    """5.1.2: REFUSED_STREAM for each, and a client that keeps on is calmed."""
    client = Client(H2Settings(max_concurrent_streams=1))
    client.request(1, end_stream=False)
    client.request(3)
    assert client.sent() == [("RST_STREAM", 3, REFUSED_STREAM)]
    flooded(client, lambda n: headers(2 * n + 5, client.block()))


# CVE-2024-27316: CONTINUATION floods.


def test_endless_continuation_is_bounded_by_the_header_list_limit() -> None:
    """A field block that never ends: ended once larger than any header list we take, and
    the connection with it (nothing of it was held beyond that)."""
    client = Client()
    client.request(1)
    sent = 0
    wire = headers(3, client.block()[:2], end_headers=False)
    with pytest.raises(H2ConnectionError):
        while sent < 2 * LIST_SIZE:
            client.core.receive_data(wire)
            assert len(client.core._block) <= LIST_SIZE
            sent += len(wire)
            wire = continuation(3, b"\0" * 16384, end_headers=False)
    assert LIST_SIZE < sent + len(wire) <= LIST_SIZE + 16384 + 9
    assert client.sent()[-1] == ("GOAWAY", 1, ENHANCE_YOUR_CALM)


@pytest.mark.parametrize("size", [0, 1])
def test_many_tiny_continuations_are_calmed(size: int) -> None:
    """Tiny (or empty) CONTINUATION frames: a block in more than 64 frames is a flood."""
    client = Client()
    client.send(headers(1, client.block()[:1], end_headers=False))
    for n in range(65):
        if n == 64:
            assert client.connection_error(continuation(1, b"\0" * size, False)) == (
                "GOAWAY", 0, ENHANCE_YOUR_CALM
            )  # fmt: skip
            break
        client.send(continuation(1, b"\0" * size, False))


def test_a_block_in_64_continuations_is_still_served() -> None:
    client = Client()
    block = client.block([*GET, ("x-pad", "p" * 200)], huffman=False)
    wire = headers(1, block[:1], end_headers=False)
    for at in range(1, 64):
        wire += continuation(1, block[at : at + 1] if at < 63 else block[at:], at == 63)
    assert kinds(client.send(wire)) == [(REQUEST, 1)]


# HPACK bombs.


def test_an_hpack_bomb_is_431_and_holds_no_memory() -> None:
    """A 4 KB field in the dynamic table, then a block of one-octet references to it: 4 KB of
    block, megabytes of header list. Answered 431 (10.5.1), nothing kept, the table in step."""
    client = Client()
    length = bytes(hpack.hpack.encode_integer(4000, 7))
    big = b"\x40\x05x-big" + length + b"b" * 4000  # a literal, with incremental indexing
    assert client.core.decoder.decode(big)[1] is False  # (not ours: the core's next block)
    client = Client()
    bomb = bytes(client.block(GET, huffman=False)) + big + b"\xbe" * 4000
    events = client.send(headers(1, bomb))
    assert [e[:3] for e in events] == [(MALFORMED, 1, 431)]
    assert client.core.decoder.decode(b"\xbe") == ([(b"x-big", b"b" * 4000)], False)


def test_a_table_size_update_above_our_limit_is_a_compression_error() -> None:
    """RFC 7541 4.2, 6.3: beyond SETTINGS_HEADER_TABLE_SIZE (4096, the default)."""
    client = Client()
    wire = headers(1, b"\x3f\xe2\x1f" + client.block())  # an update to 4097
    assert client.connection_error(wire) == ("GOAWAY", 0, COMPRESSION_ERROR)


def test_validated_requests_kept_for_reuse_are_bounded_in_memory() -> None:
    """The core keeps validated requests by header block (a repeated block is not decoded
    again). A client sending large blocks once each must not make it keep them: only small
    ones are, and few."""
    client = Client()
    for n in range(31):
        # (never indexed: the dynamic table unchanged, so that the block could be kept)
        large = [hpack.NeverIndexedHeaderTuple(f"x-{n}-{i}", "v" * 8000) for i in range(8)]
        fields = [*GET, *large]
        block = client.block(fields, huffman=False)
        assert len(block) > 64000
        wire = headers(2 * n + 1, block[:16384], end_headers=False)
        for at in range(16384, len(block), 16384):
            wire += continuation(2 * n + 1, block[at : at + 16384], at + 16384 >= len(block))
        assert kinds(client.send(wire)) == [(REQUEST, 2 * n + 1)]
        client.respond(2 * n + 1)
    held = sum(len(block) for block in client.core._requests)
    assert held <= 32 * 8192, held


def test_a_large_list_from_a_small_block_is_not_kept_either() -> None:
    """A cookie field joined (8.2.3) from 99 one-octet references to a 4 KB entry of the
    dynamic table: 400 KB from 200 octets of block, not kept."""
    client = Client()
    cookie = ("cookie", "c" * 4000)
    authority = hpack.NeverIndexedHeaderTuple(":authority", "example.com")
    client.request(1, [*GET[:3], authority, cookie])  # (the entry)
    for n in range(1, 32):
        name = hpack.NeverIndexedHeaderTuple(f"x-{n}", "v")
        block = client.block([*GET[:3], authority, name, *[cookie] * 99])
        assert len(block) < 200
        assert kinds(client.send(headers(2 * n + 1, block))) == [(REQUEST, 2 * n + 1)]
    held = sum(len(found[1].fields[-1][1]) for found in client.core._requests.values())
    assert held <= 32 * 8192, held


def test_invalid_pseudo_headers_are_a_stream_error_each() -> None:
    """8.1.1: each is its stream's loss; the connection goes on (and a flood of them is
    calmed like any other frame of no use)."""
    client = Client()
    for n in range(20):
        assert client.request(2 * n + 1, [*GET, (":bogus", "x")]) == []
        assert client.sent() == [("RST_STREAM", 2 * n + 1, PROTOCOL_ERROR)]
    client.still_serves(41)


def test_a_large_frame_in_many_small_reads_costs_linear_time() -> None:
    """A frame of 16 MB (our --h2-max-frame-size at its largest) dribbled 8 KB at a time:
    held until whole, not joined again at each read (16 GB of copies: seconds)."""
    config = H2Settings(max_frame_size=2**24 - 1, initial_window_size=2**24)
    client = Client(config)
    client.send(settings_ack())
    client.request(1, post(), end_stream=False)
    wire = raw(T.DATA, 0, 1, b"x" * (2**24 - 1))
    started = time.perf_counter()
    events = []
    for at in range(0, len(wire), 8192):
        events += client.send(wire[at : at + 8192])
    assert time.perf_counter() - started < 1.0 * UNIT
    assert kinds(events) == [(BODY, 1, 2**24 - 1)]


def test_streams_the_caller_refuses_are_calmed() -> None:
    """Streams reset by the caller before their answer (the worker refuses them while the
    apps of earlier, reset, streams still run): a client that keeps opening them is calmed at
    its next read, as a rapid reset is."""
    client = Client()
    for n in range(CALM_BUDGET + 1):
        assert kinds(client.request(2 * n + 1)) == [(REQUEST, 2 * n + 1)]
        client.core.reset(2 * n + 1, REFUSED_STREAM)
    assert client.connection_error(ping()) == (
        "GOAWAY", 2 * CALM_BUDGET + 1, ENHANCE_YOUR_CALM
    )  # fmt: skip
