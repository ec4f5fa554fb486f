"""``WSGIAdapter(app)``: a messaging-interface app served by any WSGI server (gunicorn, uWSGI,
mod_wsgi, wsgiref).

The app's coroutines run on a private event loop in a background thread, so the adapter never
needs the WSGI server's thread to own a loop. The WSGI thread drives each request: it starts the
app on that loop, then waits on a queue for what the app asks of it: a response message to hand
to the WSGI server, or a chunk of ``wsgi.input`` to read (a blocking read, done on the WSGI
thread so that it never blocks the shared loop). The response goes back to the server as an
iterable that yields each chunk as the app sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from wsgiref.util import is_hop_by_hop

from uvicorn.adapters.environ import message_from_environ
from uvicorn.adapters.threads import LoopThread
from uvicorn.channels import channel_names
from uvicorn.exceptions import ClientDisconnected
from uvicorn.types import Channels, Message, MessagingApp

logger = logging.getLogger("uvicorn.error")

# Request body chunks are read from wsgi.input this size at a time.
CHUNK = 64 * 1024
_SEND, _READ, _DONE = 0, 1, 2
_CLOSED = {"content": b"", "closed": True, "more_content": False}
_NO_BODY = {"content": b"", "more_content": False}


class _Request:
    """One request, shared by the WSGI thread (``respond()`` and the response iterable) and
    the loop (the channels). ``queue`` carries the loop's requests to the WSGI thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, environ: dict[str, Any]) -> None:
        self.loop = loop
        self.environ = environ
        self.queue: queue.SimpleQueue[tuple[int, Any, Any]] = queue.SimpleQueue()
        self.sends: set[asyncio.Future[Any]] = set()  # the app's sends not yet taken
        self.reads: set[asyncio.Future[Any]] = set()  # the app's reads not yet answered
        self.started = False  # the loop's view: a start message was accepted
        self.complete = False  # the loop's view: the last message was accepted
        self.gone = False  # the WSGI server closed the response (or never took it)
        self.body_closed = False  # the client went away before the end of the body
        self.no_body = environ.get("REQUEST_METHOD") == "HEAD"
        self.remaining: int | None = 0  # body bytes still to read; None: until EOF
        length = environ.get("CONTENT_LENGTH")
        if length:
            with contextlib.suppress(ValueError):  # not a number: no body, as CGI says
                self.remaining = max(int(length), 0)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            self.remaining = None

    # The WSGI thread's side.

    def read(self) -> Message:
        """The next chunk of ``wsgi.input``, as a body channel message."""
        remaining = self.remaining
        if remaining == 0:
            return _CLOSED if self.body_closed else _NO_BODY
        want = CHUNK if remaining is None else min(remaining, CHUNK)
        try:
            data = self.environ["wsgi.input"].read(want)
        except Exception as exc:  # each server has its own errors for a client gone mid-body
            logger.debug("Reading the request body failed: %r", exc)
            self.remaining, self.body_closed = 0, True
            return _CLOSED
        if remaining is None:
            if not data:
                self.remaining = 0
            return {"content": data, "more_content": bool(data)}
        if len(data) < want:  # a short read: the client went away
            self.remaining, self.body_closed = 0, True
            return _CLOSED
        self.remaining = remaining - len(data)
        return {"content": data, "more_content": self.remaining > 0}

    def next_send(self) -> tuple[Any, Any]:
        """Serve reads until the app sends a message (returned with its ack future); raise
        the app's exception if it ends first."""
        while True:
            kind, payload, future = self.queue.get()
            if kind == _SEND:
                return payload, future
            if kind == _READ:
                self.loop.call_soon_threadsafe(_resolve, future, self.read())
            else:
                if payload is not None:
                    raise payload
                raise RuntimeError(
                    "app returned without "
                    + ("completing its response" if self.started else "starting a response")
                )

    def ack(self, future: Any) -> None:
        self.loop.call_soon_threadsafe(_resolve, future, None)

    def wait_done(self) -> None:
        """After the last message: serve reads until the app returns, and log its exception
        (the response is complete: it is too late to tell the client)."""
        while True:
            kind, payload, future = self.queue.get()
            if kind == _READ:
                self.loop.call_soon_threadsafe(_resolve, future, self.read())
            elif kind == _DONE:
                if payload is not None:
                    logger.error("Exception in app after its response", exc_info=payload)
                return

    def close(self) -> None:
        """The WSGI server is done with the response: the app's sends from now on raise
        ``ClientDisconnected`` and its reads return ``closed``."""
        if not self.gone:
            self.gone = True
            self.loop.call_soon_threadsafe(self._abort)

    # The loop's side.

    def _abort(self) -> None:
        for future in self.sends:
            if not future.done():
                future.set_exception(ClientDisconnected())
        for future in self.reads:
            _resolve(future, _CLOSED)
        self.sends.clear()
        self.reads.clear()

    async def wait(self, kind: int, payload: Any) -> Any:
        """Hand ``payload`` to the WSGI thread; wait for its answer."""
        future = self.loop.create_future()
        pending = self.reads if kind == _READ else self.sends
        pending.add(future)
        self.queue.put((kind, payload, future))
        try:
            return await future
        finally:
            pending.discard(future)

    async def run(self, app: MessagingApp, message: Message, channels: Channels) -> None:
        error: BaseException | None = None
        try:
            await app(message, channels)
        except BaseException as exc:
            error = exc
        self.queue.put((_DONE, error, None))


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


class _ReplyChannel:
    """``channels['reply']``: checks each message as our server does (SPEC.md, "The reply
    channel"), then hands it to the WSGI thread and waits until that thread takes it."""

    def __init__(self, request: _Request) -> None:
        self._request = request
        self.name = channel_names.new("reply")

    async def send(self, message: Message) -> None:
        request = self._request
        if not isinstance(message, dict):
            raise TypeError(f"invalid message {message!r}: must be a dict")
        if request.complete:
            raise RuntimeError("a message was sent after the response completed")
        content = _check_bytes(message.get("content", b""), "content")
        more = bool(message.get("more_content", False))
        if request.started:
            if "status" in message:
                raise RuntimeError("the response already started: 'status' is not allowed")
            item: Any = (content, more)
        elif "status" not in message:
            if "headers" in message:
                raise ValueError(f"missing 'status' in the response start {message!r}")
            raise RuntimeError(
                "a response chunk was sent before the response started: the first message "
                "needs a 'status'"
            )
        else:
            status = _status_line(message["status"])
            item = (status, _headers(message.get("headers", [])), content, more)
        if request.gone:
            raise ClientDisconnected()
        request.started = True
        request.complete = not more
        await request.wait(_SEND, item)

    def __repr__(self) -> str:
        return f"<WSGIAdapter reply channel {self.name}>"


class _BodyChannel:
    """``channels['body']``: the rest of ``wsgi.input``, read by the WSGI thread."""

    def __init__(self, request: _Request) -> None:
        self._request = request
        self.name = channel_names.new("body")

    async def receive(self) -> Message:
        if self._request.gone:
            return _CLOSED
        result: Message = await self._request.wait(_READ, None)
        return result

    def __repr__(self) -> str:
        return f"<WSGIAdapter body channel {self.name}>"


class _ResponseBody:
    """The iterable returned to the WSGI server: each chunk as the app sends it."""

    def __init__(self, request: _Request, first: bytes, body: bool) -> None:
        self._request = request
        self._first = first
        self._body = body  # False for HEAD, 1xx, 204 and 304: no body bytes
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._first:
            chunk, self._first = self._first, b""
            return chunk
        request = self._request
        while not self._complete:
            message, future = request.next_send()
            content: bytes
            content, more = message
            # Taking the message ends the app's send(); its next one waits until the server
            # asks for the next chunk, having written this one: back-pressure.
            request.ack(future)
            self._complete = not more
            if content and self._body:
                return content
        request.wait_done()
        raise StopIteration

    def close(self) -> None:
        self._request.close()


class WSGIAdapter:
    """Serve the messaging-interface app ``app`` as a WSGI application."""

    def __init__(self, app: MessagingApp) -> None:
        self.app = app
        self._loop_thread = LoopThread()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> _ResponseBody | list[bytes]:
        loop = self._loop_thread.loop
        request = _Request(loop, environ)
        # The request message carries what can be read without waiting on the client for long:
        # a body of known length up to one chunk. The rest comes through channels['body'].
        body = b""
        if request.remaining:
            first = request.read()
            body = first["content"]
        message = message_from_environ(environ, body)
        channels: Channels = {"reply": _ReplyChannel(request)}
        if request.remaining != 0 or request.body_closed:
            channels["body"] = _BodyChannel(request)
        asyncio.run_coroutine_threadsafe(request.run(self.app, message, channels), loop)
        try:
            (status, headers, content, more), future = request.next_send()
        except BaseException:
            request.close()
            raise  # before the response started: the WSGI server answers 500 and logs it
        code = int(status[:3])
        has_body = not request.no_body and code >= 200 and code not in (204, 304)
        # SPEC.md: a response complete in its first message gets its Content-Length.
        if (
            not more
            and (has_body or request.no_body)
            and not any(name.lower() == "content-length" for name, _ in headers)
        ):
            headers.append(("Content-Length", str(len(content))))
        try:
            start_response(status, headers)
        except BaseException:
            request.close()
            raise
        request.ack(future)
        if more:
            return _ResponseBody(request, content if has_body else b"", has_body)
        request.wait_done()
        return [content] if has_body and content else []

    def __repr__(self) -> str:
        return f"WSGIAdapter({self.app!r})"


def _status_line(status: Any) -> str:
    if type(status) is not int:
        raise TypeError(f"invalid 'status' {status!r}: must be an int")
    if not 200 <= status <= 599:
        # WSGI has no interim (1xx) responses: start_response sets the final one.
        raise ValueError(f"invalid 'status' {status}: must be 200-599 under WSGI")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"{status} {phrase}"


def _headers(headers: Any) -> list[tuple[str, str]]:
    result = []
    try:
        pairs = list(headers)
    except TypeError:
        raise TypeError(f"invalid 'headers' {headers!r}: must be a list of pairs") from None
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise TypeError(f"invalid header {pair!r}: must be a [name, value] pair") from None
        name = _check_bytes(name, "header name")
        value = _check_bytes(value, "header value")
        if any(c in name + value for c in (b"\r", b"\n", b"\0")) or not name:
            raise ValueError(f"invalid header {[name, value]!r}: empty name or CR, LF or NUL")
        text = name.decode("latin-1")
        # PEP 3333 forbids hop-by-hop headers (Connection, Transfer-Encoding, ...) from apps:
        # the WSGI server owns the connection and the framing.
        if not is_hop_by_hop(text):
            result.append((text, value.decode("latin-1")))
    return result


def _check_bytes(value: Any, key: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"invalid {key!r} {value!r}: must be bytes, got {type(value).__name__}")
