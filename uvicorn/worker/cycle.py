"""The request cycle: one HTTP request and its response, written once for both app interfaces.

A ``RequestCycle`` is the response state machine (``protocols.http_response.Response``, which it
extends rather than holds: one object and one attribute hop fewer per request) driven by an app,
plus the request body buffer with its back-pressure, ``Expect: 100-continue``, disconnects, and
what happens when the app fails. The messaging interface (``messaging.py``) and ASGI
(``asgi.py``) are thin subclasses that translate their messages onto it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.http_response import Response, ResponseState, simple_response

if TYPE_CHECKING:
    from uvicorn.worker.connection import HTTPConnection

logger = logging.getLogger("uvicorn.error")

# Stop reading from the socket while this much received body waits unread (SPEC: 64 KiB).
BODY_HIGH_WATER = 64 * 1024
# A body the app never read is discarded after the response, up to this much; past it the
# connection is closed instead.
DISCARD_LIMIT = 1024 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DONE = ResponseState.DONE
_IDLE = ResponseState.IDLE


class RequestCycle(Response):
    """Base of ``MessagingCycle`` and ``ASGICycle``; subclasses implement ``call_app()``."""

    __slots__ = (
        "conn",
        "head",
        "client",
        "scheme",
        "task",
        "received",
        "unread",
        "body_complete",
        "disconnected",
        "finished",
        "expect_continue",
        "waiter",
        "discarded",
    )

    def __init__(self, conn: HTTPConnection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        # Response.__init__, inlined (a call fewer per request); test_cycle checks that every
        # field of Response is set.
        is_head = head.method == "HEAD"
        self.state = _IDLE
        self.keep_alive = head.keep_alive and not conn.closing
        self.status = 0
        self._is_head = is_head
        self._http10 = head.http_version == "1.0"
        self._chunked = False
        self._remaining = -1
        self._no_body = is_head
        self._defaults = conn.state.defaults
        self.client = conn.client
        self.scheme = conn.scheme
        self.task: asyncio.Task[None] | None = None
        self.received: list[bytes] = []  # request body bytes not yet read by the app
        self.unread = 0
        self.body_complete = False
        self.disconnected = False
        self.finished = False  # the app call returned
        self.expect_continue = head.expect_continue
        self.waiter: asyncio.Future[None] | None = None
        self.discarded = 0

    def call_app(self) -> Awaitable[None]:
        """Start the app's call for this request (its coroutine, awaited by ``run()``)."""
        raise NotImplementedError

    async def run(self) -> None:
        """Call the app; whatever it does, leave the connection answered or closed."""
        try:
            await self.call_app()
        except asyncio.CancelledError:
            self.fail(None)
            raise
        except BaseException as exc:
            self.fail(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if self.state is not _DONE:
                started = self.state is not _IDLE
                self.fail(
                    RuntimeError(
                        "app returned without completing its response"
                        + (" (the last message had more_content=True)" if started else "")
                    )
                )
        finally:
            self.finished = True
            self.conn.cycle_finished(self)

    def fail(self, exc: BaseException | None) -> None:
        """The app raised ``exc`` (or was cancelled): log it, then 500 or close."""
        if self.disconnected and (exc is None or isinstance(exc, ClientDisconnected)):
            return  # the app noticed its client left: nothing alarming
        if exc is not None:
            logger.error(
                "Exception in app for %s %s",
                self.head.method,
                self.head.raw_path.decode("latin-1"),
                exc_info=exc,
            )
        if self.state is _IDLE and not self.disconnected:
            self.status = 500
            self.abandon()
            defaults = self.conn.state.defaults
            self.conn.write(simple_response(defaults, 500, head=self.head.method == "HEAD"), True)
        else:
            self.abandon()

    # The connection's side.

    def feed_body(self, data: bytes) -> None:
        if self.finished:
            self.discarded += len(data)
            if self.discarded > DISCARD_LIMIT:
                self.conn.close()
            return
        self.received.append(data)
        self.unread += len(data)
        if self.unread > BODY_HIGH_WATER:
            self.conn.update_reading()
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        if self.waiter is not None:
            self._wake()

    def connection_lost(self) -> None:
        self.disconnected = True
        self._wake()

    def client_eof(self) -> None:
        self._wake()  # see wait_disconnect()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self.waiter = self.conn.loop.create_future()
        await waiter

    # The app's side, through the interface subclasses.

    def take_body(self) -> bytes:
        """The body bytes received so far and not yet read."""
        body = self.received
        if not body:
            return b""
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        was_paused = self.unread > BODY_HIGH_WATER
        self.unread = 0
        if was_paused:
            self.conn.update_reading()
        return data

    async def read_body(self) -> tuple[bytes, bool, bool]:
        """Wait for body bytes; return (data, more to come, client gone)."""
        if self.expect_continue:
            # RFC 9110 section 10.1.1: 100 (Continue) only once the app wants the body, so a
            # response sent before that (a 413, say) spares the client its upload.
            self.expect_continue = False
            if self.state is _IDLE and not self.disconnected:
                self.conn.write(_CONTINUE, True)
        while not self.received and not self.body_complete and not self.disconnected:
            await self._wait()
        if self.disconnected and not self.body_complete:
            self.received.clear()
            return b"", False, True
        return self.take_body(), not self.body_complete, False

    async def wait_disconnect(self) -> None:
        """Wait until the client is gone or the response is complete (ASGI's http.disconnect).

        A client that shut down its sending side (EOF) counts as gone here: the connection
        stays half open so that such a client can still read its answer, but an app waiting
        for a disconnect (a long poll) must not wait for a close that only its own response
        would bring."""
        conn = self.conn
        while not self.disconnected and not conn.peer_eof and self.state is not _DONE:
            await self._wait()

    def write_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        if self.disconnected:
            raise ClientDisconnected()
        if self.expect_continue and not self.body_complete:
            # A final answer before 100 Continue: the client will not send its body, so the
            # connection closes after it. RFC 9110 section 10.1.1 asks to say so in advance.
            self.keep_alive = False
        data = self.start(status, headers, content, more)
        if data:
            self.conn.write(data, not more)
        if not more and self.waiter is not None and self.state is _DONE:
            self._wake()

    def write_body(self, content: bytes, more: bool) -> None:
        if self.disconnected:
            raise ClientDisconnected()
        try:
            data = self.body(content, more)
        except RuntimeError:
            if self.state is _DONE and not self.keep_alive:
                self.conn.close()  # the body broke its declared length: never half written
            raise
        if data or not more:
            self.conn.write(data, not more)
        if not more and self.waiter is not None:
            self._wake()


# ord("%"), for ``PERCENT in raw_path``: CPython tries the argument of bytes.__contains__ as an
# int first, and a bytes argument costs a raised and cleared TypeError on every request.
PERCENT = ord("%")


def decode_path(raw_path: bytes) -> str:
    """Percent-decode, then UTF-8 decode with replacement characters (SPEC: ``path``)."""
    if PERCENT not in raw_path:
        # The parser admits only ASCII in a request target, so this cannot fail.
        return raw_path.decode("ascii")
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")
