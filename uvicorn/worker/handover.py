"""Where an HTTP/1.1 connection hands its socket over to another protocol: a WebSocket session
(RFC 6455 section 4) or HTTP/2 (RFC 9113 section 3: by TLS ALPN, by prior knowledge, or by an
``Upgrade: h2c`` request, RFC 7540 section 3.2); and where the server has it go away (a
graceful shutdown, a retirement's linger). ``HTTPConnection`` inherits these methods.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http_connection import H1Connection, PendingUpgrade
from uvicorn.protocols.http_events import RequestHead
from uvicorn.protocols.http_response import Response, ResponseState
from uvicorn.worker.http2 import H2Connection
from uvicorn.worker.state import Connection, ServerState
from uvicorn.worker.transport import TransportProtocol


class Handover(TransportProtocol):
    """``HTTPConnection``'s handovers."""

    state: ServerState
    h1: H1Connection[Any]
    client: list[Any] | None
    server: list[Any] | None
    scheme: str
    tls: dict[str, Any] | None
    trusted: bool
    response: Response

    def as_connection(self) -> Connection:
        return self  # type: ignore[return-value]  # (an HTTPConnection: one of the server's)

    def _upgrade(self, pending: PendingUpgrade) -> None:
        """Hand the socket over to the protocol the request asked for (WebSocket: RFC 6455
        section 4; HTTP/2: RFC 7540 section 3.2)."""
        head = pending.head
        if head.upgrade == b"h2c":
            self._to_h2(pending.data, False, head)
            return
        self._cancel_timer()
        self._flush()
        client, scheme = self.client, self.scheme
        state = self.state
        if head.proxied and self.trusted:
            assert state.proxy is not None
            client, scheme = state.proxy.resolve(head.headers, client, scheme)
        self.h1.parser.close()
        state.forget(self.as_connection())
        assert state.websocket_class is not None
        session = state.websocket_class(state, self.transport, head, client, self.server, scheme)
        session.tls = self.tls
        session.corked = self.corked  # (the 101 not written yet)
        self.transport.set_protocol(session)
        if self.read_paused:
            self.transport.resume_reading()
        session.start(pending.data)

    def _to_h2(self, data: bytes, preface_seen: bool, upgrade: RequestHead | None) -> None:
        """Hand the socket over to HTTP/2: negotiated by ALPN, by prior knowledge (the client
        preface was ``preface_seen``), or by an ``upgrade`` request (h2c)."""
        self._cancel_timer()
        self._flush()
        self.h1.parser.close()
        h2 = H2Connection(self.state, self.client, self.server, self.trusted)
        h2.tls = self.tls
        h2.corked = self.corked  # (nothing written yet: prior knowledge)
        self.transport.set_protocol(h2)
        if self.read_paused:
            self.transport.resume_reading()
        h2.start(self.transport, data, preface_seen, upgrade)
        # Forgotten once its successor is counted: a retiring worker whose connections are
        # all gone for an instant would stop waiting for them.
        self.state.forget(self.as_connection())

    # Shutting down (the server's side).

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the response in flight."""
        if self.h1.shutdown():
            self.close()
        elif self.response.state is ResponseState.IDLE:
            self.response.keep_alive = False

    def linger(self) -> None:
        """A retiring worker: close after the next response, or when the keep-alive timer fires
        (a request may be on its way already)."""
        if self.h1.current is None:
            self.h1.closing = True
        else:
            self.shutdown()
