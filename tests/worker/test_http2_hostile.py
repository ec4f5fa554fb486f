"""Hostile HTTP/2 peers against a worker: each costs only its own connection (the GOAWAY code
its frames call for) or its own stream, and a well-behaved client on the same server is served
meanwhile and after. Rapid reset and the ping flood: test_http2_lifecycle.py; the same peers
against the core alone: tests/protocols/test_http2_hostile.py."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import hpack
from hyperframe.frame import Frame

from tests.helpers import UNIT, running_server
from tests.protocols.h2frames import (
    PREFACE,
    continuation,
    data,
    describe,
    headers,
    ping,
    raw,
    settings,
)
from tests.worker.h2client import H2Client, settings_header
from uvicorn import ClientDisconnected
from uvicorn.worker.http2 import H2Connection

PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 0x1, 0x7, 0x8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x9, 0xB
GET = [(":method", "GET"), (":scheme", "http"), (":path", "/hostile"), (":authority", "test")]


class RawPeer:
    """A client that writes frames as given and reads what comes back, frame by frame (no h2
    state machine to refuse what a hostile client provokes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.frames: list[tuple[Any, ...]] = []
        self._buffer = b""

    @classmethod
    async def open(cls, port: int, client_settings: dict[int, int] | None = None,
                   rcvbuf: int = 0) -> RawPeer:  # fmt: skip
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        peer = cls(*await asyncio.open_connection(sock=sock))
        peer.writer.write(PREFACE + settings(client_settings))
        return peer

    def block(self, fields: Any = GET) -> bytes:
        return self.encoder.encode(fields)

    async def send(self, *chunks: bytes) -> None:
        """Write, and wait until the kernel took it (or the server closed)."""
        for chunk in chunks:
            if self.writer.is_closing():
                return
            self.writer.write(chunk)
            try:
                await self.writer.drain()
            except ConnectionError:
                return

    async def until(self, predicate: Any) -> None:
        """Read frames until ``predicate(frames)`` holds; fail at EOF or after 5 units."""

        async def read() -> None:
            while not predicate(self.frames):
                chunk = await self.reader.read(65536)
                assert chunk, f"closed; frames: {self.frames[-5:]}"
                self._buffer += chunk
                while len(self._buffer) >= 9:
                    end = 9 + int.from_bytes(self._buffer[:3], "big")
                    if len(self._buffer) < end:
                        break
                    frame, _ = Frame.parse_frame_header(memoryview(self._buffer[:9]))
                    frame.parse_body(memoryview(self._buffer[9:end]))
                    self._buffer = self._buffer[end:]
                    self.frames.append(describe(frame))

        await asyncio.wait_for(read(), 5 * UNIT)

    async def goaway(self) -> int:
        """The server's GOAWAY, then the connection closed: its error code."""
        await self.until(lambda frames: any(f[0] == "GOAWAY" for f in frames))
        (goaway,) = [f for f in self.frames if f[0] == "GOAWAY"]
        assert await asyncio.wait_for(self._drain_to_eof(), 5 * UNIT)
        return int(goaway[2])

    async def _drain_to_eof(self) -> bool:
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


async def app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": message["path"].encode()})


async def served(polite: H2Client, path: str) -> None:
    result = await polite.response(polite.request(path))
    assert result.status == 200 and result.data == path.encode(), result


async def test_an_endless_continuation_costs_its_connection_only() -> None:
    """CVE-2024-27316: CONTINUATION without END_HEADERS, for ever: bounded by the header list
    limit, then ENHANCE_YOUR_CALM."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        await served(polite, "/before")
        hostile = await RawPeer.open(server.port)
        await hostile.send(headers(1, hostile.block()[:2], end_headers=False))
        for n in range(100):  # (~1.6 MB: twice what the limit lets through)
            await hostile.send(continuation(1, b"\0" * 16384, end_headers=False))
            if n == 10:
                await served(polite, "/during")
        assert await hostile.goaway() == ENHANCE_YOUR_CALM
        hostile.close()
        await served(polite, "/after")
        polite.close()


async def test_a_settings_flood_costs_its_connection_only() -> None:
    """CVE-2019-9515: SETTINGS after SETTINGS, each to be acknowledged."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port)
        await hostile.send(settings({4: 65535}) * 5000)
        await served(polite, "/during")
        assert await hostile.goaway() == ENHANCE_YOUR_CALM
        assert sum(f == ("SETTINGS", "ACK") for f in hostile.frames) < 5000
        await served(polite, "/after")
        polite.close()


async def test_an_empty_frame_flood_costs_its_connection_only() -> None:
    """CVE-2019-9518: empty DATA frames without END_STREAM on an open stream."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port)
        post = [(":method", "POST"), *GET[1:]]
        await hostile.send(headers(1, hostile.block(post), end_stream=False))
        await hostile.send(data(1, b"") * 5000)
        await served(polite, "/during")
        assert await hostile.goaway() == ENHANCE_YOUR_CALM
        await served(polite, "/after")
        polite.close()


async def test_a_table_size_update_beyond_ours_is_a_compression_error() -> None:
    """RFC 7541 6.3: a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port)
        await hostile.send(headers(1, b"\x3f\xe2\x1f" + hostile.block()))  # to 4097
        assert await hostile.goaway() == COMPRESSION_ERROR
        await served(polite, "/after")
        polite.close()


async def test_an_hpack_bomb_is_431_on_its_stream_only() -> None:
    """A 4 KB table entry referenced 4000 times: a 16 MB header list from 8 KB of block,
    answered 431 (RFC 9113 10.5.1); the connection goes on, and so does the table."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port)
        entry = b"\x40\x05x-big" + bytes(hpack.hpack.encode_integer(4000, 7)) + b"b" * 4000
        block = b"\x82\x86\x84\x01\x04test" + entry + b"\xbe" * 4000
        await hostile.send(headers(1, block[:16384], end_headers=False),
                           continuation(1, block[16384:]))  # fmt: skip
        await hostile.until(lambda frames: ("HEADERS", 1, False, True) in frames)
        await hostile.send(headers(3, b"\x82\x86\x84\x01\x04test\xbe"), ping(b"goes on!"))
        await hostile.until(lambda frames: ("PING", "ACK", b"goes on!") in frames)
        assert ("HEADERS", 3, False, True) in hostile.frames
        assert not [f for f in hostile.frames if f[0] in ("GOAWAY", "RST_STREAM")]
        hostile.close()
        await served(polite, "/after")
        polite.close()


async def test_streams_beyond_the_limit_are_refused_and_others_served() -> None:
    """RFC 9113 5.1.2: beyond --h2-max-concurrent-streams, REFUSED_STREAM; the streams within
    it, and other connections, are served."""
    release = asyncio.Event()

    async def slow(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/slow":
            await release.wait()
        await channels["reply"].send({"status": 200, "content": message["path"].encode()})

    async with running_server(slow, h2_max_concurrent_streams=2) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port)
        slow_get = [*GET[:2], (":path", "/slow"), GET[3]]
        await hostile.send(*[headers(2 * n + 1, hostile.block(slow_get)) for n in range(10)])
        await hostile.until(lambda frames: len(frames) >= 8 + 2)  # (SETTINGS and its ACK)
        refused = [f for f in hostile.frames if f[0] == "RST_STREAM"]
        assert refused == [("RST_STREAM", 2 * n + 1, REFUSED_STREAM) for n in range(2, 10)]
        await served(polite, "/during")
        release.set()
        await hostile.until(lambda frames: ("DATA", 3, 5, True) in frames)
        assert ("DATA", 1, 5, True) in hostile.frames
        hostile.close()
        polite.close()


async def test_invalid_pseudo_headers_cost_their_stream_only() -> None:
    """RFC 9113 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR."""
    async with running_server(app) as server:
        client = await H2Client.open(server.port)
        client.conn.config.validate_outbound_headers = False
        stream = client.request("/bad", headers=[(":bogus", "x")])
        assert (await client.response(stream)).reset == PROTOCOL_ERROR
        await served(client, "/after")
        client.close()


async def test_a_zero_window_stall_holds_one_chunk_and_waits() -> None:
    """CVE-2019-9517: a client that never opens its window. The app's send waits (its stream
    holds what the window did not let through, one send's worth), other clients are served,
    and the stream's reset releases the app at once."""
    sent, failed = [], asyncio.Event()
    chunk = b"x" * 65536

    async def big(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] != "/big":
            await app(message, channels)
            return
        reply = channels["reply"]
        try:
            await reply.send({"status": 200, "content": chunk, "more_content": True})
            for _ in range(100):
                sent.append(len(chunk))
                await reply.send({"content": chunk, "more_content": True})
        except ClientDisconnected:
            failed.set()

    async with running_server(big) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port, client_settings={4: 0})
        await hostile.send(headers(1, hostile.block([*GET[:2], (":path", "/big"), GET[3]])))
        await hostile.until(lambda frames: ("HEADERS", 1, False, True) in frames)
        await served(polite, "/during")
        (conn,) = [c for c in server.server.state.connections
                   if isinstance(c, H2Connection) and c.core.peer_window == 0]  # fmt: skip
        stream = conn.streams[1]
        assert len(sent) <= 1 and len(stream.pending) <= 2 * len(chunk)  # type: ignore[union-attr]
        await hostile.send(raw(0x3, 0, 1, CANCEL.to_bytes(4, "big")))
        await asyncio.wait_for(failed.wait(), 5 * UNIT)
        assert len(sent) <= 1
        await served(polite, "/after")
        hostile.close()
        polite.close()


async def test_a_client_that_never_reads_holds_bounded_memory() -> None:
    """Requests for an empty answer (HEADERS only: no window limits them), sent without ever
    reading: what the server holds for the connection stays bounded."""

    async def empty(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] != "/hostile":
            await app(message, channels)
            return
        await channels["reply"].send({"status": 204})

    async with running_server(empty) as server:
        polite = await H2Client.open(server.port)
        hostile = await RawPeer.open(server.port, rcvbuf=4096)
        await served(polite, "/during")
        (conn,) = [c for c in server.server.state.connections if c.core.last_stream != 1]
        # (small kernel buffers both ways: what does not fit stays in the server's memory)
        conn.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        stream_id = 1
        for _ in range(200):  # batches within --h2-max-concurrent-streams, never reading
            wire = b""
            for _ in range(90):
                wire += headers(stream_id, hostile.block(GET))
                stream_id += 2
            hostile.writer.write(wire)
            for _ in range(20):
                await polite.round_trip()
                if conn.core.last_stream == stream_id - 2 and not conn.streams:
                    break
            else:
                break  # the server no longer reads us
        else:
            raise AssertionError("18000 answers never read, and the server took more")
        # The apps' sends wait for the socket (as over HTTP/1.1), so at most a response a
        # stream waits in memory, and the streams are bounded by SETTINGS_MAX_CONCURRENT_STREAMS.
        held = conn.transport.get_write_buffer_size()
        assert held <= 256 * 1024, held
        assert len(conn.streams) <= 100 and conn.running <= 100
        hostile.writer.transport.abort()
        await served(polite, "/after")
        polite.close()


async def test_invalid_http2_settings_of_an_upgrade_cost_their_connection_only() -> None:
    """RFC 7540 3.2.1: an h2c upgrade whose HTTP2-Settings hold a value no SETTINGS frame may
    (SETTINGS_ENABLE_PUSH 2): after the 101, GOAWAY PROTOCOL_ERROR and close."""
    async with running_server(app) as server:
        polite = await H2Client.open(server.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET / HTTP/1.1\r\nhost: test\r\nconnection: Upgrade, HTTP2-Settings\r\n"
            b"upgrade: h2c\r\nhttp2-settings: %s\r\n\r\n" % settings_header(b"\0\x02\0\0\0\x02")
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * UNIT)
        assert head.startswith(b"HTTP/1.1 101 ")
        hostile = RawPeer(reader, writer)
        assert await hostile.goaway() == PROTOCOL_ERROR
        await served(polite, "/after")
        polite.close()


async def test_streams_refused_while_reset_apps_still_run_are_calmed() -> None:
    """Rapid reset's sequel: streams reset while their apps go on (an app may ignore the
    disconnect) keep the apps at --h2-max-concurrent-streams, and every new stream is refused
    by the worker (REFUSED_STREAM): a client that keeps opening them, one a read, is calmed,
    not served refusals for ever."""
    release = asyncio.Event()

    async def stubborn(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["path"] == "/hostile":
            await release.wait()  # (the stream's reset does not end it)
            return
        await app(message, channels)

    async with running_server(stubborn, h2_max_concurrent_streams=2) as server:
        try:
            polite = await H2Client.open(server.port)
            hostile = await RawPeer.open(server.port)
            await hostile.send(headers(1, hostile.block()), headers(3, hostile.block()))
            await hostile.send(raw(0x3, 0, 1, b"\0\0\0\x08"), raw(0x3, 0, 3, b"\0\0\0\x08"))
            ends = ("RST_STREAM", "GOAWAY")
            for n in range(1100):  # one at a time: a stream a read of the server's
                await hostile.send(headers(2 * n + 5, hostile.block()))
                await hostile.until(lambda frames, n=n: sum(f[0] in ends for f in frames) > n)
                if hostile.frames[-1][0] == "GOAWAY":
                    break
            assert await hostile.goaway() == ENHANCE_YOUR_CALM
            refused = [f for f in hostile.frames if f[0] == "RST_STREAM"]
            assert 500 < len(refused) < 1100
            assert {code for _, _, code in refused} == {REFUSED_STREAM}
            await served(polite, "/during")
        finally:
            release.set()
        await served(polite, "/after")
        polite.close()
