"""The members of benchmarks/fanout.py: a minimal WebSocket client, and the client processes
that each hold a share of the members and time what they receive."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from multiprocessing.connection import Connection
from typing import Any

# A minimal WebSocket client: enough to count and time text messages, cheap per message.


class Client(asyncio.Protocol):
    KEY = base64.b64encode(b"fanout-benchmark").decode()

    def __init__(self, host: str, port: int, on_text: Any) -> None:
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_text = on_text
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.opened.set_result(None)
        position, size = 0, len(buffer)
        while size - position >= 2:
            opcode, length, header = buffer[position] & 0x0F, buffer[position + 1] & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            end = position + header + length
            if end > size:
                break
            payload = bytes(buffer[position + header : end])
            position = end
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:
                self.send(payload, opcode=0xA)  # pong
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
        del buffer[:position]

    def send(self, payload: bytes, opcode: int = 1) -> None:
        key = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = bytes([0x80 | opcode, 0x80 | size])
        else:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        mask = int.from_bytes((key * (size // 4 + 1))[:size], "big")
        masked = (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")
        assert self.transport is not None
        self.transport.write(head + key + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def connect(host: str, port: int, on_text: Any) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(host, port, on_text), host, port)
    await asyncio.wait_for(client.opened, 60)
    return client


# The client processes: each holds its share of the members and times what they receive.


def client_process(
    ports: list[int], count: int, offset: int, commands: Connection, conn: Connection,
    cpus: set[int] | None = None,
) -> None:
    import uvloop

    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    uvloop.run(_client_main(ports, count, offset, commands, conn))


async def _client_main(
    ports: list[int], count: int, offset: int, commands: Connection, conn: Connection
) -> None:
    """Results go out on ``conn`` (blocking writes); ``commands`` come in on a pipe of their own,
    since the event loop makes the file descriptor it watches non-blocking. Member i connects to
    ``ports[(offset + i) % len(ports)]``: the members are spread over the instances."""
    loop = asyncio.get_running_loop()
    warmed: set[int] = set()
    expected: dict[str, int] = {}
    latencies: dict[str, list[int]] = {}
    sequences: dict[str, list[int]] = {}  # each latency's message (fanout_report.slowest)
    last: dict[str, int] = {}
    reported: set[str] = set()
    finished = loop.create_future()

    def report(phase: str) -> None:
        if phase not in reported:
            reported.add(phase)
            conn.send(("done", phase, latencies.get(phase, []), last.get(phase, 0),
                       sequences.get(phase, [])))  # fmt: skip

    def on_text_of(index: int) -> Any:
        def on_text(payload: bytes) -> None:
            if payload[:2] == b"m ":  # "m <phase> <seq> <send time, ns>"
                now = time.monotonic_ns()
                _, phase_bytes, seq, sent = payload.split(b" ")
                phase = phase_bytes.decode()
                received = latencies.setdefault(phase, [])
                received.append(now - int(sent))
                sequences.setdefault(phase, []).append(int(seq))
                last[phase] = now
                if len(received) == expected.get(phase, -1):
                    report(phase)
            elif payload == b"w" and index not in warmed:  # warm-up: each member once
                warmed.add(index)
                if len(warmed) == count:
                    conn.send(("warm",))

        return on_text

    def on_command() -> None:
        command = commands.recv()
        if command[0] == "expect":  # ("expect", phase, messages per member)
            phase = command[1]
            expected[phase] = command[2] * count
            if len(latencies.get(phase, ())) >= expected[phase]:
                report(phase)
        elif command[0] == "report":  # the coordinator stopped waiting: what arrived
            report(command[1])
        elif command[0] == "exit" and not finished.done():
            finished.set_result(None)

    loop.add_reader(commands.fileno(), on_command)
    clients: list[Client] = []
    for start in range(0, count, 50):  # 50 handshakes at a time: no listen backlog overflow
        batch = range(start, min(start + 50, count))
        clients += await asyncio.gather(
            *(connect("127.0.0.1", ports[(offset + i) % len(ports)], on_text_of(i)) for i in batch)
        )
    conn.send(("connected",))
    await finished
    for client in clients:
        if client.transport is not None:
            client.transport.close()
