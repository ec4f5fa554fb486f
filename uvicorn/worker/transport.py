"""What the uvloop protocols share (the HTTP/1.1 connection, the WebSocket session): writing to
the transport (coalescing, flow control, closing) and one lazily re-armed timer."""

from __future__ import annotations

import _socket
import asyncio
import socket
from typing import Final

from uvicorn.exceptions import ClientDisconnected

# Writes smaller than this are gathered until the loop next waits for I/O, so a response
# streamed in many small sends leaves in few packets; bigger ones go straight to the socket.
COALESCE_LIMIT: Final = 64 * 1024
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux


class TransportProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.closed = False
        # Corked since accept (its listener was: ``supervisor/sockets.py``), and nothing
        # written yet: the first write that is not the connection's last uncorks it.
        self.corked = False
        self.read_paused = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires

    def _pause_reading(self, pause: bool) -> None:
        """Pause or resume reading from the socket (back-pressure on the peer)."""
        if pause is not self.read_paused and not self.closed:
            self.read_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # One timer per connection, re-armed lazily: moving a deadline later costs nothing (the
    # timer, firing early, re-arms itself for the real deadline in ``_on_timer()``), so a busy
    # connection does not create and cancel a timer per request.

    def _arm(self, deadline: float) -> None:
        """Make the timer fire at ``deadline`` at the latest."""
        timer = self._timer
        if timer is None or self._timer_at > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._fire)
            self._timer_at = deadline

    def arm_put_off(self) -> None:
        """Arm the timer for ``_timer_at``, a deadline set when it was put off (a new
        connection's: ``ServerState.put_off_timer()``), unless it was armed or the connection
        closed since."""
        if self._timer is None and not self.closed:
            self._arm(self._timer_at)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._on_timer()

    def _on_timer(self) -> None:
        """The connection's timer fired: act on a deadline that passed, or re-arm."""

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
            # _send(), inlined: nearly every response ends here, in one write.
            if self.corked:
                self._uncork()
            transport = self.transport
            transport.write(data)
            if transport.is_closing():
                self._lost()
        else:
            out.append(data)
            self._out_size = len(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)

    def write_pieces(self, pieces: list[bytes | memoryview]) -> None:
        """Send ``pieces`` now, after what is queued, without joining them (``writev``)."""
        if self.closed:
            return
        if self._out:
            self._flush()
        if self.corked:
            self._uncork()
        transport = self.transport
        transport.writelines(pieces)
        if transport.is_closing():
            self._lost()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and not self.closed:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._out_size = 0
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self.corked:
            self._uncork()
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

    def drain_waiter(self) -> asyncio.Future[None]:
        """The future ``drain()`` waits on: woken when writing resumes, when the connection is
        lost, and by ``wake_drain()`` (``files.py``: the socket became writable)."""
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = self.loop.create_future()
        return waiter

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def wake_drain(self) -> None:
        # (A method, not a class attribute ``wake_drain = _wake_drain``: mypyc does not
        # compile such an alias. Called once per socket writability, never per request.)
        self._wake_drain()

    def close(self) -> None:
        if not self.closed:
            self._flush()
            self.transport.close()
            self.closed = True

    def close_corked(self) -> None:
        """close(), with the bytes still queued and the FIN in one segment where they were
        two: the socket corked, the kernel holds back the last, partial segment until
        close(2), which sends it with the FIN (RFC 9293 section 3.10.4). A FIN alone costs
        the peer a wake-up of its own (over the loopback device, from our write path: a
        local proxy got ~1.2x the `Connection: close` requests a second, docs/architecture.md).

        Only on plain TCP (the caller knows), and for a peer that has nothing unread left in
        our kernel: close(2) with unread bytes resets the connection and drops what the cork
        still holds (reading paused, or a request body not all read, leave such bytes). And
        only where close() follows at once: the kernel would hold the bytes up to 200 ms
        otherwise."""
        if self._out and not self.read_paused and _TCP_CORK is not None:
            if self.corked:  # since accept, and nothing written: left so, not uncorked
                self.corked = False
            else:
                self._set_cork(1)
        self.close()

    def _uncork(self) -> None:
        """Before the first write that is not the connection's last, on a socket corked since
        accept: what is written from now on leaves at once (``TCP_NODELAY``, as uvloop sets
        it), not up to 200 ms later."""
        self.corked = False
        self._set_cork(0)

    def _set_cork(self, value: int) -> None:
        option = _TCP_CORK
        if option is None:
            return
        try:
            fd = self.transport.get_extra_info("socket").fileno()
            # A socket object of the C type on the transport's descriptor, released after:
            # uvloop's setsockopt() makes an interpreted socket.socket for each call, ~0.9 us
            # more. (Its family is not the connection's for IPv6: setsockopt() ignores it.)
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, option, value)
            finally:
                sock.detach()
        except (OSError, AttributeError):
            pass  # the socket is gone already (or a test's transport has none)
