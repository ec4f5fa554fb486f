"""A load of a fixed size, for counting instructions (harness/callgrind.py): exactly N requests
(or WebSocket round trips) over C connections, each connection doing N / C of them one at a time.
wrk and ws_client.py run for a time, and the number of requests a server answers in that time is
what they measure; under valgrind what is measured is the server's instructions, so the load must
be the same from one run to the next whatever the speed. Standard library only, blocking sockets
in one thread per connection: the client's own speed does not matter here (the server under
valgrind is some 50 times slower than it)."""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections.abc import Callable

HOST = "127.0.0.1"
WS_SIZE = 64


class LoadFailed(Exception):
    """A wrong answer or a lost connection: the count would not be of the load intended."""


def request(name: str, port: int) -> bytes:
    """The request of an HTTP scenario of loads.py (hello-ka, hello-close, stream, echo)."""
    head = f"Host: {HOST}:{port}\r\n"
    if name == "echo":
        body = b"e" * 64 * 1024
        return (f"POST /echo HTTP/1.1\r\n{head}Content-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip
    path = "/stream" if name == "stream" else "/"
    close = "Connection: close\r\n" if name == "hello-close" else ""
    return f"GET {path} HTTP/1.1\r\n{head}{close}\r\n".encode()


def _recv(sock: socket.socket, buf: bytearray) -> None:
    data = sock.recv(65536)
    if not data:
        raise LoadFailed(f"the server closed the connection ({bytes(buf[:60])!r} unanswered)")
    buf += data


def read_response(sock: socket.socket, buf: bytearray) -> int:
    """Read one response (content-length or chunked body) off `buf` and the socket; its status.
    What follows it stays in `buf`."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        _recv(sock, buf)
    head = bytes(buf[:end]).decode("latin-1").lower().split("\r\n")
    status = int(head[0].split()[1])
    fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    del buf[: end + 4]
    if "chunked" in fields.get("transfer-encoding", ""):
        while True:  # chunk by chunk: a size line, its data, CRLF; up to the last (0) chunk
            while (eol := buf.find(b"\r\n")) < 0:
                _recv(sock, buf)
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
            while len(buf) < eol + 2 + size + 2:
                _recv(sock, buf)
            del buf[: eol + 2 + size + 2]  # (no trailers: none of our apps sends them)
            if size == 0:
                return status
    length = int(fields.get("content-length", "0"))
    while len(buf) < length:
        _recv(sock, buf)
    del buf[:length]
    return status


def _http_worker(name: str, port: int, count: int) -> None:
    data = request(name, port)
    if name == "hello-close":  # a connection per request, closed by the server
        for _ in range(count):
            with socket.create_connection((HOST, port), timeout=120) as sock:
                sock.sendall(data)
                buf = bytearray()
                if read_response(sock, buf) != 200:
                    raise LoadFailed("status other than 200")
                if sock.recv(1):
                    raise LoadFailed("the server did not close after Connection: close")
        return
    with socket.create_connection((HOST, port), timeout=120) as sock:
        buf = bytearray()
        for _ in range(count):
            sock.sendall(data)
            if read_response(sock, buf) != 200:
                raise LoadFailed("status other than 200")


def ws_frame(payload: bytes) -> bytes:
    """A masked text frame of fewer than 126 bytes, as a client sends it."""
    mask = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))  # fmt: skip


def _ws_worker(port: int, count: int) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
    payload = b"m" * WS_SIZE
    frame, echo = ws_frame(payload), bytes((0x81, WS_SIZE)) + payload
    with socket.create_connection((HOST, port), timeout=120) as sock:
        sock.sendall(handshake)
        buf = bytearray()
        if read_response(sock, buf) != 101:
            raise LoadFailed("the WebSocket handshake was refused")
        for _ in range(count):
            sock.sendall(frame)
            while len(buf) < len(echo):
                _recv(sock, buf)
            if buf[: len(echo)] != echo:
                raise LoadFailed(f"wrong WebSocket echo: {bytes(buf[:20])!r}")
            del buf[: len(echo)]


def shares(total: int, connections: int) -> list[int]:
    """`total` split over `connections`, the first ones taking one more when it does not
    divide: the same split every run."""
    each, extra = divmod(total, connections)
    return [each + (i < extra) for i in range(connections) if each + (i < extra)]


def run(name: str, port: int, total: int, connections: int) -> None:
    """`total` requests of scenario `name` (or round trips, for ws) over `connections`
    connections, one in flight on each; LoadFailed if any went wrong."""
    target: Callable[[int], None]
    if name == "ws":
        target = lambda count: _ws_worker(port, count)  # noqa: E731
    else:
        target = lambda count: _http_worker(name, port, count)  # noqa: E731
    errors: list[BaseException] = []

    def work(count: int) -> None:
        try:
            target(count)
        except (OSError, ValueError, LoadFailed) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in shares(total, connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise LoadFailed(f"{len(errors)} of {len(threads)} connections failed: {errors[0]!r}")
