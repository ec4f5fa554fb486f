"""The seam between a request and the protocol that carries it.

A request cycle (``cycle.py``) sees its exchange with the client only as a ``Stream``: send the
response's head, body and trailers, wait for write room, pause and resume reading the body, end,
abort. HTTP/1.1 carries one stream at a time on a connection (``HTTPConnection`` is the stream of
the request it answers); a protocol that multiplexes carries many. Per-request logic (body
buffering and back-pressure, 100-continue, failures and their 500s, the two app interfaces) is
written once, against this interface.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from uvicorn.protocols.http_response import BodyFraming
from uvicorn.worker.state import ServerState


class Stream(Protocol):
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def state(self) -> ServerState: ...

    @property
    def server(self) -> list[Any] | None: ...

    @property
    def tls(self) -> dict[str, Any] | None:
        """The connection's ``tls`` extension (``tls_info.py``); None when it is not TLS."""

    @property
    def peer_eof(self) -> bool:
        """The client will send nothing more (it may still read)."""

    @property
    def write_paused(self) -> bool:
        """The peer reads slower than the response is sent: drain() waits."""

    @property
    def response(self) -> BodyFraming:
        """Of the request being answered (``Response`` on HTTP/1.1, ``H2Response`` on
        HTTP/2): its ``state`` (IDLE until the head is sent, STREAMING, then DONE), ``status``
        and (HTTP/1.1) ``keep_alive``, whether the connection may serve another request. The
        same object for the whole of a request (a request cycle holds it)."""

    def send_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        """The response's head (or an interim 1xx one) and its first body bytes; raises
        TypeError or ValueError for a malformed head, RuntimeError in the wrong state."""

    def send_body(self, content: bytes, more: bool) -> None:
        """More of the body; the last piece when ``more`` is false. Raises RuntimeError."""

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        """End a response whose last body piece said more would come, with these trailer
        fields (checked by ``http_trailers.check_trailers``), or drop them where the protocol
        or the client cannot take them. Raises RuntimeError as ``send_body`` does."""

    async def send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        """The body's next ``count`` bytes, from descriptor ``fd`` at ``offset`` (``files.py``:
        ``os.sendfile`` where the protocol allows, else read in pieces), waiting for write room
        as it goes; the last of the body when ``more`` is false. Raises RuntimeError as
        ``send_body`` does, or when the file ends early (the stream is then ended), and
        ``ClientDisconnected``."""

    def send_continue(self) -> None:
        """``100 Continue``: the app is reading the body the client waits to send."""

    def send_refusal(self, status: int) -> None:
        """A complete plain-text response (a 500 for an app that failed before answering), and
        the end of the stream."""

    def refuse_body(self, status: int) -> None:
        """The rest of the body of the request whose body arrives is refused
        (``--limit-request-body``): answer ``status`` as ``send_refusal`` does if its response
        has not started (else it is cut short, as by ``abort``), and stop the client sending:
        HTTP/1.1 closes the connection once the answer is written (a request still waiting its
        turn is answered in its turn), HTTP/2 resets the stream (NO_ERROR after the answer)."""

    async def drain(self) -> None:
        """Wait for write room (raises ``ClientDisconnected`` once the client is gone)."""

    def update_reading(self) -> None:
        """Pause or resume reading, as the body waiting unread requires."""

    def finished(self, cycle: Any) -> None:
        """The app's call for ``cycle`` returned: the stream goes on or ends."""

    def abort(self) -> None:
        """The response cannot be completed: end the stream at once (the connection closes)."""
