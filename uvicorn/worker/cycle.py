"""The request cycle: one HTTP request and its response, written once for both app interfaces and
every protocol.

A ``RequestCycle`` is what an app's call for one request needs: the request body buffer with
its back-pressure, ``Expect: 100-continue``, disconnects, and what happens when the app fails.
It sees its exchange with the client only as a ``Stream`` (``stream.py``), which frames and
sends. The messaging interface (``messaging.py``) and ASGI (``asgi.py``) are thin subclasses
that translate their messages onto it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from uvicorn.compiled import mypyc_attr
from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.http_response import BodyFraming, ResponseState
from uvicorn.protocols.http_trailers import check_trailers
from uvicorn.worker.files import declared_length, open_body
from uvicorn.worker.stream import Stream

logger = logging.getLogger("uvicorn.error")

# Stop reading from the socket while this much received body waits unread (SPEC: 64 KiB).
BODY_HIGH_WATER: Final = 64 * 1024
# A body the app never read is discarded after the response, up to this much; past it the
# connection is closed instead.
DISCARD_LIMIT: Final = 1024 * 1024

_DONE: Final = ResponseState.DONE
_IDLE: Final = ResponseState.IDLE
_NO_BODY: Final[list[bytes]] = []  # (see RequestCycle.received)


def _interim(status: Any) -> bool:
    """A 1xx status (an early hint, say): not yet the answer."""
    return type(status) is int and status < 200


# Subclassed at run time by interpreted classes (metrics.py, access_log.py; tests), which
# mypyc allows only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class RequestCycle:
    """Base of ``MessagingCycle`` and ``ASGICycle``; subclasses implement ``call_app()``."""

    __slots__ = (
        "stream",
        "response",  # the stream's, held: compiled, read without a lookup through the stream
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
        "body_size",  # request body bytes received, for --limit-request-body
        "trailers",  # announced trailer fields (unset until the app announces them)
        "_start",  # (ASGI) the held http.response.start
        "_request_done",  # (ASGI) the whole body was received
    )

    # ``del self.trailers`` (write_trailers): mypyc's native classes allow deleting only the
    # attributes named here (for the pure-Python build, a class attribute no one reads).
    __deletable__ = ("trailers",)
    trailers: list[tuple[bytes, bytes]]
    _start: tuple[Any, Any] | None

    def __init__(self, stream: Stream, response: BodyFraming, head: RequestHead,
                 client: list[Any] | None, scheme: str) -> None:  # fmt: skip
        """``response``: the stream's (``Response`` on HTTP/1.1, ``H2Response`` on HTTP/2),
        the same object for the whole of the request: its ``state`` (IDLE until the head is
        sent, STREAMING, then DONE), ``status`` and (HTTP/1.1) ``keep_alive``, whether the
        connection may serve another request."""
        self.stream = stream
        self.response = response
        self.head = head
        self.client = client
        self.scheme = scheme
        self.task: asyncio.Task[None] | None = None
        # Request body bytes not yet read by the app. (Shared while empty: a request without a
        # body allocates no list. Never appended to while empty: see feed_body.)
        self.received: list[bytes] = _NO_BODY
        self.unread = 0
        self.body_complete = False
        self.disconnected = False
        self.finished = False  # the app call returned
        self.expect_continue = head.expect_continue
        self.waiter: asyncio.Future[None] | None = None
        self.discarded = 0
        self.body_size = 0
        # (``trailers`` stays unset until announced: one store fewer per request.)

    def call_app(self) -> Awaitable[None]:
        """Start the app's call for this request (its coroutine, awaited by ``run()``)."""
        raise NotImplementedError

    async def run(self) -> None:
        """Call the app; whatever it does, leave the stream answered or ended."""
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
            state = self.response.state
            if state is not _DONE and self.disconnected:
                self.fail(None)  # it stopped because its client left (Starlette's streams do)
            elif state is not _DONE:
                self.fail(RuntimeError("app returned without completing its response" + (
                    "" if state is _IDLE
                    else " (the trailers it announced were not sent)"
                    if hasattr(self, "trailers")
                    else " (the last message had more_content=True)"
                )))  # fmt: skip
        finally:
            self.finished = True
            self.stream.finished(self)

    def fail(self, exc: BaseException | None) -> None:
        """The app raised ``exc`` (or was cancelled): log it, then 500 or end the stream."""
        if self.disconnected and (exc is None or isinstance(exc, ClientDisconnected)):
            return  # the app noticed its client left: nothing alarming
        if exc is not None:
            logger.error(
                "Exception in app for %s %s",
                self.head.method,
                self.head.raw_path.decode("latin-1"),
                exc_info=exc,
            )
        if self.response.state is _IDLE and not self.disconnected:
            self.stream.send_refusal(500)
        else:
            self.stream.abort()

    # The connection's side.

    def feed_body(self, data: bytes) -> None:
        if self.finished:
            self.discarded += len(data)
            if self.discarded > DISCARD_LIMIT:
                self.stream.abort()
            return
        limit = self.stream.state.limits.body
        if limit is not None:  # (without --limit-request-body, nothing is counted)
            size = self.body_size = self.body_size + len(data)
            if size > limit:
                self._too_large()
                return
        received = self.received
        if received:
            received.append(data)
        else:
            self.received = [data]
        self.unread += len(data)
        if self.unread > BODY_HIGH_WATER:
            self.stream.update_reading()
        self._wake()

    def _too_large(self) -> None:
        """The body (chunked, or HTTP/2 without a content-length) grew past
        --limit-request-body: RFC 9110 section 15.5.14, 413 (Content Too Large) if the response
        has not started, else the response is cut short; the client is stopped sending either
        way (``Stream.refuse_body``). The app is told its client is gone (SPEC), so it never
        receives more than the limit: what it has not read yet is dropped."""
        if self.disconnected:
            return  # (told already: the bytes still arriving are dropped)
        self.received = _NO_BODY
        self.unread = 0
        self.stream.refuse_body(413)
        self.connection_lost()

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
        waiter = self.waiter = self.stream.loop.create_future()
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
            self.stream.update_reading()
        return data

    async def read_body(self) -> tuple[bytes, bool, bool]:
        """Wait for body bytes; return (data, more to come, client gone)."""
        if self.expect_continue:
            # RFC 9110 section 10.1.1: 100 (Continue) only once the app wants the body, so a
            # response sent before that (a 413, say) spares the client its upload.
            self.expect_continue = False
            if self.response.state is _IDLE and not self.disconnected:
                self.stream.send_continue()
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
        stream = self.stream
        while not self.disconnected and not stream.peer_eof and not self._done():
            await self._wait()

    def _done(self) -> bool:
        return self.finished or self.response.state is _DONE

    def write_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        if self.disconnected:
            raise ClientDisconnected()
        if self.finished:
            raise RuntimeError("response already completed: the app's call has returned")
        stream = self.stream
        if self.expect_continue and not self.body_complete and not _interim(status):
            # A final answer before 100 Continue: the client will not send its body, so the
            # connection closes after it. RFC 9110 section 10.1.1 asks to say so in advance.
            self.response.keep_alive = False
        stream.send_start(status, headers, content, more)
        if not more and self.waiter is not None and self.response.state is _DONE:
            self._wake()

    def write_body(self, content: bytes, more: bool) -> None:
        if self.disconnected:
            raise ClientDisconnected()
        if self.finished:
            raise RuntimeError("response already completed: the app's call has returned")
        self.stream.send_body(content, more)
        if not more and self.waiter is not None:
            self._wake()

    async def write_file(self, start: tuple[Any, Any] | None, content: bytes, file: Any,
                         offset: Any, count: Any, more: bool) -> None:  # fmt: skip
        """A file's bytes as the response's next body bytes, after ``content`` (SPEC: ``file``;
        ASGI's pathsend and zerocopysend; ``files.open_body`` says what ``file``, ``offset`` and
        ``count`` may be). ``start``: (status, headers) of the response's head, sent first;
        without a content-length from the app it gets the file's, unless ``more`` is to come,
        and with one, a file from a path is sent for the length the app promised. OSError when
        the file cannot be opened: nothing is sent then (ASGI's held start is kept)."""
        if self.disconnected:
            raise ClientDisconnected()
        if self.finished:
            raise RuntimeError("response already completed: the app's call has returned")
        body = open_body(file, offset, count)
        stream = self.stream
        try:
            if start is not None:
                self._start = None  # (ASGI's, held until now)
                status, headers = start
                declared = declared_length(headers)
                if declared is None:
                    if not more:
                        length = b"%d" % (len(content) + body.count)
                        headers = [*headers, (b"content-length", length)]
                elif not body.given:
                    body.count = max(0, declared - len(content))  # what the app promised
                self.write_start(status, headers, content, True)
            elif content:
                self.write_body(content, True)
            if self.head.method == "HEAD":
                self.write_body(b"", more)  # none of the file
            else:
                try:
                    await stream.send_file(body.fd, body.offset, body.count, more)
                except ClientDisconnected:
                    self.disconnected = True
                    raise
                body.sent()
        finally:
            body.close()
        if not more and self.waiter is not None:
            self._wake()

    def write_trailers(self, fields: Any, more: bool = False) -> None:
        """Trailer fields (SPEC; ASGI's http.response.trailers), announced before (``trailers``
        set, and the body sent with more to come): they end the response, unless ``more`` are
        to come."""
        if self.disconnected:
            raise ClientDisconnected()
        if self.finished:
            raise RuntimeError("response already completed: the app's call has returned")
        trailers = getattr(self, "trailers", None)
        if trailers is None:
            raise RuntimeError("trailers sent without being announced in the response start")
        trailers += check_trailers(fields)
        if more:
            return
        del self.trailers
        self.stream.send_trailers(trailers)
        if self.waiter is not None:
            self._wake()


# ord("%"), for ``PERCENT in raw_path``: CPython tries the argument of bytes.__contains__ as an
# int first, and a bytes argument costs a raised and cleared TypeError on every request.
PERCENT: Final = ord("%")


def decode_path(raw_path: bytes) -> str:
    """Percent-decode, then UTF-8 decode with replacement characters (SPEC: ``path``)."""
    if PERCENT not in raw_path:
        # The parser admits only ASCII in a request target, so this cannot fail.
        return raw_path.decode("ascii")
    return unquote_to_bytes(raw_path).decode("utf-8", "replace")
