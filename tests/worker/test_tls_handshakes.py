"""TLS connections are counted from accept, not from the end of their handshake
(``ServerState.handshakes``), so that a retiring worker waits for a handshake in progress; a
handshake that fails or is abandoned leaves nothing counted."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Watch, running_server, tls_certificate
from uvicorn.worker.connection import HTTPConnection
from uvicorn.worker.state import ServerState


async def hello(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": b"hi"})


def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    """Wakes at each handshake that ended (or whose protocol was freed) and each connection
    made (patched before the server starts: the weak references hold the bound method)."""
    return Watch(
        monkeypatch, (ServerState, "handshake_ended"), (HTTPConnection, "connection_made")
    )


def client_hello() -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return tls, incoming, outgoing


async def test_a_handshake_in_progress_is_counted_until_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = watch(monkeypatch)
    options = tls_certificate(tmp_path)
    async with running_server(hello, interface="messaging", **options) as server:
        state = server.server.state
        assert state is not None
        tls, incoming, outgoing = client_hello()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(outgoing.read())
        incoming.write(await reader.read(65536))  # the server's flight: mid-handshake
        assert len(state.handshakes) == 1 and not state.connections
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
                incoming.write(await reader.read(65536))
        writer.write(outgoing.read())
        await changed.until(lambda: state.connections)
        assert not state.handshakes
        writer.close()


async def test_a_failed_or_abandoned_handshake_leaves_nothing_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = watch(monkeypatch)
    options = tls_certificate(tmp_path)
    async with running_server(hello, interface="messaging", **options) as server:
        state = server.server.state
        assert state is not None
        # One that sends garbage after its ClientHello, one that leaves mid-handshake.
        for ending in (b"\x16\x03\x03\x00\x01\x00" * 4, b""):
            _, _, outgoing = client_hello()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(outgoing.read())
            await reader.read(65536)
            assert len(state.handshakes) == 1
            if ending:
                writer.write(ending)
            else:
                writer.close()
            await changed.until(lambda: not state.handshakes)  # freed with its protocol
            writer.close()
        assert not state.connections
        # And the server serves on.
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert (await reader.read()).endswith(b"hi")
        writer.close()
