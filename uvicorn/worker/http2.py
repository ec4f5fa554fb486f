"""One HTTP/2 connection: the uvloop protocol around ``H2Core`` (``protocols/http2.py``). It
starts a request cycle on an ``H2Stream`` (``http2_stream.py``) per request, and a WebSocket
session on an ``H2Tunnel`` (``http2_tunnel.py``) per extended CONNECT (RFC 8441).

Apps still running are bounded by SETTINGS_MAX_CONCURRENT_STREAMS: past it (apps that go on
after their stream was reset) a new stream is refused with REFUSED_STREAM; reading never stops,
as the WINDOW_UPDATEs the running apps wait for come on it too. Idle, it closes after the
keep-alive timeout; shut down, it sends GOAWAY twice (RFC 9113 section 6.8) and finishes the
streams in flight.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols import http2_frames as frames
from uvicorn.protocols.http2 import (
    BODY,
    END,
    GOAWAY,
    MALFORMED,
    PONG,
    REQUEST,
    RESET,
    WINDOW,
    H2Core,
)
from uvicorn.protocols.http2_frames import H2ConnectionError
from uvicorn.protocols.http2_request import as_stream_one, h2c_settings
from uvicorn.protocols.http_events import RequestHead
from uvicorn.protocols.http_response import simple_response
from uvicorn.worker.cycle import RequestCycle
from uvicorn.worker.http2_stream import H2Stream
from uvicorn.worker.http2_tunnel import H2Tunnel
from uvicorn.worker.state import ServerState
from uvicorn.worker.transport import TransportProtocol

logger = logging.getLogger("uvicorn.error")

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"


def alpn(transport: asyncio.BaseTransport) -> str | None:
    """The protocol negotiated by TLS ALPN (RFC 7301), if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.selected_alpn_protocol() if ssl_object is not None else None  # type: ignore[no-any-return]


class H2Connection(TransportProtocol):
    """Moves bytes between the socket and ``H2Core``; starts a request cycle per stream."""

    def __init__(self, state: ServerState, client: list[Any] | None,
                 server: list[Any] | None, trusted: bool) -> None:  # fmt: skip
        super().__init__(state.loop)
        self.state = state
        assert state.h2 is not None
        self.core = H2Core(state.h2)
        self.client = client
        self.server = server
        self.trusted = trusted
        self.tls: dict[str, Any] | None = None  # (set by the HTTP/1.1 connection it replaces)
        # With an app call (or a WebSocket) in flight, or a body to send.
        self.streams: dict[int, H2Stream | H2Tunnel] = {}
        self.running = 0  # app calls in flight
        self.closing = False  # GOAWAY sent: close once every stream is done
        self._final_goaway = False
        self._awaiting_pong = False  # shut down: counted in state.active until the PONG
        self._goaway_after_request = False  # (retiring: see linger())
        self._idle_until = 0.0

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The app calls in flight."""
        return [
            s.cycle.task
            for s in self.streams.values()
            if type(s) is H2Stream and s.cycle is not None and s.cycle.task is not None
        ]

    def start(
        self,
        transport: asyncio.Transport,
        data: bytes,
        preface_seen: bool,
        upgrade: RequestHead | None,
    ) -> None:
        """Take over ``transport`` from the HTTP/1.1 connection that recognized HTTP/2;
        ``data`` is what followed. ``upgrade``: the request that asked for h2c, to be answered
        on stream 1."""
        self.transport = transport
        self.state.connections.add(self)
        settings = b""
        if upgrade is not None:
            # (Not a None in the bytes variable with a "type: ignore": mypyc checks a value
            # against its variable's type, and the compiled build raised TypeError there.)
            found = h2c_settings(upgrade)
            if found is None:
                self.write(simple_response(self.state.defaults, 400,
                                           "Upgrade: h2c needs one valid HTTP2-Settings"), True)
                self.close()
                return
            settings = found
            self.write(_SWITCHING, False)
        self.core.initiate(preface_seen)
        if upgrade is not None:
            try:
                self.core.upgraded(settings)
            except H2ConnectionError as exc:  # (values no SETTINGS frame may hold)
                logger.debug("HTTP/2 connection error from %s: %s", self.client, exc)
                self.write(self.core.data_to_send(), True)
                self.close()
                return
            self._request(1, as_stream_one(upgrade), True)
        self.output()
        self._idle()
        state = self.state
        if state.shutting_down:
            # Turned HTTP/2 after the server's shutdown (or retirement) told its connections
            # to go: this one must be told too (RFC 9113 section 6.8), or it is served as if
            # nothing were happening until its keep-alive timeout, holding the worker.
            if state.lingering:
                self.linger()
            else:
                self.shutdown()
        if data:
            self.data_received(data)

    def output(self) -> None:
        core = self.core
        if core.large:  # a body's frames: to the socket as they are, in one gathering write
            self.write_pieces(core.take_frames())
        else:
            data = core.data_to_send()
            if data:
                self.write(data, False)

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        core = self.core
        try:
            events = core.receive_data(data)
        except H2ConnectionError as exc:
            logger.debug("HTTP/2 connection error from %s: %s", self.client, exc)
            self._fail_streams()
            self.write(core.data_to_send(), True)
            self.close()
            return
        streams = self.streams
        for event in events:
            kind = event[0]
            if kind == REQUEST:
                self._request(event[1], event[2].head(), event[3])
            elif kind == BODY:
                stream = streams.get(event[1])
                if stream is not None:
                    stream.received(event[2])
                else:
                    core.consumed(event[1], len(event[2]))
            elif kind == END:
                stream = streams.get(event[1])
                if stream is not None:
                    stream.ended()
            elif kind == WINDOW:
                self._window(event[1])
            elif kind == RESET:
                stream = streams.get(event[1])
                if stream is not None:
                    stream.lost()
                    if stream.done:
                        self.forget_stream(stream)
            elif kind == MALFORMED:
                self._refuse(event[1], event[2], event[3])
            elif kind == GOAWAY:
                self._client_goaway(event[1], event[2])
            elif kind == PONG:
                self._pong()
        if self._goaway_after_request and core.last_stream:
            self._goaway_after_request = False
            self.shutdown()  # (its first requests are in: see linger())
        self.output()

    def eof_received(self) -> bool | None:
        return None  # the client sends nothing more: close (its streams are lost)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_streams()
        self._round_trip_done()
        self.state.forget(self)
        self._cancel_timer()
        self._lost()

    def _fail_streams(self) -> None:
        for stream in list(self.streams.values()):
            stream.lost()
            if stream.done:
                self.streams.pop(stream.stream_id, None)

    def _lost(self) -> None:
        """The client is gone. Also called by a write that failed, before connection_lost():
        every stream is told at once, so that an app whose send() raises ClientDisconnected
        is known to have lost its client (nothing to log) rather than to have failed."""
        super()._lost()
        for stream in list(self.streams.values()):
            stream.lost()

    # Requests.

    def _request(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        state = self.state
        if head.upgrade is not None:  # an extended CONNECT (RFC 8441)
            self._websocket(stream_id, head)
            return
        if self.running >= self.core.settings.max_concurrent_streams:
            # Apps still running for streams the client saw end: the client keeps to the
            # limit, our apps do not. Refuse rather than stop reading, which would stop the
            # WINDOW_UPDATEs the running ones wait for too. REFUSED_STREAM: nothing was
            # processed, the client may retry (RFC 9113 section 8.7).
            logger.debug("Refused HTTP/2 stream from %s: %d running", self.client, self.running)
            self.core.reset(stream_id, frames.REFUSED_STREAM)
            return
        stream = H2Stream(self, stream_id, head.method == "HEAD")
        self.streams[stream_id] = stream
        cycle = state.cycle_class(stream, stream.response, head, self.client, state.scheme)
        stream.cycle = cycle
        if end_stream:
            cycle.body_complete = True
        if state.limit_concurrency is not None and state.at_capacity():
            logger.warning(
                "Too many in flight (--limit-concurrency %d): 503", state.limit_concurrency
            )
            cycle.finished = True
            stream.send_refusal(503)
            if state.access_log:
                state.log_access(cycle, 503)
            self._ended(stream)
            return
        if head.proxied and self.trusted:
            cycle.client, cycle.scheme = state.proxy.resolve(  # type: ignore[union-attr]
                head.headers, cycle.client, cycle.scheme
            )
        state.active += 1
        self.running += 1
        cycle.task = self.loop.create_task(cycle.run())

    def _websocket(self, stream_id: int, head: RequestHead) -> None:
        state = self.state
        if head.upgrade != b"websocket" or state.websocket_class is None:
            self._refuse(stream_id, 501, f"unsupported :protocol {head.upgrade!r}")
            return
        tunnel = H2Tunnel(self, stream_id)
        self.streams[stream_id] = tunnel
        client, scheme = self.client, state.scheme
        if head.proxied and self.trusted:
            assert state.proxy is not None
            client, scheme = state.proxy.resolve(head.headers, client, scheme)
        session = state.websocket_class(state, tunnel, head, client, self.server, scheme)
        session.tls = self.tls
        tunnel.session = session
        session.start(b"")

    def pause_writing(self) -> None:
        super().pause_writing()
        for stream in list(self.streams.values()):
            if type(stream) is H2Tunnel and stream.session is not None:
                stream.session.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        for stream in list(self.streams.values()):
            if type(stream) is H2Tunnel and stream.session is not None and not stream.pending:
                stream.session.resume_writing()

    def _refuse(self, stream_id: int, status: int, reason: str) -> None:
        logger.debug("Refused HTTP/2 request from %s: %s", self.client, reason)
        self.state.refused(status)
        stream = H2Stream(self, stream_id, False)
        self.streams[stream_id] = stream
        stream.send_refusal(status)
        self._ended(stream)

    def finished(self, stream: H2Stream, cycle: RequestCycle) -> None:
        """The app call of ``cycle`` returned."""
        state = self.state
        state.active -= 1
        self.running -= 1
        if state.access_log:
            state.log_access(cycle, stream.response.status)
        if state.shutting_down and state.active == 0:
            state.drained()
        self._ended(stream)

    def _ended(self, stream: H2Stream) -> None:
        """The stream's app is done (or there was none): it goes once its body is sent."""
        # The cycle keeps its stream (an app may still call send()); the stream lets go of the
        # cycle, or the two would be a reference cycle holding this connection (and over TLS
        # its buffers, 256 KiB and more) until the garbage collector happens to find it.
        stream.cycle = None
        state = self.core.streams.get(stream.stream_id)
        if state is not None and not state.local_open and not stream.gone:
            # RFC 9113 section 8.1: a complete response before the whole request; the client
            # is asked to stop sending, without error.
            self.core.reset(stream.stream_id, frames.NO_ERROR)
        if not stream.pending:
            self.forget_stream(stream)
        self.output()

    def forget_stream(self, stream: H2Stream | H2Tunnel) -> None:
        self.streams.pop(stream.stream_id, None)
        if not self.streams:
            if self.closing and self._final_goaway:
                self.close()
            else:
                self._idle()

    def _window(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.window_opened()
        else:
            for stream in list(self.streams.values()):
                if stream.pending:
                    stream.window_opened()

    # Idle connections, and going away.

    def _idle(self) -> None:
        """No stream in flight: the keep-alive timeout runs from now."""
        if not self.closed:
            self._idle_until = self.loop.time() + self.state.timeout_keep_alive
            self._arm(self._idle_until)

    def _on_timer(self) -> None:
        if self.closed:
            return
        if self.closing and not self._final_goaway:
            self._pong()  # no answer to our PING in time: go on as if there were
            return
        if self.streams:
            return  # busy: the timer is armed again once it is idle
        if self.loop.time() < self._idle_until:
            self._arm(self._idle_until)  # (armed for an earlier idle spell)
            return
        self.core.goaway(frames.NO_ERROR)
        self.output()
        self.close()

    def _client_goaway(self, last_stream: int, code: int) -> None:
        if code != frames.NO_ERROR:
            logger.debug("HTTP/2 GOAWAY from %s, error code %d", self.client, code)
        self.closing = True
        self._final_goaway = True
        if not self.streams:
            self.close()

    def shutdown(self) -> None:
        """Graceful shutdown (RFC 9113 section 6.8): GOAWAY with the largest stream id (no
        request already on its way is lost), a PING, and once it is answered, GOAWAY with the
        last stream id; then close once the streams in flight are done."""
        if self.closing or self.closed:
            return
        self.closing = True
        self.core.goaway(frames.NO_ERROR, frames.MAX_WINDOW)
        self.core.ping()
        self.output()
        self._arm(self.loop.time() + 1.0)  # (a client that never answers the PING)
        # RFC 9113 section 6.8: until the PING is answered (a round trip), a request the
        # client sent before it read the GOAWAY may be on its way, and it must be served.
        # Meanwhile the connection counts as a request in flight, so that the server's
        # shutdown waits for it: an idle connection was closed at once, losing that request.
        self._awaiting_pong = True
        self.state.active += 1

    def linger(self) -> None:
        """A retiring worker: as ``shutdown``, other workers serve what comes next; but a
        connection that has sent no request yet is first answered once, as an HTTP/1.1 one
        is. A client sends its first requests as soon as the connection is up, without waiting
        for anything; a GOAWAY that it reads before they left makes it drop them all, and a
        client that does not retry them on another connection (h2load) counts them failed.
        If none comes, the keep-alive timer closes it (with a GOAWAY), within the linger."""
        if self.core.last_stream or self.closing:
            self.shutdown()
        else:
            self._goaway_after_request = True

    def _pong(self) -> None:
        if self.closing and not self._final_goaway:
            self._final_goaway = True
            self.core.goaway(frames.NO_ERROR)
            self.output()
            if not self.streams:
                self.close()
        self._round_trip_done()

    def _round_trip_done(self) -> None:
        """No request sent before the GOAWAY can still be on its way (see ``shutdown``)."""
        if self._awaiting_pong:
            self._awaiting_pong = False
            state = self.state
            state.active -= 1
            if state.shutting_down and state.active == 0:
                state.drained()
