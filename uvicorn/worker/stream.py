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
from abc import abstractmethod
from typing import Any

from uvicorn.compiled import trait
from uvicorn.worker.state import ServerState


# A mypyc trait, not a typing.Protocol: compiled, the request cycle calls its stream through
# the trait's vtable instead of looking each attribute and method up by name (about 1,200
# instructions a request fewer, benchmarks/micro.py). Every stream class is compiled with it:
# an interpreted class cannot inherit from a compiled trait. What the streams keep as plain
# attributes is declared as such here, not as properties: a property of this base would hide
# an attribute that a base class of an implementer sets (pure Python looks data descriptors
# up before an instance's attributes), and mypyc cannot implement a trait's attribute with a
# property.
@trait
class Stream:
    __slots__ = ()  # (pure Python: the H2Stream's own slots, no __dict__)

    loop: asyncio.AbstractEventLoop
    state: ServerState
    server: list[Any] | None
    tls: dict[str, Any] | None  # the connection's ``tls`` extension (tls_info.py); None: no TLS
    # (Each stream's response framing, ``Response`` or ``H2Response``, is handed to the request
    # cycle when it is made: mypyc wants a trait's attribute to have one type everywhere.)

    @property
    @abstractmethod
    def peer_eof(self) -> bool:
        """The client will send nothing more (it may still read)."""

    @property
    @abstractmethod
    def write_blocked(self) -> bool:
        """The response cannot be written on for now: drain() waits (the peer reads slower
        than it is sent, or, on HTTP/2, the flow-control window is shut)."""

    @abstractmethod
    def send_start(self, status: Any, headers: Any, content: bytes, more: bool) -> None:
        """The response's head (or an interim 1xx one) and its first body bytes; raises
        TypeError or ValueError for a malformed head, RuntimeError in the wrong state."""

    @abstractmethod
    def send_body(self, content: bytes, more: bool) -> None:
        """More of the body; the last piece when ``more`` is false. Raises RuntimeError."""

    @abstractmethod
    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        """End a response whose last body piece said more would come, with these trailer
        fields (checked by ``http_trailers.check_trailers``), or drop them where the protocol
        or the client cannot take them. Raises RuntimeError as ``send_body`` does."""

    @abstractmethod
    async def send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        """The body's next ``count`` bytes, from descriptor ``fd`` at ``offset`` (``files.py``:
        ``os.sendfile`` where the protocol allows, else read in pieces), waiting for write room
        as it goes; the last of the body when ``more`` is false. Raises RuntimeError as
        ``send_body`` does, or when the file ends early (the stream is then ended), and
        ``ClientDisconnected``."""

    @abstractmethod
    def send_continue(self) -> None:
        """``100 Continue``: the app is reading the body the client waits to send."""

    @abstractmethod
    def send_refusal(self, status: int) -> None:
        """A complete plain-text response (a 500 for an app that failed before answering), and
        the end of the stream."""

    @abstractmethod
    def refuse_body(self, status: int) -> None:
        """The rest of the body of the request whose body arrives is refused
        (``--limit-request-body``): answer ``status`` as ``send_refusal`` does if its response
        has not started (else it is cut short, as by ``abort``), and stop the client sending:
        HTTP/1.1 closes the connection once the answer is written (a request still waiting its
        turn is answered in its turn), HTTP/2 resets the stream (NO_ERROR after the answer)."""

    @abstractmethod
    async def drain(self) -> None:
        """Wait for write room (raises ``ClientDisconnected`` once the client is gone)."""

    @abstractmethod
    def update_reading(self) -> None:
        """Pause or resume reading, as the body waiting unread requires."""

    @abstractmethod
    def finished(self, cycle: Any) -> None:
        """The app's call for ``cycle`` returned: the stream goes on or ends."""

    @abstractmethod
    def abort(self) -> None:
        """The response cannot be completed: end the stream at once (the connection closes)."""
