"""--metrics: the master's small HTTP server for ``GET /metrics``.

The master runs no event loop: its listening socket and its scrapers' connections wait in the
master's one selector (``waker.py``), beside the workers' pipes and the signals. Everything is
non-blocking and bounded, so that a slow or hostile scraper never holds the master (whose work
is keeping the workers alive): at most ``MAX_CLIENTS`` connections, a request head of at most
``MAX_HEAD`` bytes, ``TIMEOUT`` seconds for the whole exchange. Each scrape gets one HTTP/1.1
response and the connection closes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
from collections.abc import Callable

from uvicorn.config_values import parse_bind
from uvicorn.exceptions import StartupError
from uvicorn.supervisor.metrics import CONTENT_TYPE
from uvicorn.supervisor.waker import Waker

logger = logging.getLogger("uvicorn.supervisor")

MAX_CLIENTS = 16
MAX_HEAD = 8192
TIMEOUT = 5.0


class ScrapeServer:
    def __init__(self, address: str, waker: Waker, render: Callable[[], bytes]) -> None:
        spec = parse_bind(address)
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        try:
            self.sock = socket.create_server((spec.host, spec.port), family=family)
        except OSError as exc:
            raise StartupError(f"cannot listen on --metrics {address}: {exc}") from None
        self.sock.setblocking(False)
        self.waker = waker
        self.render = render
        self.clients: dict[int, Scrape] = {}
        waker.register(self.sock.fileno(), self)
        host, port = self.sock.getsockname()[:2]
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        logger.info("Serving metrics on http://%s/metrics", shown)

    def handle(self, now: float) -> None:
        """The listening socket is readable: accept what waits (up to the bound)."""
        for _ in range(MAX_CLIENTS):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the next wake-up tries again
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                    raise
                return
            if len(self.clients) >= MAX_CLIENTS:
                conn.close()  # busy: a scraper retries at its next interval
                continue
            conn.setblocking(False)
            client = Scrape(self, conn, now + TIMEOUT)
            self.clients[conn.fileno()] = client
            self.waker.register(conn.fileno(), client)

    def deadline(self) -> float | None:
        return min((c.deadline for c in self.clients.values()), default=None)

    def expire(self, now: float) -> None:
        for client in list(self.clients.values()):
            if now >= client.deadline:
                client.close()

    def close(self) -> None:
        for client in list(self.clients.values()):
            client.close()
        with contextlib.suppress(KeyError, ValueError):
            self.waker.unregister(self.sock.fileno())
        self.sock.close()


class Scrape:
    """One scraper's connection: read a request head, write one response, close."""

    def __init__(self, server: ScrapeServer, conn: socket.socket, deadline: float) -> None:
        self.server = server
        self.conn = conn
        self.fd = conn.fileno()
        self.deadline = deadline
        self.head = b""
        self.out: bytes | None = None  # the response, once the head is read: what is unsent

    def handle(self, now: float) -> None:
        try:
            if self.out is None:
                self._read()
            if self.out is not None:
                self._write()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the scraper
            self.close()

    def _read(self) -> None:
        data = self.conn.recv(4096)
        if not data:
            self.close()
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self._respond(431, b"Request Header Fields Too Large\n")
            return
        method, _, rest = self.head[:end].partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if target != b"/metrics":
            self._respond(404, b"Not Found: the metrics are at /metrics\n")
        elif method not in (b"GET", b"HEAD"):
            self._respond(405, b"Method Not Allowed\n")
        else:
            self._respond(200, self.server.render(), head=method == b"HEAD")

    def _respond(self, status: int, body: bytes, head: bool = False) -> None:
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large"}[status]  # fmt: skip
        kind = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        lines = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.out = lines.encode("latin-1") + (b"" if head else body)
        # Written as the socket takes it: the selector now waits for room, not for data.
        self.server.waker.modify(self.fd, selectors.EVENT_WRITE, self)

    def _write(self) -> None:
        assert self.out is not None
        sent = self.conn.send(self.out)
        self.out = self.out[sent:]
        if not self.out:
            self.close()

    def close(self) -> None:
        if self.server.clients.pop(self.fd, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.server.waker.unregister(self.fd)
        self.conn.close()
