"""Writing to a transport, shared by the HTTP and WebSocket connections: coalescing, flow
control (back-pressure) and closing."""

from __future__ import annotations

import asyncio

from uvicorn.exceptions import ClientDisconnected

# Writes smaller than this are gathered until the loop next waits for I/O, so a response
# streamed in many small sends leaves in few packets; bigger ones go straight to the socket.
COALESCE_LIMIT = 64 * 1024


class StreamProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.closed = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False

    def _lost(self) -> None:
        """The peer is gone (or a write failed): stop writing, wake whoever waits to."""
        self.closed = True
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
