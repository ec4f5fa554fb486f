"""ASGI 3 (and ASGI 2, wrapped) on the same request cycle as the messaging interface.

Only the translation lives here: the ``http`` scope, ``receive()`` events and ``send()`` messages
per the ASGI HTTP spec (2.4). Framing, flow control and failures are ``RequestCycle``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, MutableMapping
from typing import Any, Final

from uvicorn.channels import SendsNowait
from uvicorn.compiled import mypyc_attr
from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_parser import RequestHead
from uvicorn.protocols.http_response import ResponseState, check_status
from uvicorn.protocols.websocket import Message as WSMessage
from uvicorn.protocols.websocket_events import HandshakeState
from uvicorn.types import ASGIApp, ASGIReceive, ASGISend, Scope
from uvicorn.worker.cycle import PERCENT, RequestCycle, decode_path
from uvicorn.worker.messaging import check_bytes, close_code
from uvicorn.worker.state import ServerState
from uvicorn.worker.websocket import WebSocketSession

logger = logging.getLogger("uvicorn.error")

ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
_DISCONNECT: Final = {"type": "http.disconnect"}
_NO_OPTIONS: Final[dict[str, Any]] = {}  # an extension's (never written to)
# The ASGI extensions of every http scope (ASGI spec, "Extensions"; SPEC.md's table).
EXTENSIONS: Final[dict[str, dict[str, Any]]] = {
    "http.response.trailers": _NO_OPTIONS,
    "http.response.early_hint": _NO_OPTIONS,
    "http.response.pathsend": _NO_OPTIONS,
    "http.response.zerocopysend": _NO_OPTIONS,
}
_IDLE: Final = ResponseState.IDLE
_PENDING: Final = HandshakeState.PENDING


def read_message(message: Any, scope: str) -> tuple[dict[str, Any], str]:
    """An app's ``send()`` message as a dict (ASGI's messages are; another mapping is copied)
    and its type as a str, or the TypeError or ValueError that says what is wrong. (Compiled,
    a dict's ``get`` and a str's ``==`` are C operations, a mapping's a method call each.)"""
    if type(message) is not dict:
        if not isinstance(message, Mapping):
            raise TypeError(f"invalid ASGI message {message!r}: needs a 'type'")
        message = dict(message)
    kind = message.get("type")
    if type(kind) is not str:
        if kind is None:
            raise TypeError(f"invalid ASGI message {message!r}: needs a 'type'")
        raise ValueError(f"unexpected ASGI message type {kind!r} for {scope} scope")
    return message, kind


def websocket_scope(
    head: RequestHead,
    scheme: str,
    client: list[Any] | None,
    server: list[Any] | None,
    state: ServerState,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ``websocket`` scope's keys but ``subprotocols`` (ASGI spec 2.4), which the ``http``
    scope shares (``ASGICycle.call_app`` builds that one itself, in step with this: a call
    costs a request about 550 instructions). ``extensions``: a dict of the scope's own, as
    middleware may add to it."""
    root_path = state.root_path
    raw_path = head.raw_path
    path = decode_path(raw_path) if PERCENT in raw_path else raw_path.decode("ascii")
    scope = {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": head.http_version,
        "scheme": scheme,
        # ASGI: 'path' includes root_path, 'raw_path' is as received.
        "path": root_path + path if root_path else path,
        "raw_path": raw_path,
        "query_string": head.query_string,
        "root_path": root_path,
        "headers": head.headers,
        "client": client,
        "server": server,
        "extensions": extensions,
    }
    if state.lifespan_state is not None:
        scope["state"] = state.lifespan_state.copy()
    return scope


# Subclassed at run time by interpreted classes (metrics.py, access_log.py; tests), which
# mypyc allows only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class ASGICycle(RequestCycle):
    __slots__ = ()  # (its own fields, _start and _request_done, are RequestCycle's slots)

    def call_app(self) -> Awaitable[None]:
        # http.response.start is held until the first body message, so that a response
        # complete in one body message gets a content-length and goes out in one write.
        # (Set here rather than in an __init__ of its own: one call fewer per request.)
        self._start: tuple[Any, Any] | None = None
        self._request_done = False
        stream = self.stream
        state = stream.state
        head = self.head
        root_path = state.root_path
        raw_path = head.raw_path
        path = decode_path(raw_path) if PERCENT in raw_path else raw_path.decode("ascii")
        scope = {  # websocket_scope's keys, and the method
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": head.http_version,
            "scheme": self.scheme,
            "method": head.method,
            "path": root_path + path if root_path else path,
            "raw_path": raw_path,
            "query_string": head.query_string,
            "root_path": root_path,
            "headers": head.headers,
            "client": self.client,
            "server": stream.server,
            # A dict of the scope's own, as middleware may add to it. (Copied: cheaper than a
            # literal of more than one entry; the extensions' own dicts are never written to.)
            "extensions": EXTENSIONS.copy(),
        }
        if state.lifespan_state is not None:
            scope["state"] = state.lifespan_state.copy()
        return state.app(scope, self.receive, self.send)  # type: ignore[no-any-return]

    async def receive(self) -> dict[str, Any]:
        if self._request_done or self.disconnected:
            # ASGI: after the whole body, receive() waits for the client to leave or the
            # response to end, then says http.disconnect.
            await self.wait_disconnect()
            return dict(_DISCONNECT)
        data, more, closed = await self.read_body()
        if closed:
            return dict(_DISCONNECT)
        if not more:
            self._request_done = True
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        fields, kind = read_message(message, "an http")
        if kind == "http.response.body":
            body = fields.get("body", b"")
            if type(body) is not bytes:
                body = check_bytes(body, "body")
            more = fields.get("more_body", False)  # (only its truth is used)
            start = self._start
            if start is not None:
                self._start = None
                self.write_start(start[0], start[1], body, more)
            else:
                # (Announced trailers end the response: the last body message leaves it open.)
                self.write_body(body, more or hasattr(self, "trailers"))
        elif kind == "http.response.start":
            if self._start is not None or self.response.state is not _IDLE:
                if self.disconnected:  # (answered for the app: a 413 for a body too large)
                    raise ClientDisconnected()
                raise RuntimeError("http.response.start sent twice")
            try:
                status = fields["status"]
            except KeyError:
                raise ValueError("http.response.start needs a 'status'") from None
            if type(status) is not int or status < 200 or status > 599:
                # Checked here, not when the held start is written, so that the error points at
                # the message that caused it. (1xx interim responses are not ASGI messages.)
                check_status(status, interim=False)
            headers = fields.get("headers", ())
            if "trailers" in fields and fields["trailers"]:  # noqa: RUF019 (faster)
                # No content-length to find by holding the start: it goes now, the body to come
                # and its trailers after it.
                self.trailers = []
                self.write_start(status, headers, b"", True)
            else:
                self._start = (status, headers)
                return
        elif kind == "http.response.early_hint":
            self.early_hint(fields)
        elif kind == "http.response.trailers":
            self.write_trailers(fields.get("headers", ()), fields.get("more_trailers", False))
        elif kind == "http.response.pathsend" or kind == "http.response.zerocopysend":
            await self.send_file(kind, fields)
        else:
            raise ValueError(f"unexpected ASGI message type {kind!r} for an http scope")
        stream = self.stream
        if stream.write_blocked:
            await stream.drain()

    def early_hint(self, message: MutableMapping[str, Any]) -> None:
        """``103 Early Hints`` (RFC 8297) with a ``link`` field per link: an interim response,
        as the messaging interface sends one (SPEC), on the same path (never to an HTTP/1.0
        client: RFC 9110 section 15.2)."""
        if self._start is not None or self.response.state is not _IDLE:
            raise RuntimeError("http.response.early_hint after http.response.start")
        links = message.get("links", ())
        if isinstance(links, (bytes, str)):
            raise TypeError(f"invalid links {links!r}: must be a list of bytes")
        self.write_start(103, [(b"link", check_bytes(link, "links")) for link in links], b"", False)

    async def send_file(self, kind: str, message: MutableMapping[str, Any]) -> None:
        """The ``http.response.pathsend`` and ``http.response.zerocopysend`` extensions: a file
        (a ``path``; a ``file`` object, ``offset``, ``count``) as the body or its next bytes,
        sent with ``os.sendfile`` on plain-TCP HTTP/1.1 (``RequestCycle.write_file``)."""
        start = self._start
        if start is None and self.response.state is _IDLE:
            raise RuntimeError(f"{kind} before http.response.start")
        if kind == "http.response.pathsend":
            file, offset, count, more = message.get("path"), None, None, False
            if not isinstance(file, str):
                raise TypeError(f"invalid 'path' {file!r}: must be a str")
        else:
            file, offset, count = message.get("file"), message.get("offset"), message.get("count")
            more = bool(message.get("more_body", False))
        # (Announced trailers end the response: the file leaves it open.)
        await self.write_file(start, b"", file, offset, count, more or hasattr(self, "trailers"))


# Subclassed at run time by interpreted classes (metrics.py, access_log.py; tests), which
# mypyc allows only where it is told.
@mypyc_attr(allow_interpreted_subclasses=True)
class TLSASGICycle(ASGICycle):
    """``ASGICycle`` on a TLS server: the scope's extensions have ``tls``, the connection's
    (``tls_info.py``). A class of its own, so that plain HTTP pays nothing for it."""

    __slots__ = ()

    def call_app(self) -> Awaitable[None]:
        self._start = None
        self._request_done = False
        stream = self.stream
        state = stream.state
        extensions: dict[str, Any] = EXTENSIONS.copy()
        if stream.tls is not None:
            extensions["tls"] = stream.tls
        scope = websocket_scope(self.head, self.scheme, self.client, stream.server, state,
                                extensions)  # fmt: skip
        scope["type"] = "http"
        scope["method"] = self.head.method
        return state.app(scope, self.receive, self.send)  # type: ignore[no-any-return]


def asgi2_to_asgi3(app: Any) -> ASGIApp:
    """ASGI 2 (``app(scope)`` returns ``instance(receive, send)``) as an ASGI 3 callable."""

    async def asgi3(scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


class ASGIWebSocket(WebSocketSession, SendsNowait):
    """The ``websocket`` scope, its events and messages (ASGI spec 2.4), including the
    ``websocket.http.response`` extension to deny a handshake with any HTTP response."""

    # (send_shared is the session's, not SendsNowait's (which declines): a group's message,
    # framed once, for the broadcast middleware's reply channel on this send
    # (broadcast._ServerASGIReply). Hence the session first among the bases, not an alias
    # ``send_shared = WebSocketSession.send_shared``, which mypyc does not compile.)

    async def call_app(self) -> None:
        state = self.state
        extensions: dict[str, Any] = {"websocket.http.response": {}}
        if self.tls is not None:  # the connection's (ASGI TLS extension)
            extensions["tls"] = self.tls
        scope = websocket_scope(self.head, self.scheme, self.client, self.server,
                                 state, extensions)  # fmt: skip
        scope["subprotocols"] = self.core.subprotocols
        self._connect_sent = False
        self._denial: tuple[int, Any, list[bytes]] | None = None
        await state.app(scope, self.receive, self.send)
        if self.core.state is _PENDING:
            logger.error(
                "ASGI app returned without accepting or closing the WebSocket %s", self._target()
            )
        elif self.core.is_open:
            self.core.close(1000, "")
            self.flush_core()

    async def receive(self) -> dict[str, Any]:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        event = await self.next_event()
        if isinstance(event, WSMessage):
            if event.text is not None:
                return {"type": "websocket.receive", "text": event.text}
            return {"type": "websocket.receive", "bytes": event.data}
        return {"type": "websocket.disconnect", "code": event.code, "reason": event.reason}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        fields, kind = read_message(message, "a websocket")
        pending = self.core.state is _PENDING
        if kind == "websocket.send":
            text, data = fields.get("text"), fields.get("bytes")
            if text is not None and type(text) is not str:
                raise TypeError(f"invalid 'text' {text!r}: must be str")
            if text is None:
                if data is None:
                    raise ValueError("websocket.send needs 'text' or 'bytes'")
                data = check_bytes(data, "bytes")
            await self.send_message(text, data if text is None else None, None)
        elif kind == "websocket.accept":
            if not pending:
                raise RuntimeError("websocket.accept after the handshake was answered")
            self.accept(fields.get("subprotocol"), fields.get("headers") or ())
        elif kind == "websocket.close":
            if pending:
                self.reject(403)  # ASGI: a close before the accept rejects the handshake
                return
            code = close_code(fields.get("code", 1000)) or 1000
            self.check_open()
            self.core.close(code, fields.get("reason") or "")
            self.flush_core()
        elif kind == "websocket.http.response.start":
            if not pending or self._denial is not None:
                raise RuntimeError(f"{kind} after the handshake was answered")
            self._denial = (check_status(fields["status"], interim=False),
                            fields.get("headers", ()), [])  # fmt: skip
        elif kind == "websocket.http.response.body":
            if self._denial is None:
                raise RuntimeError(f"{kind} before websocket.http.response.start")
            status, headers, body = self._denial
            body.append(check_bytes(fields.get("body", b""), "body"))
            if not fields.get("more_body", False):
                self.reject(status, headers, b"".join(body))
        else:
            raise ValueError(f"unexpected ASGI message type {kind!r} for a websocket scope")
