"""One HTTP/1.1 connection: the uvloop protocol that moves bytes between the socket and the pure
cores, and the ``Stream`` of the request it answers.

``HTTPConnection`` feeds received bytes to the request parser and hands the events to request
cycles; ``H1Connection`` (``protocols/http_connection.py``) decides the order (pipelined requests
are answered one at a time), the keep-alive and the deadlines, and this class does what it
decides: starts requests, writes, arms its one timer, closes, and on an upgrade hands the socket
over (``handover.py``). It frames each response with one ``Response`` it reuses. Writing is
``TransportProtocol``'s.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Any, Final, cast

from uvicorn.compiled import mypyc_attr
from uvicorn.protocols.http_connection import H1Connection, Next, PendingUpgrade, Timer
from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    ParserState,
    Preface,
    RequestHead,
    RequestParser,
    Upgrade,
)
from uvicorn.protocols.http_response import Response, ResponseState, simple_response
from uvicorn.protocols.http_trailers import accepts_trailers, trailer_section
from uvicorn.worker.cycle import BODY_HIGH_WATER, RequestCycle
from uvicorn.worker.files import same_host, send_chunks, send_direct
from uvicorn.worker.handover import Handover
from uvicorn.worker.http2 import alpn
from uvicorn.worker.state import ServerState
from uvicorn.worker.stream import Stream
from uvicorn.worker.tls_info import tls_extension

logger = logging.getLogger("uvicorn.error")

# Tasks that start running when created (asyncio.Task's eager_start), from Python 3.12.
EAGER_TASKS: Final = sys.version_info >= (3, 12)
_Task: Final = asyncio.Task  # (compiled: a static, not the module's attribute looked up)

_PARSER_HEAD: Final = ParserState.HEAD
_PARSER_UPGRADED: Final = ParserState.UPGRADED
_IDLE: Final = ResponseState.IDLE
_DONE: Final = ResponseState.DONE
_START: Final = Next.START
_IDLE_NEXT: Final = Next.IDLE
_CLOSE: Final = Next.CLOSE
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


@mypyc_attr(native_class=False)
class _Lifetime:
    """Freed with the one connection that holds it: what a weak reference that follows the
    connection's life refers to. Not the connection itself: mypyc (2.4, CPython 3.11) frees a
    compiled object without clearing the weak references to it, which then crash."""


class HTTPConnection(Handover, Stream):
    h1: H1Connection[RequestCycle]  # made by connection_made()

    def __init__(self, state: ServerState, corked: bool = False, local: Any = None) -> None:
        """``corked``: accepted from a listener corked with TCP_CORK (``transport.py``);
        ``local``: the address of every connection of its listener, if it has one
        (``state.shared_local_address``)."""
        super().__init__(state.loop)
        self.state = state
        self.corked = corked
        self._local = local
        self._handshake: weakref.ref[_Lifetime] | None = None
        if state.scheme == "https":
            # Made at accept, told of its connection only once the TLS handshake ends (never
            # if it fails): counted meanwhile, for a retiring worker (ServerState.handshakes).
            # Nothing refers back to it till then (the parser would: made in connection_made),
            # so a failed handshake's protocol is freed at once, its weak reference with it
            # (to its _Lifetime, which it alone holds).
            self._lifetime = _Lifetime()
            self._handshake = weakref.ref(self._lifetime, state.handshake_ended)
            state.handshakes.add(self._handshake)
        self.response: Response = Response(state.defaults, False, "1.1", True)  # of h1.current
        self.client: list[Any] | None = None
        self.server: list[Any] | None = None
        self.scheme = state.scheme
        self.tls: dict[str, Any] | None = None  # (TLS: made once the handshake has ended)
        self.trusted = False  # the peer may set proxy headers
        self._task_factory_free = self.loop.get_task_factory() is None

    @property
    def peer_eof(self) -> bool:
        return self.h1.peer_eof

    @property
    def write_blocked(self) -> bool:
        return self.write_paused

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The app's call in flight, if any."""
        current = self.h1.current
        return [current.task] if current is not None and current.task is not None else []

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, hence no isinstance.
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        self.h1 = H1Connection(
            RequestParser(state.limits, state.upgrades),
            state.timeout_keep_alive,
            state.timeout_request_head,
        )
        self.client, self.server = state.addresses(transport, self._local)
        self.trusted = state.proxy is not None and state.proxy.trusts(self.client)
        if self.scheme == "https":  # (once per connection: shared by its requests)
            self.tls = tls_extension(transport, state.config.ssl_certfile)
        if self.scheme == "https" and state.h2 is not None and alpn(transport) == "h2":
            # RFC 9113 section 3.3: negotiated by TLS ALPN.
            self._to_h2(b"", False, None)
        else:
            state.connections.add(self)
            if self.h1.idle(self.loop.time()) is _CLOSE:
                self.close()
            else:  # its timer armed a little later, if it is still needed then
                self._timer_at = self.h1.deadline
                state.put_off_timer(self, self._timer_at)
            if state.shutting_down:  # its TLS handshake ended as the worker retires
                self.linger()  # (answered once more, as the other open connections are)
        if self._handshake is not None:
            state.handshake_ended(self._handshake)

    def data_received(self, data: bytes) -> None:
        h1 = self.h1
        parser = h1.parser
        if parser.state is _PARSER_UPGRADED:
            # Bytes of the new protocol, arriving while the responses before the upgrade
            # request are still being sent: kept for it.
            for item in h1.pipeline:
                if type(item) is PendingUpgrade:
                    item.data += data
            return
        start = None
        upgrading: RequestHead | None = None
        queued = False
        for event in parser.receive_data(data):
            if event is END_OF_REQUEST:
                reading = h1.reading
                if reading is not None:
                    h1.reading = None
                    reading.end_body()
                continue
            kind = type(event)
            if kind is Body:
                reading = h1.reading
                if reading is not None:
                    reading.feed_body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                if event.upgrade is not None:  # type: ignore[union-attr]
                    # An Upgrade event ends this list: no request cycle for this one.
                    upgrading = cast(RequestHead, event)
                    continue
                cycle = self.state.cycle_class(self, self.response, event, self.client, self.scheme)
                # The current request from now on (it starts after this loop), so that a bad
                # request later in the same data waits its turn behind it.
                if h1.request(cycle):
                    start = cycle
                else:
                    queued = True
            elif kind is BadRequest:
                self._bad_request(event)  # type: ignore[arg-type]
            elif kind is Preface:
                if self.state.h2 is not None and h1.current is None and not h1.pipeline:
                    self._to_h2(event.data, True, None)  # type: ignore[union-attr]
                    return
                self._bad_request(BadRequest(505, "HTTP/2 is not served here (--http 1.1)"))
            elif kind is Upgrade:
                assert upgrading is not None
                pending = PendingUpgrade(upgrading, event.data)  # type: ignore[union-attr]
                if h1.upgrade(pending):
                    self._upgrade(pending)
                    return
                queued = True  # switched once the responses before it are done
        if start is not None:
            if not self.closed:  # a broken body in the same data may have closed it
                self._start_cycle(start)
        elif h1.current is None and parser.state is _PARSER_HEAD:
            # The timer may be armed for the (later) keep-alive deadline: bring it forward,
            # or a head trickled slowly would be given the keep-alive timeout instead.
            deadline = h1.head_begun(self.loop.time())
            if deadline is not None:
                self._arm(deadline)
        if queued:  # (and whenever the parser held bytes back: a batch completed first)
            self.update_reading()

    def eof_received(self) -> bool | None:
        # The client will send nothing more; a half-closed client may still read its answer.
        h1 = self.h1
        if not h1.eof():
            return None  # nothing to answer, or a body that will never complete: close
        assert h1.current is not None
        h1.current.client_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.h1.parser.close()
        self.state.forget(self)
        self._cancel_timer()
        self._lost()

    def _lost(self) -> None:
        """The client is gone: tell the requests in flight (once)."""
        super()._lost()
        for cycle in self.h1.lost():
            cycle.connection_lost()

    # Reading.

    def update_reading(self) -> None:
        reading = self.h1.reading
        self._pause_reading(
            self.h1.must_pause(reading.unread if reading is not None else 0, BODY_HIGH_WATER)
        )

    # Request cycles.

    def _start_cycle(self, cycle: RequestCycle, eager: bool = True) -> None:
        """Call the app for ``cycle``; ``eager`` (Python 3.12+) runs the call at once, up to
        where it first waits, rather than from the event loop's queue."""
        state = self.state
        h1 = self.h1
        h1.head_started = None  # its head is whole: no head clock runs
        head = cycle.head
        if state.limit_concurrency is not None and state.at_capacity():
            logger.warning(
                "Too many in flight (--limit-concurrency %d): 503", state.limit_concurrency
            )
            self.write(simple_response(state.defaults, 503, head=head.method == "HEAD"), True)
            if state.access_log:
                state.log_access(cycle, 503)
            self.close()
            return
        state.active += 1
        # Response.reset(), inlined (a call fewer per request).
        is_head = head.method == "HEAD"
        response = self.response
        response.state = _IDLE
        response.keep_alive = head.keep_alive and not h1.closing
        response.status = 0
        response._is_head = is_head
        response._http10 = head.http_version == "1.0"
        response._chunked = False
        response._remaining = -1
        response._no_body = is_head
        if head.proxied and self.trusted:
            cycle.client, cycle.scheme = state.proxy.resolve(  # type: ignore[union-attr]
                head.headers, cycle.client, cycle.scheme
            )
        if self._task_factory_free:
            # What loop.create_task() does without a task factory, minus the "Task-<n>" name
            # that CPython formats for every task.
            if EAGER_TASKS and eager:
                # An eager task is a real Task (current_task() is right for the app), but an
                # app that answers without waiting finishes here, never queued in the loop.
                cycle.task = _Task(  # type: ignore[call-arg]
                    cycle.run(), loop=self.loop, name="uvicorn.request", eager_start=True
                )
            else:
                cycle.task = _Task(cycle.run(), loop=self.loop, name="uvicorn.request")
        else:
            cycle.task = self.loop.create_task(cycle.run())

    # The Stream of the request being answered (stream.py).

    def send_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        response = self.response
        data = response.start(status, headers, content, more)
        if data:  # (the last bytes before a close are queued for it: see finished())
            self.write(data, not more and response.keep_alive)

    def send_body(self, content: bytes, more: bool) -> None:
        response = self.response
        try:
            data = response.body(content, more)
        except RuntimeError:
            if response.state is _DONE and not response.keep_alive:
                self.close()  # the body broke its declared length: never half written
            raise
        if data or not more:
            self.write(data, not more and response.keep_alive)

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        response = self.response
        current = self.h1.current
        wanted = fields and current is not None and accepts_trailers(current.head.headers)
        try:
            data = response.end_with_trailers(trailer_section(fields) if wanted else b"")
        except RuntimeError:
            if response.state is _DONE and not response.keep_alive:
                self.close()  # the body broke its declared length: never half written
            raise
        self.write(data, response.keep_alive)

    async def send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        if self.scheme == "https":  # TLS: the bytes go through the SSL object, in pieces
            await send_chunks(self, fd, offset, count, more)
        else:
            local = same_host(self.client, self.server)
            await send_direct(self, self.response, fd, offset, count, more, local)

    async def drain(self) -> None:
        # TransportProtocol's, named here: mypyc (2.4) fails to build the vtable of a trait's
        # coroutine method that only a non-trait base class implements.
        await super().drain()

    def send_continue(self) -> None:
        self.write(_CONTINUE, True)

    def send_refusal(self, status: int) -> None:
        self.write(self.response.refuse(status), True)

    def abort(self) -> None:
        self.response.abandon()
        self.close()

    def refuse_body(self, status: int) -> None:
        # As a body that broke its framing: the rest is never read (the connection closes once
        # answered), and a request still waiting its turn is answered in its turn.
        self._bad_request(BadRequest(status, "request body larger than --limit-request-body"))

    def finished(self, cycle: RequestCycle) -> None:
        """The app call of ``cycle`` returned: reuse the connection or close it."""
        state = self.state
        state.active -= 1
        response = self.response
        if state.access_log:
            state.log_access(cycle, response.status)
        if state.shutting_down and state.active == 0:
            state.drained()
        h1 = self.h1
        if self.closed:
            h1.current = None
            return
        body_complete = cycle.body_complete
        then = h1.finished(
            response.state is _DONE,
            response.keep_alive,
            body_complete,
            cycle.expect_continue,
            self.loop.time(),
        )
        if then is _CLOSE:  # (corked on plain TCP: the response's last bytes leave with the FIN)
            tcp = self.scheme == "http" and self.client is not None  # (not TLS, not Unix)
            self.close_corked() if body_complete and tcp else self.close()
            return
        if not body_complete:
            cycle.take_body()  # discard; what still arrives is counted by feed_body
        if then is _IDLE_NEXT:
            deadline = h1.deadline
            if self._timer is None or self._timer_at > deadline:
                self._arm(deadline)  # else the timer, firing earlier, re-arms itself
            if self.read_paused:
                if h1.parser.held:
                    # The next batch of a long pipeline (reading stays paused): from the loop,
                    # not from inside this call, which would nest one call per batch.
                    self.loop.call_soon(self._parse_held)
                else:
                    self.update_reading()
        elif then is _START:
            self.update_reading()
            # Not eager: it would finish inside this call and start the next one from there,
            # one stack frame deeper for each pipelined request.
            self._start_cycle(h1.current, eager=False)  # type: ignore[arg-type]
        elif then is Next.REFUSE:
            assert h1.refusal is not None
            self._answer_bad_request(h1.refusal)
        else:
            assert h1.upgrading is not None
            self._upgrade(h1.upgrading)

    def _parse_held(self) -> None:
        if not self.closed and self.h1.current is None:
            self.data_received(b"")
            self.update_reading()  # read again once nothing is held or queued

    def _bad_request(self, error: BadRequest) -> None:
        h1 = self.h1
        broken = h1.bad_request(error)
        if broken is not None:
            # The body of the request being answered broke its framing: nothing after it can
            # be trusted. Answer 400 if the request is still unanswered, then close.
            broken.connection_lost()
            if self.response.state is _IDLE:
                self.response.abandon()
                self.response.status = error.status  # (for the access log)
                self._answer_bad_request(error)
            else:
                self.close()
        elif h1.refusal is not None:
            h1.refusal = None
            self._answer_bad_request(error)
        else:
            self.update_reading()  # answered in its turn

    def _answer_bad_request(self, error: BadRequest) -> None:
        logger.debug("Bad request from %s: %s", self.client, error.reason)
        self.state.refused(error.status)
        self.write(simple_response(self.state.defaults, error.status, error.reason), True)
        self.close()

    # Timers: the keep-alive and request-head deadlines share the connection's one timer.

    def _on_timer(self) -> None:
        if self.closed:
            return
        what = self.h1.timer(self.loop.time())
        if what is Timer.REARM:
            self._arm(self.h1.deadline)
        elif what is Timer.TIMEOUT:
            # RFC 9110 section 15.5.9: 408 (Request Timeout) for a head that never completed.
            self._answer_bad_request(BadRequest(408, "request head not received in time"))
        elif what is Timer.CLOSE:
            self.close()


# (Here, not in server.py: server.py is not compiled, and with mypyc an interpreted class
# cannot inherit from a compiled one.)
class HTTP2OnlyConnection(HTTPConnection):
    """--http 2: a connection that does not switch to HTTP/2 is refused its requests."""

    def _start_cycle(self, cycle: RequestCycle, eager: bool = True) -> None:
        self.write(
            simple_response(self.state.defaults, 505, "HTTP/1.1 is not served here (--http 2)"),
            True,
        )
        if self.state.access_log:
            self.state.log_access(cycle, 505)
        self.close()
