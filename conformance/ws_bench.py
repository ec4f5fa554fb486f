"""WebSocket measurements behind the choices in conformance/README.md.

    .venv/bin/python conformance/ws_bench.py echo [messages]      # CPU per 64-byte text echo
    .venv/bin/python conformance/ws_bench.py --callgrind echo     # instructions per echo
    .venv/bin/python conformance/ws_bench.py deflate              # permessage-deflate settings:
                                                                  # speed and ratio, chat JSON
    .venv/bin/python conformance/ws_bench.py memory [connections] # RSS per compression context
    .venv/bin/python conformance/ws_bench.py server-memory [conns] # RSS per connection, a worker

``echo`` feeds masked 64-byte text frames to a ``MessagingWebSocket`` (session and core, the
messaging interface's echo app) whose transport only counts bytes, as benchmarks/micro.py does
for HTTP. ``deflate`` runs websockets' ``PerMessageDeflate`` (what a connection uses) over
chat-sized JSON messages for each window size / memLevel. ``memory`` opens N connections with
compression on a real server (the CLI, a subprocess), sends one message on each, and reads the
worker's RSS before and after.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (server/client max_window_bits, memLevel): zlib's default, the published uvicorn's
# (websockets' legacy default), and between.
SETTINGS = [(15, 8), (15, 5), (13, 5), (12, 5), (12, 4), (11, 4), (10, 3), (9, 2)]


def frame(payload: bytes, opcode: int = 1) -> bytes:
    mask = b"\x37\xfa\x21\x3d"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


# echo


class CountingTransport:
    def __init__(self) -> None:
        self.written = 0
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def is_closing(self) -> bool:
        return False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


async def echo_app(message: dict[str, Any], channels: dict[str, Any]) -> None:
    if message["channel"] == "websocket.receive":
        await channels["reply"].send({"text": message["text"]})


async def measure_echo(count: int) -> None:
    from uvicorn.config import Config
    from uvicorn.worker.connection import HTTPConnection
    from uvicorn.worker.messaging import MessagingCycle, MessagingWebSocket
    from uvicorn.worker.state import ServerState

    loop = asyncio.get_running_loop()
    config = Config(app=echo_app, access_log=False, ws_ping_interval=0)
    state = ServerState(config, echo_app, MessagingCycle, loop, MessagingWebSocket)
    transport = CountingTransport()
    conn = HTTPConnection(state)
    conn.connection_made(transport)  # type: ignore[arg-type]
    key = base64.b64encode(b"0123456789abcdef")
    conn.data_received(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                       b"\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    for _ in range(10):
        await asyncio.sleep(0)
    session = transport.protocol
    data = frame(b"x" * 64)

    async def one() -> None:
        session.data_received(data)
        await asyncio.sleep(0)

    for _ in range(2000):  # warm up
        await one()
    written = transport.written
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(count):
        await one()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert transport.written - written == count * 66, "the echo failed"
    print(f"echo: {count / elapsed:,.0f} messages/s, {cpu / count * 1e6:.2f} us CPU per message")


def instructions(count: int) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "echo", str(count)],
        env=dict(os.environ, PYTHONHASHSEED="0"), capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", run.stderr)
    assert found is not None, run.stderr[-2000:]
    return int(found.group(1))


# deflate


def chat_messages(count: int) -> list[bytes]:
    """Chat-sized JSON (60-400 bytes): what a chat or a notification feed sends."""
    rng = random.Random(1)
    words = ["hello", "there", "ok", "thanks", "meeting", "tomorrow", "at", "the", "office",
             "sounds", "good", "see", "you", "later", "lunch", "deploy", "build", "failed",
             "passed", "review", "merged"]  # fmt: skip
    users = [f"user{i}" for i in range(40)]
    out = []
    for i in range(count):
        message = {
            "type": rng.choice(["message", "message", "message", "typing", "presence"]),
            "room": f"room-{rng.randint(1, 12)}",
            "user": {"id": rng.randint(1000, 9999), "name": rng.choice(users)},
            "text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 40))),
            "ts": 1767225600 + i * 7,
            "id": f"{rng.getrandbits(64):016x}",
        }
        out.append(json.dumps(message).encode())
    return out


def measure_deflate() -> None:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    messages = chat_messages(20_000)
    raw = sum(len(m) for m in messages)
    print(f"{len(messages)} chat JSON messages, {raw / len(messages):.0f} bytes on average")
    print("wbits memLevel  ratio  compress us/msg  decompress us/msg")
    for wbits, mem_level in SETTINGS:
        server = PerMessageDeflate(False, False, wbits, wbits, {"memLevel": mem_level})
        client = PerMessageDeflate(False, False, wbits, wbits, {"memLevel": mem_level})
        frames = [Frame(Opcode.TEXT, m) for m in messages]
        started = time.process_time()
        encoded = [server.encode(f) for f in frames]
        compress = time.process_time() - started
        started = time.process_time()
        for f in encoded:
            client.decode(f)
        decompress = time.process_time() - started
        size = sum(len(f.data) for f in encoded)
        print(f"{wbits:5} {mem_level:8} {size / raw:6.3f} {compress / len(messages) * 1e6:16.2f}"
              f" {decompress / len(messages) * 1e6:18.2f}")  # fmt: skip
    # Large messages, as Autobahn's 12.x sends (64 KiB pieces of a JSON document).
    document = json.dumps([json.loads(m) for m in messages]).encode()
    pieces = [document[i : i + 65536] for i in range(0, 64 * 65536, 65536)]
    print(f"{len(pieces)} messages of 64 KiB of JSON")
    print("wbits memLevel  ratio  compress MB/s  decompress MB/s")
    for wbits, mem_level in SETTINGS:
        server = PerMessageDeflate(False, False, wbits, wbits, {"memLevel": mem_level})
        client = PerMessageDeflate(False, False, wbits, wbits, {"memLevel": mem_level})
        started = time.process_time()
        encoded = [server.encode(Frame(Opcode.BINARY, p)) for p in pieces]
        compress = time.process_time() - started
        started = time.process_time()
        for f in encoded:
            client.decode(f)
        decompress = time.process_time() - started
        total = sum(len(p) for p in pieces)
        size = sum(len(f.data) for f in encoded)
        print(f"{wbits:5} {mem_level:8} {size / total:6.3f} {total / compress / 1e6:14.1f}"
              f" {total / decompress / 1e6:16.1f}")  # fmt: skip


# memory


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def contexts_memory(wbits: int, mem_level: int, count: int, rounds: int) -> None:
    """RSS of ``count`` server-side compression contexts, each having inflated ``rounds``
    client messages and deflated as many answers (a process of its own per setting)."""
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode

    messages = chat_messages(rounds)
    compressor = zlib.compressobj(wbits=-wbits)  # a client, with the negotiated window
    wire = []
    for message in messages:
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        wire.append(Frame(Opcode.TEXT, data[:-4], rsv1=True))
    before = rss_kib()
    kept = []
    for _ in range(count):
        extension = PerMessageDeflate(False, False, wbits, wbits, {"memLevel": mem_level})
        for frame_in in wire:
            extension.encode(Frame(Opcode.TEXT, extension.decode(frame_in).data))
        kept.append(extension)
    after = rss_kib()
    print(f"{wbits:5} {mem_level:8} {rounds:6} {(after - before) / count:8.1f} KiB")


def measure_memory(count: int) -> None:
    print(f"RSS per connection's compression contexts, over {count} connections, after one")
    print("message in and out, and after 300 (75 KB each way: the windows are full)")
    print("wbits memLevel rounds      RSS")
    for wbits, mem_level in SETTINGS:
        for rounds in (1, 300):
            subprocess.run([sys.executable, __file__, "contexts", str(wbits), str(mem_level),
                            str(count), str(rounds)], check=True)  # fmt: skip


async def open_connections(port: int, count: int, deflate: bool) -> list[Any]:
    extension = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    conns = []
    payload = chat_messages(1)[0][:120]
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                     f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"{extension if deflate else ''}\r\n".encode())  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101") and deflate == (b"deflate" in head), head
        if deflate:  # RFC 7692 section 7.2.1: raw deflate, without the final 00 00 ff ff
            compressor = zlib.compressobj(wbits=-9)  # fits any window the server asks for
            data = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
            mask = b"\x00\x00\x00\x00"
            writer.write(bytes([0xC1, 0x80 | len(data)]) + mask + data)
        else:
            writer.write(frame(payload))
        await reader.read(2)  # the echo's first bytes
        conns.append((reader, writer))
    return conns


def measure_server_memory(count: int) -> None:
    """RSS per connection of a real worker (the CLI), compression on and off."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for deflate in (False, True):
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/uvicorn"), "conformance.echo_apps:messaging_echo", "--port",
             str(port), "--no-access-log", "--log-level", "warning", "--ws-ping-interval", "0",
             "--ws-per-message-deflate" if deflate else "--no-ws-per-message-deflate"],
            cwd=ROOT,
        )  # fmt: skip
        try:
            time.sleep(1.5)
            asyncio.run(_hold(port, count, deflate, server.pid))
        finally:
            server.terminate()
            server.wait()


async def _hold(port: int, count: int, deflate: bool, pid: int) -> None:
    conns = await open_connections(port, 20, deflate)  # warm-up: imports, first allocations
    await asyncio.sleep(0.5)
    workers = subprocess.check_output(["pgrep", "-P", str(pid)]).split()
    worker = int(workers[0]) if workers else pid  # one worker: the CLI serves in-process
    before = rss_kib(worker)
    conns += await open_connections(port, count, deflate)
    await asyncio.sleep(0.5)
    after = rss_kib(worker)
    label = "compressed" if deflate else "uncompressed"
    print(f"{label}: {count} connections, worker RSS +{(after - before) / 1024:.1f} MiB, "
          f"{(after - before) / count:.1f} KiB per connection")  # fmt: skip
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--callgrind"]:
        per = (instructions(12_000) - instructions(2_000)) / 10_000
        print(f"echo: {per:,.0f} instructions per message (callgrind)")
    elif args[:1] == ["echo"]:
        import uvloop

        uvloop.run(measure_echo(int(args[1]) if len(args) > 1 else 200_000))
    elif args[:1] == ["deflate"]:
        measure_deflate()
    elif args[:1] == ["memory"]:
        measure_memory(int(args[1]) if len(args) > 1 else 500)
    elif args[:1] == ["contexts"]:
        contexts_memory(int(args[1]), int(args[2]), int(args[3]), int(args[4]))
    elif args[:1] == ["server-memory"]:
        measure_server_memory(int(args[1]) if len(args) > 1 else 1000)
    else:
        sys.exit(__doc__)
