"""The soak test's WebSocket load (benchmarks/soak.py): exactly --connections WebSocket sessions
with an echo server (benchmarks/apps/soak.py), --concurrency at a time. Each session:

- the opening handshake, every third offering permessage-deflate as browsers offer it (RFC 7692
  section 7.1.2.2), so that the server compresses its echoes there;
- --echoes text messages, each echo read and checked (inflated where compressed) before the next;
- an end: every other session the closing handshake (RFC 6455 section 7.1.2: a Close frame, the
  server's Close back, then the server closes the TCP connection first, section 7.1.1); the others
  go away without one, as a closed browser tab does.

Standard library only (uvloop when the interpreter has it), so that it runs under any Python:

    python ws_soak_client.py --port 8000 --connections 100000 [--tls]

(``--tls``: over TLS, the server's certificate not checked.)

It prints one ``RESULT {json}`` line: sessions completed, errors (a refused handshake, a wrong or
missing echo, a closing handshake not answered, a connection lost), seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import time
import zlib

HOST = "127.0.0.1"
DEFLATE = b"sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"
TIMEOUT = 10.0  # seconds a session may take: a server that stops answering is an error, not a hang


def handshake(deflate: bool) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET /ws HTTP/1.1\r\nhost: soak\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-key: %s\r\nsec-websocket-version: 13\r\n%s\r\n"
            % (key, DEFLATE if deflate else b""))  # fmt: skip


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (RFC 6455 section 5.3: masked), payload under 126 bytes."""
    assert len(payload) < 126
    key = os.urandom(4)
    mask = int.from_bytes((key * (len(payload) // 4 + 1))[: len(payload)], "big")
    body = (int.from_bytes(payload, "big") ^ mask).to_bytes(len(payload), "big")
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(opcode, RSV1, payload) of the server's next frame (unmasked, section 5.1)."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return head[0] & 0x0F, bool(head[0] & 0x40), await reader.readexactly(length)


class SessionError(Exception):
    pass


async def session(number: int, port: int, echoes: int, tls: ssl.SSLContext | None) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, ssl=tls)
    try:
        offer = number % 3 == 0
        writer.write(handshake(offer))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise SessionError(f"handshake refused: {head[:40]!r}")
        if offer != (b"permessage-deflate" in head.lower()):
            raise SessionError("permessage-deflate offered and not taken")
        # One inflater for the session: the server may keep its window between messages
        # (RFC 7692 section 7.1.1: no server_no_context_takeover was asked for).
        inflater = zlib.decompressobj(-15) if offer else None
        for echo in range(echoes):
            text = f"message {echo} of session {number}: " + "abc" * (echo + 5)
            writer.write(masked(0x1, text.encode()))
            opcode, compressed, payload = await read_frame(reader)
            if compressed and inflater is not None:  # section 7.2.2: the tail put back
                payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
            if opcode != 0x1 or payload != text.encode():
                raise SessionError(f"wrong echo: opcode {opcode}, {payload[:40]!r}")
        if number % 2:
            writer.close()  # gone without a closing handshake
            return
        writer.write(masked(0x8, (1000).to_bytes(2, "big")))
        opcode, _, payload = await read_frame(reader)
        if opcode != 0x8 or payload[:2] != (1000).to_bytes(2, "big"):
            raise SessionError(f"closing handshake answered with opcode {opcode}, {payload!r}")
        if await reader.read(1):
            raise SessionError("data after the server's Close frame")
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> dict[str, object]:
    counts = {"sessions": 0, "errors": 0}
    examples: list[str] = []
    numbers = iter(range(args.connections))
    tls = None
    if args.tls:
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # (the soak's own certificate)

    async def worker() -> None:
        for number in numbers:
            try:
                await asyncio.wait_for(session(number, args.port, args.echoes, tls), TIMEOUT)
                counts["sessions"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                    asyncio.LimitOverrunError, SessionError) as exc:  # fmt: skip
                counts["errors"] += 1
                if len(examples) < 5:
                    examples.append(f"session {number}: {exc!r}")

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return dict(counts, seconds=time.monotonic() - start, examples=examples)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--echoes", type=int, default=5)
    parser.add_argument("--tls", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run
    result = run(main(parse_args()))
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0)
