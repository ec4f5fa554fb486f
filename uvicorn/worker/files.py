"""File bodies: the worker's side of SPEC's ``file`` key and of ASGI's
``http.response.pathsend`` and ``http.response.zerocopysend``.

``open_body`` opens what the app named (a path, or a file it opened, with an offset and a count)
in the request cycle, so that a path that cannot be opened raises ``OSError`` from the app's
``send`` before anything was sent. The stream then sends the bytes (``Stream.send_file``):

* plain-TCP HTTP/1.1, ``send_direct``: straight to a duplicate of the socket's descriptor,
  past the transport. To a client on another host, ``os.sendfile``: from the page cache to the
  socket with no copy into Python (uvloop does not implement ``loop.sendfile``). To a client on
  this host (a local proxy, over the loopback device), the file is copied instead, in 512 KiB
  pieces (``os.preadv`` into one buffer, ``os.write``): there ``sendfile``'s packets carry
  references to 4 KiB page-cache pages, which cost the receiver more than the copy costs us
  (64 MiB files to wrk over loopback: 1.9 GB/s with sendfile, 2.8 with the copy, the same client
  CPU; docs/architecture.md). What the transport still holds is written first; while the
  socket's buffer is full (``EAGAIN``) it waits for the socket to be writable, and gives its
  buffer back meanwhile (what it held unwritten is read again after): a slow client holds the
  send, but no buffer.
* TLS, and HTTP/2, ``send_chunks``: the file read in 64 KiB pieces (``os.pread``, page cache:
  cheaper than a thread's hand-over, see docs/architecture.md), each an ordinary body piece of
  the stream (chunked framing, or DATA frames within the flow-control windows), the next read
  only once the stream has room (back-pressure: one piece in memory per response).

A file that ends before the bytes promised (its count, or the app's content-length) is the app's
error: the stream is ended (HTTP/1.1 closes the connection, HTTP/2 resets the stream) and
``RuntimeError`` raised.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from typing import Any, Protocol

from uvicorn.exceptions import ClientDisconnected
from uvicorn.protocols.http_files import body_frame
from uvicorn.protocols.http_response import Response
from uvicorn.worker.transport import TransportProtocol

CHUNK = 64 * 1024  # what one read takes of a file sent in pieces
# One read (and one write) of a file copied to a local client. Fewer, larger writes: each write
# to a loopback socket runs the receiver's TCP input and wakes it, and under BBR (the measured
# host's default) TCP paces each burst itself, lo having no fq qdisc. 1 MiB files to 16 local
# clients (wrk), quiet host, Zen 4 EPYC, Linux 6.18, BBR: 128 KiB pieces 1,740-1,840 files/s
# (worker CPU ~540 us a file), 256 KiB ~2,290 (~430), 512 KiB 2,690-3,070 (~340), 1 MiB
# 2,900-3,380 (~310); with Reno 2,740 / 2,890 / 3,320; 64 MiB files: 512 KiB as 1 MiB or
# better. (On a Zen 3 EPYC, on a noisy host, 128 KiB had measured best: docs/architecture.md.)
# 512 KiB: most of the gain, half the memory held per send.
COPY_CHUNK = 512 * 1024
POOLED_BUFFERS = 4  # copy buffers a worker keeps for its next files (2 MiB at most)
_BUFFERS: list[bytearray] = []
# Bytes a file send writes before it lets the loop run others: a client that reads as fast as
# we write (a local one, most of all) would otherwise hold the loop for the whole file, and
# every other connection of the worker wait (a 64 MiB file to 16 clients: p99 3.6 s).
FAIR_SHARE = 1024 * 1024
# Copy rather than sendfile to a client on this host (see above); the tests of sendfile set it
# False to take that path with a local client.
COPY_TO_LOCAL_CLIENTS = True
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_LENGTH = b"content-length"


class FileBody:
    """An open file body: ``count`` bytes of descriptor ``fd`` from ``offset``."""

    __slots__ = ("fd", "offset", "count", "given", "_file", "_owned")

    def __init__(self, fd: int, offset: int, count: int, given: bool, file: Any, owned: bool):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.given = given  # the app said how many bytes (else: to the end of the file)
        self._file = file  # the app's file object, whose position follows the bytes sent
        self._owned = owned

    def sent(self) -> None:
        """The bytes went: a file sent from its current position is left past them (as a read
        would leave it)."""
        if self._file is not None:
            self._file.seek(self.offset + self.count)

    def close(self) -> None:
        if self._owned:
            self._owned = False
            os.close(self.fd)


def _check_int(value: Any, key: str) -> int:
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"invalid {key!r} {value!r}: must be an int")
        value = int(value)
    if value < 0:
        raise ValueError(f"invalid {key!r} {value!r}: must be >= 0")
    return value  # type: ignore[no-any-return]


def open_body(file: Any, offset: Any = None, count: Any = None) -> FileBody:
    """Open ``file``: a path (str, bytes, os.PathLike), opened and closed here, or an open file
    object (``fileno()``), read from ``offset`` (default: its current position, which then
    moves past the bytes sent) for ``count`` bytes (default: to its end). OSError when the path
    cannot be opened or is not a regular file; TypeError or ValueError for a bad argument."""
    offset = None if offset is None else _check_int(offset, "offset")
    count = None if count is None else _check_int(count, "count")
    given = count is not None
    moves = None
    if isinstance(file, (str, bytes, os.PathLike)):
        fd = os.open(file, _OPEN_FLAGS)
        owned = True
    else:
        try:
            fd = file.fileno()
        except (AttributeError, OSError, ValueError) as exc:
            raise TypeError(
                f"invalid file {file!r}: a path or an open file (with a fileno()) is needed"
            ) from exc
        owned = False
        if offset is None:
            offset = file.tell() if hasattr(file, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
            moves = file if hasattr(file, "seek") else None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file: {file!r}")
        offset = offset or 0
        if count is None:
            count = max(0, info.st_size - offset)
        return FileBody(fd, offset, count, given, moves, owned)
    except BaseException:
        if owned:
            os.close(fd)
        raise


def declared_length(headers: Any) -> int | None:
    """The content-length the app set in a response head, if any (None too when it is not
    valid: sending the head then raises)."""
    try:
        for name, value in headers:
            if len(name) == 14 and bytes(name).lower() == _LENGTH:
                return int(value) if bytes(value).isdigit() else None
    except (TypeError, ValueError):
        return None
    return None


class ChunkStream(Protocol):
    """What ``send_chunks`` needs of a ``Stream``."""

    @property
    def write_blocked(self) -> bool: ...

    def send_body(self, content: bytes, more: bool) -> None: ...

    async def drain(self) -> None: ...

    def abort(self) -> None: ...


def _short(body: FileBody, sent: int) -> RuntimeError:
    return RuntimeError(
        f"the file ended after {sent} of the {body.count} bytes promised: response cut"
    )


async def send_chunks(stream: ChunkStream, fd: int, offset: int, count: int, more: bool) -> None:
    """The file's bytes as body pieces of ``stream``, one read at a time, each after the stream
    has room for it."""
    end = offset + count
    if not count:
        stream.send_body(b"", more)
        return
    position = turn = offset
    while position < end:
        data = os.pread(fd, min(CHUNK, end - position), position)
        if not data:
            stream.abort()
            raise _short(FileBody(fd, offset, count, True, None, False), position - offset)
        position += len(data)
        stream.send_body(data, more or position < end)
        if stream.write_blocked:
            await stream.drain()
            turn = position
        elif position - turn >= FAIR_SHARE and position < end:
            await asyncio.sleep(0)  # others' turn
            turn = position


def same_host(client: Any, server: Any) -> bool:
    """The client connects from this host: from a loopback address, or from the address it
    connected to (Linux routes a host's traffic to itself over the loopback device)."""
    if not client:
        return False  # a Unix socket: no loopback packets (and sendfile is a copy anyway)
    host = client[0]
    if server and host == server[0]:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def send_direct(conn: TransportProtocol, response: Response, fd: int, offset: int,
                      count: int, more: bool, local: bool) -> None:  # fmt: skip
    """``count`` bytes of ``fd`` from ``offset`` as the response's next body bytes, written
    straight to a plain-TCP connection's socket: copied if the client is ``local`` (on this
    host), else with ``os.sendfile``."""
    frame = body_frame(response, count, more)
    if frame is None:  # no body (HEAD, 204, 304)
        if not more:
            conn.write(b"", True)
        return
    before, after = frame
    if count:
        conn.write(before, True)  # (and whatever was queued before it)
        if conn.closed:
            raise ClientDisconnected()
        copy = local and COPY_TO_LOCAL_CLIENTS
        await _send_direct(conn, response, fd, offset, count, copy)
    if after or not more:
        conn.write(after, not more)


async def _send_direct(conn: TransportProtocol, response: Response, fd: int, offset: int,
                       count: int, copy: bool) -> None:  # fmt: skip
    transport = conn.transport
    # A descriptor of our own for the socket: the transport's is watched by the loop (which
    # refuses a second watcher on it) and closed by the transport whenever it closes.
    sock = os.dup(transport.get_extra_info("socket").fileno())
    # One of the worker's buffers: a new bytearray per file was zero-filled each time and (at
    # 1 MiB), as soon as other allocations came between two files, taken from the top of the
    # heap that glibc trims (brk and page faults: 1 MiB files at a third of the speed).
    buffer: memoryview | None = None  # (copying) one of them, held while not waiting
    start = stop = 0  # (copying) buffer[start:stop]: read from the file, not yet written
    share = FAIR_SHARE  # what may still be written before others get a turn
    try:
        position, end = offset, offset + count  # the next byte of the file to read or send
        while position < end or start < stop:
            if conn.closed:
                raise ClientDisconnected()
            if transport.get_write_buffer_size():
                # Bytes the transport still holds go first: wait until it has written them.
                await _writable(conn, sock)
                continue
            try:
                if copy and buffer is None:
                    pooled = _BUFFERS.pop() if _BUFFERS else bytearray(COPY_CHUNK)
                    buffer = memoryview(pooled)[: min(COPY_CHUNK, end - position)]
                if buffer is None:
                    # At most a fair share a call: to a fast client one call could send it all
                    # and hold the loop as long.
                    share_max = max(FAIR_SHARE, CHUNK)
                    sent = os.sendfile(sock, fd, position, min(end - position, share_max))
                    position += sent
                    ended = not sent
                else:
                    if start == stop:
                        piece = buffer[: min(len(buffer), end - position)]
                        start, stop = 0, os.preadv(fd, [piece], position)
                        position += stop
                    ended = not stop
                    sent = os.write(sock, buffer[start:stop]) if stop else 0
                    start += sent
            except (BlockingIOError, InterruptedError):
                if buffer is not None:
                    # The buffer goes back while the client is slow (read again after): a
                    # worker's memory then follows its sends in progress, not its slow clients.
                    position -= stop - start
                    start = stop = 0
                    _give_back(buffer)
                    buffer = None
                await _writable(conn, sock)
                share = FAIR_SHARE
                continue
            except OSError as exc:
                if isinstance(exc, (ConnectionError, TimeoutError)):
                    conn.close()
                    raise ClientDisconnected() from exc
                response.abandon()  # the file could not be read: the response is cut
                conn.close()
                raise
            if ended:  # the file ended early
                response.abandon()
                conn.close()
                written = position - offset - (stop - start)
                raise _short(FileBody(fd, offset, count, True, None, False), written)
            share -= sent
            if share <= 0 and (position < end or start < stop):  # (not after the last)
                await asyncio.sleep(0)  # others' turn
                share = FAIR_SHARE
    finally:
        os.close(sock)
        if buffer is not None:
            _give_back(buffer)


def _give_back(view: memoryview) -> None:
    """A copy buffer back to the worker's pool (while it has room)."""
    pooled = view.obj  # (the bytearray that the view, a slice of it, shows)
    view.release()
    if isinstance(pooled, bytearray) and len(_BUFFERS) < POOLED_BUFFERS:
        _BUFFERS.append(pooled)


async def _writable(conn: TransportProtocol, sock: int) -> None:
    """Wait until the socket can take more, or the connection is lost or closed."""
    loop = conn.loop
    waiter = conn.drain_waiter()  # (woken when the connection is lost, too)
    loop.add_writer(sock, conn.wake_drain)
    try:
        await asyncio.shield(waiter)
    finally:
        loop.remove_writer(sock)
