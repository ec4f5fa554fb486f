"""One HTTP/1.1 connection: moves bytes between the socket and the pure protocol cores.

``HTTPConnection`` feeds received bytes to ``RequestParser`` and hands the events to request
cycles, answering pipelined requests in order, one at a time. It owns everything tied to the
socket: read pausing (body back-pressure, pipelining), the keep-alive and request-head timers,
and handing the socket over to another protocol on an upgrade. Writing is ``StreamProtocol``'s.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    ParserState,
    RequestHead,
    RequestParser,
    Upgrade,
)
from uvicorn.protocols.http_response import ResponseState, simple_response
from uvicorn.worker.cycle import BODY_HIGH_WATER, RequestCycle
from uvicorn.worker.stream import StreamProtocol

if TYPE_CHECKING:
    from uvicorn.worker.state import ServerState

logger = logging.getLogger("uvicorn.error")

# Tasks that start running when created (asyncio.Task's eager_start), from Python 3.12.
EAGER_TASKS = sys.version_info >= (3, 12)

_PARSER_IDLE = ParserState.IDLE
_PARSER_HEAD = ParserState.HEAD
_PARSER_BODY = ParserState.BODY
_PARSER_UPGRADED = ParserState.UPGRADED
_DONE = ResponseState.DONE


class PendingUpgrade:
    """An upgrade request waiting for the responses before it, and the bytes that followed."""

    __slots__ = ("head", "data")

    def __init__(self, head: RequestHead, data: bytes) -> None:
        self.head = head
        self.data = data


class HTTPConnection(StreamProtocol):
    def __init__(self, state: ServerState) -> None:
        super().__init__(state.loop)
        self.state = state
        self.parser = RequestParser(state.limits, state.upgrades)
        self.client: list[Any] | None = None
        self.server: list[Any] | None = None
        self.scheme = state.scheme
        self.trusted = False  # the peer may set proxy headers
        self.cycle: RequestCycle | None = None  # the request being answered
        self.reading: RequestCycle | None = None  # the request whose body is arriving
        self.pipeline: deque[RequestCycle | BadRequest | PendingUpgrade] = deque()
        self.closing = state.shutting_down  # answer what is in flight, then close
        self.peer_eof = False  # the client shut down its sending side
        self._idle_since = 0.0
        self._head_started: float | None = None
        self._task_factory_free = self.loop.get_task_factory() is None

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
        if self.parser.state is _PARSER_UPGRADED:
            # Bytes of the new protocol, arriving while the responses before the upgrade
            # request are still being sent: kept for it.
            for item in self.pipeline:
                if isinstance(item, PendingUpgrade):
                    item.data += data
            return
        start = None
        upgrading: RequestHead | None = None
        queued = False
        for event in self.parser.receive_data(data):
            if event is END_OF_REQUEST:
                reading = self.reading
                if reading is not None:
                    self.reading = None
                    reading.end_body()
                continue
            kind = type(event)
            if kind is Body:
                reading = self.reading
                if reading is not None:
                    reading.feed_body(event.data)  # type: ignore[union-attr]
            elif kind is RequestHead:
                if event.upgrade is not None:  # type: ignore[union-attr]
                    # An Upgrade event ends this list: no request cycle for this one.
                    upgrading = cast(RequestHead, event)
                    continue
                cycle = self.state.cycle_class(self, event)
                self.reading = cycle
                if self.cycle is None:
                    # The current request from now on (it starts after this loop), so that a
                    # bad request later in the same data waits its turn behind it.
                    self.cycle = start = cycle
                else:
                    self.pipeline.append(cycle)
                    queued = True
            elif kind is BadRequest:
                self._bad_request(event)  # type: ignore[arg-type]
            elif kind is Upgrade:
                assert upgrading is not None
                pending = PendingUpgrade(upgrading, event.data)  # type: ignore[union-attr]
                if self.cycle is None and start is None:
                    self._upgrade(pending)
                    return
                self.pipeline.append(pending)  # switched once the responses before it are done
                queued = True
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
        if queued:  # (and whenever the parser held bytes back: a batch completed first)
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
        self.state.forget(self)
        self._cancel_timer()
        self._lost()

    def _lost(self) -> None:
        """The client is gone: tell the requests in flight (once)."""
        super()._lost()
        for cycle in (self.cycle, self.reading):
            if cycle is not None:
                cycle.connection_lost()
        self.pipeline.clear()

    # Reading.

    def update_reading(self) -> None:
        """Pause reading while a request waits its turn, the parser holds bytes it has not
        parsed yet (a long pipeline, parsed a batch at a time), or too much body waits unread."""
        reading = self.reading
        self._pause_reading(
            bool(self.pipeline)
            or bool(self.parser.held)
            or (reading is not None and reading.unread > BODY_HIGH_WATER)
        )

    # Request cycles.

    def _start_cycle(self, cycle: RequestCycle, eager: bool = True) -> None:
        """Call the app for ``cycle``; ``eager`` (Python 3.12+) runs the call at once, up to
        where it first waits, rather than from the event loop's queue."""
        state = self.state
        self._head_started = None
        if state.limit_concurrency is not None and state.at_capacity():
            logger.warning(
                "Too many in flight (--limit-concurrency %d): 503", state.limit_concurrency
            )
            head = cycle.head.method == "HEAD"
            self.write(simple_response(state.defaults, 503, head=head), True)
            cycle.status = 503
            if state.access_log:
                state.log_access(cycle)
            self.close()
            return
        state.active += 1
        if cycle.head.proxied and self.trusted:
            cycle.client, cycle.scheme = state.proxy.resolve(  # type: ignore[union-attr]
                cycle.head.headers, cycle.client, cycle.scheme
            )
        if self._task_factory_free:
            # What loop.create_task() does without a task factory, minus the "Task-<n>" name
            # that CPython formats for every task.
            if EAGER_TASKS and eager:
                # An eager task is a real Task (current_task() is right for the app), but an
                # app that answers without waiting finishes here, never queued in the loop.
                cycle.task = asyncio.Task(  # type: ignore[call-arg]
                    cycle.run(), loop=self.loop, name="uvicorn.request", eager_start=True
                )
            else:
                cycle.task = asyncio.Task(cycle.run(), loop=self.loop, name="uvicorn.request")
        else:
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
        if cycle.state is not _DONE or not cycle.keep_alive or self.closing:
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
            if isinstance(following, PendingUpgrade):
                self._upgrade(following)
                return
            self.cycle = following
            self.update_reading()
            # Not eager: it would finish inside this call and start the next one from there,
            # one stack frame deeper for each pipelined request.
            self._start_cycle(following, eager=False)
        else:
            self._become_idle()
            if self.read_paused:
                if self.parser.held:
                    # The next batch of a long pipeline (reading stays paused): from the loop,
                    # not from inside this call, which would nest one call per batch.
                    self.loop.call_soon(self._parse_held)
                else:
                    self.update_reading()

    def _parse_held(self) -> None:
        if not self.closed and self.cycle is None:
            self.data_received(b"")
            self.update_reading()  # read again once nothing is held or queued

    def _upgrade(self, pending: PendingUpgrade) -> None:
        """Hand the socket over to the protocol the request asked for (WebSocket)."""
        self._cancel_timer()
        self._flush()
        head = pending.head
        client, scheme = self.client, self.scheme
        if head.proxied and self.trusted:
            assert self.state.proxy is not None
            client, scheme = self.state.proxy.resolve(head.headers, client, scheme)
        self.state.upgrade(self, head, pending.data, client, scheme)

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
            if reading is self.cycle and reading.state is ResponseState.IDLE:
                reading.abandon()
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

    # Timers: the keep-alive and request-head deadlines share the connection's one timer.

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
        if self._timer is None or self._timer_at > deadline:
            self._arm(deadline)  # else the timer, firing earlier, re-arms itself

    def _on_timer(self) -> None:
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
            self._arm(deadline)
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
        elif cycle.state is ResponseState.IDLE:
            cycle.keep_alive = False
