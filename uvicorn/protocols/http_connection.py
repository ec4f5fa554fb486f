"""The rules of one HTTP/1.1 connection, sans I/O: which request is answered now and which wait
their turn, when the connection is kept or closed, what of an unread body is discarded, and the
deadlines, computed from a ``now`` the caller passes in (RFC 9112 section 9).

``H1Connection`` owns the request parser and the order of the connection's work; the caller (the
uvloop protocol, ``worker/connection.py``) moves the bytes, creates a request object of its own
(``R``, opaque here) for each request head, and does what these methods decide: start a request,
write an answer, close, arm its one timer for a deadline. So the pipelining and timer rules are
tested without sockets and without real time (``tests/protocols/test_http_connection.py``).
"""

from __future__ import annotations

import enum
from typing import Final, Generic, TypeVar

from uvicorn.protocols.http_events import BadRequest, ParserState, RequestHead
from uvicorn.protocols.http_parser import RequestParser

R = TypeVar("R")

_PARSER_IDLE: Final = ParserState.IDLE
_PARSER_HEAD: Final = ParserState.HEAD
_PARSER_BODY: Final = ParserState.BODY


class PendingUpgrade:
    """An upgrade request waiting for the responses before it, and the bytes that followed."""

    __slots__ = ("head", "data")

    def __init__(self, head: RequestHead, data: bytes) -> None:
        self.head = head
        self.data = data


class Next(enum.Enum):
    """What to do once a request is answered (``H1Connection.finished``)."""

    CLOSE = "close"
    IDLE = "idle"  # wait for the next request: arm the timer for ``H1Connection.deadline``
    START = "start"  # answer the next request in the pipeline: ``H1Connection.current``
    REFUSE = "refuse"  # answer the next item, a BadRequest, then close: ``H1Connection.refusal``
    UPGRADE = "upgrade"  # switch protocols: ``H1Connection.upgrading``


class Timer(enum.Enum):
    """What the connection's timer firing means (``H1Connection.timer``)."""

    REARM = "rearm"  # not yet: arm it again for ``H1Connection.deadline``
    TIMEOUT = "timeout"  # a request head that never completed: answer 408 and close
    CLOSE = "close"  # idle past the keep-alive timeout


_CLOSE: Final = Next.CLOSE
_IDLE: Final = Next.IDLE
_START: Final = Next.START


class H1Connection(Generic[R]):
    """The state of one connection: ``current`` is the request being answered, ``reading`` the
    one whose body is arriving, ``pipeline`` what waits its turn behind ``current``."""

    __slots__ = (
        "parser",
        "current",
        "reading",
        "pipeline",
        "closing",
        "peer_eof",
        "deadline",
        "refusal",
        "upgrading",
        "head_started",
        "_keep_alive",
        "_head_timeout",
        "_idle_since",
    )

    def __init__(
        self,
        parser: RequestParser,
        keep_alive_timeout: float,
        head_timeout: float,
        closing: bool = False,
    ) -> None:
        self.parser = parser
        self.current: R | None = None
        self.reading: R | None = None
        # A list, not a deque: 56 bytes a connection against 624, and what waits is at most a
        # batch of requests (PIPELINE_BATCH), taken from the front with pop(0).
        self.pipeline: list[R | BadRequest | PendingUpgrade] = []
        self.closing = closing  # answer what is in flight, then close
        self.peer_eof = False  # the client shut down its sending side
        self.deadline = 0.0  # when the timer is to fire (Next.IDLE, Timer.REARM)
        self.refusal: BadRequest | None = None  # (Next.REFUSE)
        self.upgrading: PendingUpgrade | None = None  # (Next.UPGRADE)
        self._keep_alive = keep_alive_timeout
        self._head_timeout = head_timeout
        self._idle_since = 0.0
        # When the head in progress began to arrive, while nothing is being answered (None once
        # a request starts: the caller sets it, a call fewer per request).
        self.head_started: float | None = None

    # A request's arrival.

    def request(self, item: R) -> bool:
        """A request head was parsed (its body, if any, follows): True if it is to be answered
        now, False if it waits its turn behind the one being answered."""
        self.reading = item
        if self.current is None:
            self.current = item
            return True
        self.pipeline.append(item)
        return False

    def upgrade(self, pending: PendingUpgrade) -> bool:
        """A request asked to switch protocols: True to switch now, False once the responses
        before it are done (``Next.UPGRADE``)."""
        if self.current is None:
            return True
        self.pipeline.append(pending)
        return False

    def bad_request(self, error: BadRequest) -> R | None:
        """The peer broke the protocol. Returns the request whose body broke its framing if it
        is ``current``: nothing after it can be trusted (the caller tells it the client is gone,
        then answers ``error`` if its response has not started, else closes). Otherwise
        ``error`` is to be answered now (``refusal`` is set) or in its turn (queued)."""
        reading = self.reading
        self.reading = None
        if reading is not None and reading is not self.current:
            # A request still waiting its turn (or one whose body was being discarded) broke
            # its framing: it is dropped, and the error answered in its turn.
            if reading in self.pipeline:
                self.pipeline.remove(reading)
            reading = None
        if reading is not None:
            return reading
        if self.current is None:
            self.refusal = error
        else:
            self.pipeline.append(error)
        return None

    def head_begun(self, now: float) -> float | None:
        """Bytes of a head arrived while nothing is being answered: the deadline by which it
        must be whole (RFC 9110 section 15.5.9, 408), if the clock was not running already."""
        if self.head_started is not None or self.current is not None:
            return None
        if self.parser.state is not _PARSER_HEAD:
            return None
        self.head_started = now
        return now + self._head_timeout

    def must_pause(self, unread: int, high_water: int) -> bool:
        """Whether to stop reading: a request waits its turn, the parser holds bytes it has not
        parsed yet (a long pipeline, parsed a batch at a time), or too much body waits unread
        (``unread`` bytes of ``reading``'s body)."""
        return bool(self.pipeline) or bool(self.parser.held) or unread > high_water

    # A request's end.

    def finished(
        self, done: bool, keep_alive: bool, body_complete: bool, expecting: bool, now: float
    ) -> Next:
        """``current`` is answered (``done``: its response is complete; ``keep_alive``: its
        framing allows another request; ``body_complete``: its body was all received;
        ``expecting``: its client still waits for 100 Continue). What now."""
        self.current = None
        if not done or not keep_alive or self.closing:
            return _CLOSE
        if not body_complete and expecting:
            return _CLOSE  # the client will not send the body it was not asked for
        # (An unread body is discarded by the caller; its rest is counted as it arrives.)
        if self.pipeline:
            following = self.pipeline.pop(0)
            if type(following) is BadRequest:
                self.refusal = following
                return Next.REFUSE
            if type(following) is PendingUpgrade:
                self.upgrading = following
                return Next.UPGRADE
            self.current = following  # type: ignore[assignment]
            return _START
        # Idle (idle(), inlined: a call fewer per request).
        self._idle_since = now
        self.head_started = None
        deadline = now + self._keep_alive
        if self.parser.state is not _PARSER_IDLE:
            # Part of a pipelined head already arrived: its clock starts now.
            deadline = min(deadline, now + self._head_timeout)
        self.deadline = deadline
        return _IDLE

    def idle(self, now: float) -> Next:
        """Nothing is being answered (a new connection): close if closing, else wait until
        ``deadline``."""
        self._idle_since = now
        self.head_started = None
        if self.closing:
            return _CLOSE
        self.deadline = now + self._keep_alive
        return _IDLE

    # Timers and the end of the connection.

    def timer(self, now: float) -> Timer | None:
        """The timer fired at ``now``. None: nothing to do (a request is being answered: the
        timer is armed again when the connection is idle)."""
        if self.current is not None:
            return None
        parser_state = self.parser.state
        # Part of a request (head or unread body) has arrived; in any other parser state
        # (idle, or closed after the last request) the connection is simply idle.
        in_head = parser_state is _PARSER_HEAD or parser_state is _PARSER_BODY
        if in_head:
            deadline = (self.head_started or self._idle_since) + self._head_timeout
        else:
            deadline = self._idle_since + self._keep_alive
        if now < deadline:
            self.deadline = deadline
            return Timer.REARM
        if in_head and self.reading is None:
            return Timer.TIMEOUT
        return Timer.CLOSE

    def eof(self) -> bool:
        """The client will send nothing more: True to keep the connection half open, so that a
        client that shut down its sending side still reads its answer; False to close (nothing
        to answer, or a body that will never complete)."""
        if self.reading is not None or self.current is None:
            return False
        self.closing = True
        self.peer_eof = True
        return True

    def shutdown(self) -> bool:
        """Graceful shutdown: True to close now (idle), False after the response in flight."""
        self.closing = True
        return self.current is None

    def lost(self) -> list[R]:
        """The connection is gone: the requests in flight, to be told (once each)."""
        items = [item for item in (self.current, self.reading) if item is not None]
        if len(items) == 2 and items[0] is items[1]:
            items.pop()
        self.pipeline.clear()
        # Nothing more is read. (Kept, a body cut short would keep its request, which keeps
        # its connection, which keeps this: a reference cycle. ``current`` goes when its
        # app returns.)
        self.reading = None
        return items
