"""``ASGIAdapter(wsgi_app)``: a WSGI (PEP 3333) application served through the messaging
interface, so Flask or Django runs on our server (``--interface wsgi``).

The WSGI app runs on a thread of a bounded pool, so the event loop never blocks. Each time it
needs the loop (to send part of the response, or to read more of the request body), its thread
asks the request's task and waits for the answer: the task does the awaiting, so the reply
channel's back-pressure holds the thread, and cancelling the task (a shutdown) releases it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.adapters.environ import InputStream, build_environ
from uvicorn.adapters.threads import ThreadPool
from uvicorn.exceptions import ClientDisconnected
from uvicorn.types import Channels, Message

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_SEND, _RECEIVE, _FINISH = 0, 1, 2
_Op = tuple[int, Any, "concurrent.futures.Future[Any] | None"]


class _Bridge:
    """The request's task (on the loop) and the WSGI app's thread, talking through a queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, channels: Channels) -> None:
        self.loop = loop
        self.reply = channels["reply"]
        self.body: Any = channels.get("body")
        self.ops: deque[_Op] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.pending: concurrent.futures.Future[Any] | None = None  # the thread's last send

    # The thread's side.

    def _call(self, kind: int, arg: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            self.loop.call_soon_threadsafe(self._put, (kind, arg, future))
        except RuntimeError:  # the loop is closed: the server has gone
            future.set_exception(ClientDisconnected())
        return future

    def send(self, message: Message) -> None:
        """Send a reply message that is not the last. The thread goes on producing the next
        chunk while the loop sends this one, but waits here while the previous one is still
        being sent: back-pressure, with a single message in flight."""
        self.flush()
        self.pending = self._call(_SEND, message)

    def flush(self) -> None:
        """Wait until the last message sent is sent; raise what its ``send()`` raised."""
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.result()

    def receive(self) -> tuple[bytes, bool]:
        """The next chunk of the request body, for ``wsgi.input``."""
        self.flush()
        chunk = self._call(_RECEIVE, None).result()
        if chunk.get("closed"):
            # A short body must not pass for a complete one: the app would act on half an
            # upload. OSError, like a socket's read error in any other WSGI server.
            raise ClientDisconnected("the client went away before sending the whole body")
        return chunk["content"], chunk["more_content"]

    def finish(self, final: Message | None, error: BaseException | None) -> None:
        """The app is done: its last message to send, or the exception it raised."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self._put, (_FINISH, (final, error), None))

    # The loop's side.

    def _put(self, op: _Op) -> None:
        if self.closed:
            if op[2] is not None:
                op[2].set_exception(ClientDisconnected())
            return
        self.ops.append(op)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def serve(self) -> None:
        """Do what the thread asks until it finishes, then send its last message or raise
        its exception (the messaging layer answers 500 or closes, and logs it)."""
        ops = self.ops
        future: concurrent.futures.Future[Any] | None = None
        try:
            while True:
                while not ops:
                    self.waiter = self.loop.create_future()
                    await self.waiter
                kind, arg, future = ops.popleft()
                if future is None:
                    break
                try:
                    if kind == _SEND:
                        result = await self.reply.send(arg)
                    else:
                        result = await self.body.receive()
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            # On cancellation, release the thread from its wait: its next call fails, it
            # unwinds, and the iterable's close() runs.
            self.closed = True
            if future is not None and not future.done():
                future.set_exception(ClientDisconnected())
            while ops:
                leftover = ops.popleft()[2]
                if leftover is not None:
                    leftover.set_exception(ClientDisconnected())
        final, error = arg
        if error is not None:
            raise error
        if final is not None:
            await self.reply.send(final)


class _WSGICall:
    """One call of the WSGI app, on a pool thread: ``start_response``, ``write()``, and the
    iteration of the app's result."""

    def __init__(self, app: WSGIApp, environ: dict[str, Any], bridge: _Bridge) -> None:
        self.app = app
        self.environ = environ
        self.bridge = bridge
        self.status: int | None = None
        self.headers: list[list[bytes]] = []
        self.headers_sent = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: "if exc_info is provided, and the HTTP headers have already
                    # been sent, start_response must raise an error, and should re-raise using
                    # the exc_info tuple". The messaging layer then closes the connection.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: avoid a cycle through the traceback's frames
        elif self.status is not None:
            # PEP 3333: "It is a fatal error to call start_response without the exc_info
            # argument if start_response has already been called".
            raise RuntimeError("start_response() called a second time without exc_info")
        self.status = _parse_status(status)
        self.headers = _encode_headers(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()`` callable, for apps of the CGI era: it returns once the data
        is queued for sending, and blocks while the client is not reading."""
        if self.status is None:
            raise RuntimeError("write() called before start_response()")
        data = _check_bytes(data)
        if data:
            self.bridge.send(self._message(data, True))

    def _message(self, content: bytes, more: bool) -> Message:
        # PEP 3333: the server must not send the headers "until the first non-empty
        # bytestring is yielded or the iterable is exhausted"; so they travel with that chunk,
        # and a change of mind through exc_info until then still counts.
        if self.headers_sent:
            return {"content": content, "more_content": more}
        if self.status is None:
            raise RuntimeError("the WSGI app returned its body before calling start_response()")
        self.headers_sent = True
        return {"status": self.status, "headers": self.headers, "content": content,
                "more_content": more}  # fmt: skip

    def run(self) -> None:
        final: Message | None = None
        error: BaseException | None = None
        try:
            result = self.app(self.environ, self.start_response)
            try:
                final = self._iterate(result)
                self.bridge.flush()
            finally:
                # PEP 3333: "If the iterable returned by the application has a close()
                # method, the server or gateway must call that method upon completion of the
                # current request, whether the request was completed normally, or terminated
                # early due to an application error during iteration or an early disconnect".
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            error = exc
        except BaseException as exc:
            # SystemExit or KeyboardInterrupt in a WSGI app ends its request, not the server.
            error = RuntimeError(f"the WSGI app raised {exc!r}")
            error.__cause__ = exc
        self.bridge.finish(final, error)

    def _iterate(self, result: Iterable[bytes]) -> Message:
        """Send the body as it is produced; return the last message, which ends it."""
        # PEP 3333 lets the server use len() of a list or tuple: its last item can end the
        # response, so a body in one piece goes out in one message, with a Content-Length.
        remaining = len(result) if type(result) in (list, tuple) else -1  # type: ignore[arg-type]
        for chunk in result:
            chunk = _check_bytes(chunk)
            remaining -= 1
            if remaining == 0:
                return self._message(chunk, False)
            if chunk:
                self.bridge.send(self._message(chunk, True))
        return self._message(b"", False)


class ASGIAdapter:
    """Serve the WSGI application ``app`` as a messaging-interface app.

    ``threads``: how many requests the app handles at once (more wait their turn);
    ``multiprocess``: what ``wsgi.multiprocess`` says (true when several worker processes
    serve the same app)."""

    def __init__(self, app: WSGIApp, threads: int = 10, multiprocess: bool = False) -> None:
        self.app = app
        self.multiprocess = multiprocess
        self._pool = ThreadPool(threads)

    async def __call__(self, message: Message, channels: Channels) -> None:
        channel = message.get("channel")
        if channel != "http.request":
            if channel == "websocket.connect":
                # WSGI has no WebSockets: refused (403), as SPEC.md's handshake says.
                await channels["reply"].send({"close": True})
            return
        bridge = _Bridge(asyncio.get_running_loop(), channels)
        fetch = bridge.receive if "body" in channels else None
        wsgi_input = InputStream(message.get("body", b""), fetch)
        environ = build_environ(message, wsgi_input, self.multiprocess)
        self._pool.submit(_WSGICall(self.app, environ, bridge).run)
        await bridge.serve()

    def __repr__(self) -> str:
        return f"ASGIAdapter({self.app!r})"


def _parse_status(status: Any) -> int:
    # PEP 3333: "a string like '200 OK'": a three-digit code, a space and a reason phrase.
    # Only the code travels on; the server sends the standard reason phrase.
    if (
        type(status) is not str
        or len(status) < 3
        or not status[:3].isdigit()
        or (len(status) > 3 and status[3] != " ")
    ):
        raise ValueError(f"invalid WSGI status {status!r}: expected a string like '200 OK'")
    return int(status[:3])


def _encode_headers(headers: Any) -> list[list[bytes]]:
    if type(headers) is not list:
        raise TypeError(f"invalid WSGI headers {headers!r}: PEP 3333 requires a list")
    encoded = []
    for item in headers:
        try:
            name, value = item
            encoded.append([name.encode("latin-1"), value.encode("latin-1")])
        except (AttributeError, ValueError, TypeError, UnicodeEncodeError):
            raise TypeError(
                f"invalid WSGI header {item!r}: expected a (name, value) tuple of latin-1 str"
            ) from None
    return encoded


def _check_bytes(data: Any) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(
        f"invalid WSGI body chunk {data!r}: PEP 3333 requires bytes, got {type(data).__name__}"
    )
