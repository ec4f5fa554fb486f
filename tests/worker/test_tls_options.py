"""--ssl-ciphers and --ssl-min-version, with real TLS clients: the server's context refuses
what they exclude (a handshake that fails) and negotiates what they allow; by default, TLS 1.2
and 1.3 with Python's cipher list (forward secret, no SHA-1), not the published uvicorn's
'TLSv1' (which admits CBC-SHA1 suites)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UNIT, running_server, tls_certificate

SHA1_SUITE = "ECDHE-ECDSA-AES128-SHA"  # TLS 1.0-era CBC with SHA-1: in 'TLSv1', not by default


async def hello(message: dict[str, Any], channels: dict[str, Any]) -> None:
    await channels["reply"].send({"status": 200, "content": b"hello"})


def client_context(version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> Any:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers + ":@SECLEVEL=0")  # (so that the client offers it)
    return context


async def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str] | None:
    """(TLS version, cipher suite) of a request answered over ``context``; None when the
    handshake fails."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context), 5 * UNIT
        )
    except (ssl.SSLError, ConnectionResetError):  # (the server's alert, or its close)
        return None
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5 * UNIT)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.version(), ssl_object.cipher()[0]
    finally:
        writer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return tls_certificate(Path(tmp_path_factory.mktemp("tls")))  # an EC (P-256) key


async def test_defaults_tls_1_2_and_1_3_without_sha1_suites(certificate: dict[str, str]) -> None:
    async with running_server(hello, **certificate) as server:
        assert await handshake(server.port, client_context()) == (
            "TLSv1.3", "TLS_AES_256_GCM_SHA384")  # fmt: skip
        version, _ = await handshake(server.port, client_context(ssl.TLSVersion.TLSv1_2)) or ("",)
        assert version == "TLSv1.2"
        assert await handshake(server.port, client_context(ssl.TLSVersion.TLSv1_2,
                                                           SHA1_SUITE)) is None  # fmt: skip


async def test_ssl_min_version_1_3_refuses_tls_1_2(certificate: dict[str, str]) -> None:
    async with running_server(hello, ssl_min_version="1.3", **certificate) as server:
        assert await handshake(server.port, client_context(ssl.TLSVersion.TLSv1_2)) is None
        assert (await handshake(server.port, client_context()) or ("",))[0] == "TLSv1.3"


async def test_ssl_ciphers_chooses_the_tls_1_2_suites(certificate: dict[str, str]) -> None:
    only = "ECDHE-ECDSA-AES128-GCM-SHA256"
    async with running_server(hello, ssl_ciphers=only, **certificate) as server:
        tls12 = client_context(ssl.TLSVersion.TLSv1_2)
        assert await handshake(server.port, tls12) == ("TLSv1.2", only)
        other = client_context(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384")
        assert await handshake(server.port, other) is None
        # TLS 1.3's suites are not a cipher list's to choose (OpenSSL's own).
        assert (await handshake(server.port, client_context()) or ("",))[0] == "TLSv1.3"
    # An operator may ask for the published uvicorn's list, old suites and all.
    async with running_server(hello, ssl_ciphers="TLSv1", **certificate) as server:
        old = client_context(ssl.TLSVersion.TLSv1_2, SHA1_SUITE)
        assert await handshake(server.port, old) == ("TLSv1.2", SHA1_SUITE)
