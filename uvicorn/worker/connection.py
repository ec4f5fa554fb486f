"""One HTTP/1.1 connection: moves bytes between the socket and the pure protocol cores.

``HTTPConnection`` feeds received bytes to ``RequestParser`` and hands the events to request
cycles, answering pipelined requests in order, one at a time. It owns everything tied to the
socket: read pausing (body back-pressure, pipelining), write coalescing and draining, the
keep-alive and request-head timers, and closing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_parser import (
    BadRequest,
    Body,
    EndOfRequest,
    ParserState,
    RequestHead,
    RequestParser,
    Upgrade,
)
from uvicorn.protocols.http_response import ResponseState, simple_response
from uvicorn.worker.cycle import BODY_HIGH_WATER, RequestCycle

if TYPE_CHECKING:
    from uvicorn.worker.state import ServerState

logger = logging.getLogger("uvicorn.error")

# Writes smaller than this are gathered until the loop next waits for I/O, so a response
# streamed in many small sends leaves in few packets; bigger ones go straight to the socket.
COALESCE_LIMIT = 64 * 1024
_PARSER_IDLE = ParserState.IDLE
_PARSER_HEAD = ParserState.HEAD
_PARSER_BODY = ParserState.BODY


class HTTPConnection(asyncio.Protocol):
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = state.loop
        self.parser = RequestParser(state.limits, state.upgrades)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client: list[Any] | None = None
        self.server: list[Any] | None = None
        self.scheme = state.scheme
        self.trusted = False  # the peer may set proxy headers
        self.cycle: RequestCycle | None = None  # the request being answered
        self.reading: RequestCycle | None = None  # the request whose body is arriving
        self.pipeline: deque[RequestCycle | BadRequest] = deque()
        self.closing = state.shutting_down  # answer what is in flight, then close
        self.closed = False
        self.peer_eof = False  # the client shut down its sending side
        self.read_paused = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._idle_since = 0.0
        self._head_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, hence no isinstance.
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        state.connections.add(self)
        self.client, self.server = state.addresses(transport)
        self.trusted = state.proxy is not None and state.proxy.trusts(self.client)
        self._become_idle()

    def data_received(self, data: bytes) -> None:
        start = None
        queued = False
        for event in self.parser.receive_data(data):
            kind = type(event)
            if kind is Body:
                reading = self.reading
                if reading is not None:
                    reading.feed_body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                cycle = self.state.cycle_class(self, event)
                self.reading = cycle
                if self.cycle is None:
                    # The current request from now on (it starts after this loop), so that a
                    # bad request later in the same data waits its turn behind it.
                    self.cycle = start = cycle
                else:
                    self.pipeline.append(cycle)
                    queued = True
            elif kind is EndOfRequest:
                reading = self.reading
                if reading is not None:
                    self.reading = None
                    reading.end_body()
            elif kind is BadRequest:
                self._bad_request(event)  # type: ignore[arg-type]
            elif kind is Upgrade:
                self.state.upgrade(self, event)  # type: ignore[arg-type]
        if start is not None:
            if not self.closed:  # a broken body in the same data may have closed it
                self._start_cycle(start)
        elif (
            self._head_started is None and self.cycle is None and self.parser.state is _PARSER_HEAD
        ):
            now = self._head_started = self.loop.time()
            # The timer may be armed for the (later) keep-alive deadline: bring it forward,
            # or a head trickled slowly would be given the keep-alive timeout instead.
            self._arm(now + self.state.timeout_request_head)
        if queued:
            self.update_reading()

    def eof_received(self) -> bool | None:
        # The client will send nothing more; a half-closed client may still read its answer.
        if self.reading is not None or self.cycle is None:
            return None  # nothing to answer, or a body that will never complete: close
        self.closing = True
        self.peer_eof = True
        self.cycle.client_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lost()

    def _lost(self) -> None:
        """The client is gone: tell the requests in flight (once)."""
        self.closed = True
        for cycle in (self.cycle, self.reading):
            if cycle is not None:
                cycle.connection_lost()
        self.pipeline.clear()
        self._out.clear()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # Writing.

    def write(self, data: bytes, flush: bool) -> None:
        """Queue ``data``; ``flush`` sends everything queued now (a response's last bytes)."""
        if self.closed:
            return
        out = self._out
        if out:
            out.append(data)
            self._out_size += len(data)
            if flush or self._out_size > COALESCE_LIMIT:
                self._flush()
        elif flush or len(data) > COALESCE_LIMIT:
            self._send(data)
        else:
            out.append(data)
            self._out_size = len(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and not self.closed:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._out_size = 0
            self._send(data)

    def _send(self, data: bytes) -> None:
        transport = self.transport
        transport.write(data)
        if transport.is_closing():
            # The write failed (the client reset the connection) and connection_lost() is
            # only scheduled: an app streaming in a loop that yields nowhere but in send()
            # would otherwise write into the void, never letting that callback run.
            self._lost()

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        if self.closed:
            raise ClientDisconnected()
        self._flush()
        if self.write_paused:
            waiter = self._drain_waiter
            if waiter is None:
                waiter = self._drain_waiter = self.loop.create_future()
            # Shielded: the waiter is shared by every task sending on this connection, and
            # one of them being cancelled must not cancel the others' wait.
            await asyncio.shield(waiter)
            if self.closed:
                raise ClientDisconnected()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        if not self.closed:
            self._flush()
            self.transport.close()
            self.closed = True

    # Reading.

    def update_reading(self) -> None:
        """Pause reading while a request waits its turn or too much body waits unread."""
        reading = self.reading
        pause = bool(self.pipeline) or (reading is not None and reading.unread > BODY_HIGH_WATER)
        if pause is not self.read_paused and not self.closed:
            self.read_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # Request cycles.

    def _start_cycle(self, cycle: RequestCycle) -> None:
        state = self.state
        self._head_started = None
        if state.limit_concurrency is not None and state.active >= state.limit_concurrency:
            logger.warning(
                "Too many requests in flight (--limit-concurrency %d): 503", state.limit_concurrency
            )
            head = cycle.head.method == "HEAD"
            self.write(simple_response(state.defaults, 503, head=head), True)
            self.close()
            return
        state.active += 1
        if cycle.head.proxied and self.trusted:
            cycle.client, cycle.scheme = state.proxy.resolve(  # type: ignore[union-attr]
                cycle.head.headers, cycle.client, cycle.scheme
            )
        cycle.task = self.loop.create_task(cycle.run())

    def cycle_finished(self, cycle: RequestCycle) -> None:
        """The app call of ``cycle`` returned: reuse the connection or close it."""
        state = self.state
        state.active -= 1
        if state.access_log:
            state.log_access(cycle)
        if self.cycle is cycle:
            self.cycle = None
        if state.shutting_down and state.active == 0:
            state.drained()
        if self.closed:
            return
        response = cycle.response
        if response.state is not ResponseState.DONE or not response.keep_alive or self.closing:
            self.close()
            return
        if not cycle.body_complete:
            if cycle.expect_continue:
                self.close()  # the client still waits for 100 Continue: it will not send
                return
            cycle.take_body()  # discard; what still arrives is counted by feed_body
        if self.pipeline:
            following = self.pipeline.popleft()
            if isinstance(following, BadRequest):
                self._answer_bad_request(following)
                return
            self.cycle = following
            self.update_reading()
            self._start_cycle(following)
        else:
            self.update_reading()
            self._become_idle()

    def _bad_request(self, error: BadRequest) -> None:
        reading = self.reading
        self.reading = None
        if reading is not None and reading is not self.cycle:
            # A request still waiting its turn (or one whose body was being discarded) broke
            # its framing: drop it, and answer the error in its turn.
            if reading in self.pipeline:
                self.pipeline.remove(reading)
            reading = None
        if reading is not None:
            # The body of the request being answered broke its framing: nothing after it can
            # be trusted. Answer 400 if the request is still unanswered, then close.
            reading.connection_lost()
            if reading is self.cycle and reading.response.state is ResponseState.IDLE:
                reading.response.abandon()
                self._answer_bad_request(error)
            else:
                self.close()
        elif self.cycle is None:
            self._answer_bad_request(error)
        else:
            self.pipeline.append(error)  # answered in its turn
            self.update_reading()

    def _answer_bad_request(self, error: BadRequest) -> None:
        logger.debug("Bad request from %s: %s", self.client, error.reason)
        self.write(simple_response(self.state.defaults, error.status, error.reason), True)
        self.close()

    # Timers: one per connection, re-armed lazily, so a busy keep-alive connection does not
    # create and cancel a timer per request.

    def _become_idle(self) -> None:
        now = self.loop.time()
        self._idle_since = now
        self._head_started = None
        if self.closing:
            self.close()
            return
        state = self.state
        deadline = now + state.timeout_keep_alive
        if self.parser.state is not _PARSER_IDLE:
            # Part of a pipelined head already arrived: its clock starts now.
            deadline = min(deadline, now + state.timeout_request_head)
        self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        """Make the timer fire at ``deadline`` at the latest."""
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._on_timer)
        elif timer.when() > deadline:
            timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed or self.cycle is not None:
            return  # re-armed when the connection is idle again
        state = self.state
        parser_state = self.parser.state
        # Part of a request (head or unread body) has arrived; in any other parser state
        # (idle, or closed after the last request) the connection is simply idle.
        in_head = parser_state is _PARSER_HEAD or parser_state is _PARSER_BODY
        if in_head:
            deadline = (self._head_started or self._idle_since) + state.timeout_request_head
        else:
            deadline = self._idle_since + state.timeout_keep_alive
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)
        elif in_head and self.reading is None:
            # RFC 9110 section 15.5.9: 408 (Request Timeout) for a head that never completed.
            self._answer_bad_request(BadRequest(408, "request head not received in time"))
        else:
            self.close()

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the response in flight."""
        self.closing = True
        cycle = self.cycle
        if cycle is None:
            self.close()
        elif cycle.response.state is ResponseState.IDLE:
            cycle.response.keep_alive = False
