"""permessage-deflate's zlib streams made when first used and the compressor let go when quiet
(``websocket_deflate.LazyDeflate``), against websockets' own client extension: what either side
compresses is read back exactly, before and after the compressor is let go (RFC 7692 section
7.2.1: the server may start a message from an empty window; the client's window carries on)."""

from __future__ import annotations

from websockets.frames import Opcode

from tests.protocols.wsclient import Pair, messages
from uvicorn.protocols.websocket_deflate import LazyDeflate

TEXT = "the same words, again and again: " * 20  # compresses by back-references


def deflating() -> tuple[Pair, LazyDeflate]:
    pair = Pair(client_deflate=True)  # websockets' client offers it, the server accepts
    (extension,) = pair.core.protocol.extensions
    assert isinstance(extension, LazyDeflate)
    return pair, extension


def server_says(pair: Pair, text: str) -> str:
    pair.core.send_text(text)
    frames, _ = pair.server_out()
    (frame,) = frames
    assert frame.opcode is Opcode.TEXT
    return bytes(frame.data).decode()


def client_says(pair: Pair, text: str) -> list[str | bytes | None]:
    pair.client.send_text(text.encode())
    return messages(pair.send(pair.client_out()))


def test_an_idle_connection_holds_no_zlib_stream() -> None:
    _, extension = deflating()
    assert extension.holds == (False, False)


def test_each_stream_is_made_by_its_first_message() -> None:
    pair, extension = deflating()
    assert client_says(pair, TEXT) == [TEXT]
    assert extension.holds == (False, True)
    assert server_says(pair, TEXT) == TEXT
    assert extension.holds == (True, True)


def test_the_compressor_is_let_go_when_quiet_and_messages_still_read_back() -> None:
    pair, extension = deflating()
    for _ in range(3):
        assert server_says(pair, TEXT) == TEXT
    assert not pair.core.release_compressor()  # a message since the last call: kept
    assert extension.holds[0]
    assert pair.core.release_compressor()  # quiet since: let go
    assert extension.holds == (False, False)
    for _ in range(3):  # a new compressor; the client's window carries on
        assert server_says(pair, TEXT) == TEXT
        assert client_says(pair, TEXT) == [TEXT]
    assert not pair.core.release_compressor()
    assert pair.core.release_compressor()
    assert server_says(pair, TEXT + "!") == TEXT + "!"


def test_without_deflate_there_is_nothing_to_let_go() -> None:
    pair = Pair()
    assert not pair.core.release_compressor()
    pair.core.send_text(TEXT)
    assert not pair.core.release_compressor()
