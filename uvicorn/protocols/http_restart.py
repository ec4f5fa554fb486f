"""Where llhttp is restarted in the middle of a connection's bytes, sans I/O: after a request
that asked to upgrade but is served as plain HTTP, and after a head that announces a chunked
body (so that ``ChunkedBody`` follows that body from its first byte: see http_chunks.py). And
where it stops for good: HTTP/2's connection preface, handed over with what follows it.

A fresh llhttp parser is primed with a head of the same body framing (its events dropped), and
is then where the real request's head left it. Also here, as they too find where a request
begins in what was fed: the checks on a head received in part, and failing the connection.
``RequestParser`` inherits these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httptools

from uvicorn.protocols.http_events import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    Event,
    Limits,
    ParserState,
    Preface,
    RequestHead,
    Upgrade,
)
from uvicorn.protocols.http_rules import H2_PREFACE, body_framing

if TYPE_CHECKING:
    from uvicorn.protocols.http_chunks import ChunkedBody


class ChunkedFollows(Exception):
    """Raised in on_headers_complete() after a head that announces a chunked body: llhttp stops
    there, and ``RequestParser.receive_data()`` restarts it where the body begins."""


class HoldTheRest(Exception):
    """Raised in on_message_complete() after a batch of pipelined requests in one call: llhttp
    stops there, and the bytes that follow are held, unparsed, until the caller has answered
    these (a client pipelining thousands of requests in one read must not make the server
    hold thousands of parsed requests: held raw, they are bounded by what one read brings)."""


class Restarts:
    """``RequestParser``'s restarts of llhttp."""

    upgrades: frozenset[bytes]
    state: ParserState
    _parser: httptools.HttpRequestParser
    _events: list[Event]
    _pending: int
    _priming: bool
    _chunked: ChunkedBody | None
    _start: bytes | None
    _tail: bytes
    _head_bytes: int
    _headers: list[list[bytes]]
    _max_fields: int
    _pending_limit: int
    _start_limit: int
    limits: Limits

    def _on_preface(self, error: str, data: bytes, state: ParserState, events: list[Event]) -> bool:
        """llhttp stopped on ``error``: if on HTTP/2's preface (RFC 9113 section 3.4: prior
        knowledge), hand it over with what follows (a Preface event; the caller switches, or
        refuses it with 505 if the connection served HTTP/1.1 before). llhttp stops exactly at
        the preface's last byte. ``data`` was fed from ``state``, after the ``events`` of
        this feed."""
        if not error.startswith("Pause on PRI"):
            return False
        size = len(H2_PREFACE)
        if events or state is ParserState.IDLE:  # it began in this feed (after those events)
            at = parsed_to(data, state, self._tail, events) if events else 0
            start = data[at:].lstrip(b"\r\n")
            if not start.startswith(H2_PREFACE):
                return False
            rest = start[size:]
        else:  # it began before: ``_start`` holds its first line only
            if not (self._start or b"").startswith(H2_PREFACE[:16]) or self._head_bytes < size:
                return False
            rest = data[len(data) - (self._head_bytes - size) :]
        self.state = ParserState.UPGRADED
        self._events.append(Preface(rest))
        return True

    def _on_upgrade(self, rest: bytes) -> bool:
        """llhttp stopped after a complete request that asked to upgrade, leaving ``rest``
        unparsed. Switch protocols, or return True to go on parsing ``rest`` as HTTP."""
        events = self._events
        head = next(e for e in reversed(events) if isinstance(e, RequestHead))
        body = body_framing(head.headers)
        if head.upgrade in self.upgrades and head.http_version == "1.1" and body is None:
            self.state = ParserState.UPGRADED
            events.append(Upgrade(rest))
            return False
        # Served as plain HTTP. RFC 9110 section 7.8: "A server MAY ignore a received Upgrade
        # header field if it wishes to continue using the current protocol on that connection",
        # and one in an HTTP/1.0 request it MUST ignore. We also ignore it on a request with
        # content, which we would otherwise have to read before switching.
        head.upgrade = None
        self._parser = httptools.HttpRequestParser(self)  # llhttp's stays stopped
        self._pending = 0
        if body is None:
            self.state = ParserState.IDLE if head.keep_alive else ParserState.CLOSED
            return True
        # httptools tells llhttp that an upgrade request has no content, so llhttp took the body
        # for whatever follows the request (a smuggled request, for one). Read it with a fresh
        # parser primed with a head of the same framing: it applies llhttp's rules to the body
        # and then parses what follows.
        if events[-1] is END_OF_REQUEST:
            events.pop()
        self._prime(body, head.keep_alive)
        return True

    def _follow_chunked(self) -> None:
        """llhttp was stopped after a head that announced a chunked body (its event is out): go
        on with a fresh llhttp primed with a head of the same framing, the body followed by
        ``ChunkedBody`` from its first byte."""
        head = self._events[-1]
        assert isinstance(head, RequestHead)
        head.upgrade = None  # a request with content is not upgraded (see _on_upgrade)
        self._parser = httptools.HttpRequestParser(self)
        self._prime(b"transfer-encoding: chunked\r\n", head.keep_alive)

    def _prime(self, framing: bytes, keep_alive: bool) -> None:
        """Feed the fresh llhttp a head with this body ``framing``: it is then where the real
        request's head left off. The primer's own events are dropped."""
        events, self._events = self._events, []
        primer = b"PUT / HTTP/1.1\r\nhost: _\r\n" + framing
        if not keep_alive:
            primer += b"connection: close\r\n"
        self._priming = True
        try:
            self._parser.feed_data(primer + b"\r\n")
        finally:
            self._priming = False
            self._events = events
        self._pending = 0


    def _head_in_part(self, data: bytes, state: ParserState, events: list[Event]) -> None:
        """A feed (``data``, from ``state``, completing ``events``) ended within a head."""
        if self._start is None:  # it began in this feed, after others: keep its start
            self._start = self._request_start(data, state, events)
        self._tail = (self._tail + data)[-3:]  # the head's empty line may straddle
        if self._head_bytes > self.limits.head_size:
            self._fail(431, "request head too large")
        elif self._pending > self._pending_limit:
            self._fail(431, "header field too large")
        elif len(self._headers) > self._max_fields:
            # Too many fields already: the head gets 431 when it is whole (or the error of
            # what comes first in it), whatever the split. Meanwhile the fields beyond the
            # limit are not held (a head of tiny fields, "a:\r\n", would hold ~200,000 of
            # them under the head size limit: ~24 MB), but for one that says so.
            del self._headers[self._max_fields + 1 :]

    def _request_start(self, data: bytes, state: ParserState, events: list[Event]) -> bytes:
        """The start of the request that began in ``data`` after the ``events`` of this feed
        (llhttp skips the empty lines before a request)."""
        at = parsed_to(data, state, self._tail, events) if events else 0
        self._head_bytes = len(data) - at  # (counted from here on)
        # (The empty lines first: as many as they are, they must not use up what is kept.)
        return data[at:].lstrip(b"\r\n")[: self._start_limit]

    def _fail(self, status: int, reason: str) -> None:
        if self.state is ParserState.CLOSED or self.state is ParserState.FAILED:
            # Bytes after the last request are ignored (llhttp objects to them); and after a
            # failure, nothing more is said.
            return
        self.state = ParserState.FAILED
        self._events.append(BadRequest(status, reason))

def parsed_to(data: bytes, state: ParserState, tail: bytes, events: list[Event]) -> int:
    """How far into ``data`` the ``events`` go: llhttp was stopped at the end of the last one,
    a head that announced a chunked body (where the body begins), or the end of a request (where
    the next begins). ``data`` is what was fed, from the parser's ``state`` then (``tail``: the
    last bytes of a head received in part before), and ``events`` what the feed completed:
    requests without a body or with a content-length one (whose bytes are counted), the last
    perhaps only its head.

    A head ends at its first empty line: llhttp takes no bare LF, and no CR or LF within a
    line (and skips empty lines before a request)."""
    at = 0
    i = 0
    if state is ParserState.BODY:  # the rest of a content-length body comes first
        while events[i] is not END_OF_REQUEST:
            at += len(events[i].data)  # type: ignore[union-attr]
            i += 1
        i += 1
        if i == len(events):
            return at
    in_progress = state is ParserState.HEAD
    while True:  # a head (events[i]), then its body (Body events) and its end
        if in_progress:  # its empty line may have begun in what came before
            in_progress = False
            straddling = (tail + data[:3]).find(b"\r\n\r\n")
            at = straddling + 4 - len(tail) if straddling >= 0 else data.find(b"\r\n\r\n") + 4
        else:
            while data[at : at + 1] in (b"\r", b"\n"):
                at += 1
            at = data.find(b"\r\n\r\n", at) + 4
        i += 1
        if i == len(events):
            return at
        while type(events[i]) is Body:
            at += len(events[i].data)  # type: ignore[union-attr]
            i += 1
        i += 1  # END_OF_REQUEST
        if i == len(events):
            return at
