"""The ASGI ``tls`` extension (ASGI TLS extension 0.2) and the messaging interface's ``tls`` key
(SPEC.md): over HTTPS and WSS, on HTTP/1.1 and HTTP/2, with and without client certificates;
made once per connection, and absent over plain HTTP."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import h2.events
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.helpers import RawClient, running_server
from tests.worker.h2client import H2Client
from uvicorn.worker.tls_info import rfc4514_name

REQUEST = b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"
CLIENT_NAME = "CN=alice,O=Example\\, Inc.,C=FR"  # (the subject, RFC 4514: last RDN first)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(path))  # fmt: skip


def _sign(d: Path, name: str, subject: str, issuer: str, ext: str) -> None:
    _key(d / f"{name}.key")
    _openssl("req", "-new", "-key", str(d / f"{name}.key"), "-subj", subject,
              "-out", str(d / f"{name}.csr"))  # fmt: skip
    (d / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{issuer}.pem"),
             "-CAkey", str(d / f"{issuer}.key"), "-CAcreateserial", "-days", "2",
             "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root CA, the server's certificate, and a client certificate signed by an
    intermediate CA (the client sends both: a chain of two)."""
    d = tmp_path_factory.mktemp("pki")
    _key(d / "root.key")
    _openssl("req", "-x509", "-key", str(d / "root.key"), "-out", str(d / "root.pem"),
             "-days", "2", "-subj", "/CN=test root",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    ca = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
          "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")  # fmt: skip
    leaf = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")  # fmt: skip
    _sign(d, "inter", "/CN=test intermediate", "root", ca)
    names = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    _sign(d, "server", "/CN=localhost", "root", leaf + "extendedKeyUsage=serverAuth\n" + names)
    _sign(d, "client", "/C=FR/O=Example, Inc./CN=alice", "inter",
          leaf + "extendedKeyUsage=clientAuth\n")  # fmt: skip
    (d / "client-chain.pem").write_text((d / "client.pem").read_text()
                                        + (d / "inter.pem").read_text())  # fmt: skip
    return d


def pem(path: Path) -> str:
    """The PEM of the first certificate in ``path``, normalized as ``ssl`` writes it."""
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(path.read_text()))


def server_options(pki: Path, cert_reqs: int = 0, **options: Any) -> dict[str, Any]:
    if options.get("interface") == "asgi":
        options["interface"] = "asgi3"
    options.update(ssl_keyfile=str(pki / "server.key"), ssl_certfile=str(pki / "server.pem"))
    if cert_reqs:
        options.update(ssl_ca_certs=str(pki / "root.pem"), ssl_cert_reqs=cert_reqs)
    return options


def client_context(pki: Path, cert: bool = False, alpn: str = "http/1.1") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "root.pem"))
    context.set_alpn_protocols([alpn])
    if cert:
        context.load_cert_chain(str(pki / "client-chain.pem"), str(pki / "client.key"))
    return context


class Seen:
    """What the apps saw: the ``tls`` value (or ``absent``) of each request or connect."""

    absent = object()

    def __init__(self) -> None:
        self.tls: list[Any] = []
        self.extensions: list[set[str]] = []
        self.keys: list[list[str]] = []  # of each message or scope
        self.request: list[tuple[Any, ...]] = []  # (type or channel, method, path, body)


def apps(seen: Seen) -> dict[str, Any]:
    async def messaging(message: dict[str, Any], channels: dict[str, Any]) -> None:
        if message["channel"] in ("http.request", "websocket.connect"):
            seen.tls.append(message.get("tls", Seen.absent))
            seen.keys.append(list(message))
            seen.request.append(
                (message["channel"], message["method"], message["path"], message["body"])
            )
        if message["channel"] == "http.request":
            await channels["reply"].send({"status": 200, "content": b"ok"})
        elif message["channel"] == "websocket.connect":
            await channels["reply"].send({"accept": True, "text": "hi"})

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        seen.tls.append(scope["extensions"].get("tls", Seen.absent))
        seen.extensions.append(set(scope["extensions"]))
        seen.keys.append(list(scope))
        seen.request.append((scope["type"], scope.get("method"), scope["path"], None))
        if scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return {"messaging": messaging, "asgi": asgi}


def iana_number(context: ssl.SSLContext, name: str) -> int:
    """The IANA number of a suite the client negotiated, from the client's OpenSSL (its id's
    low 16 bits), not from the server's table."""
    (suite,) = [suite for suite in context.get_ciphers() if suite["name"] == name]
    return int(suite["id"]) & 0xFFFF


def check(tls: Any, pki: Path, client: ssl.SSLObject | None, chain: bool) -> None:
    assert tls is not Seen.absent
    assert set(tls) == {"server_cert", "client_cert_chain", "client_cert_name",
                        "client_cert_error", "tls_version", "cipher_suite"}  # fmt: skip
    assert tls["server_cert"] == pem(pki / "server.pem")
    if chain:
        assert tls["client_cert_chain"] == [pem(pki / "client.pem"), pem(pki / "inter.pem")]
        assert tls["client_cert_name"] == CLIENT_NAME
    else:
        assert list(tls["client_cert_chain"]) == []
        assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    if client is not None:  # what the client's side of the handshake says
        assert tls["server_cert"] == ssl.DER_cert_to_PEM_cert(client.getpeercert(True))
        assert tls["tls_version"] == {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}[client.version()]
        cipher = client.cipher()
        assert cipher is not None
        assert tls["cipher_suite"] == iana_number(client.context, cipher[0])


async def h1_requests(port: int, context: ssl.SSLContext, count: int = 2) -> ssl.SSLObject:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    client = RawClient(reader, writer)
    try:
        for _ in range(count):
            await client.send(REQUEST)
            assert (await client.read_response()).status == 200
        return writer.get_extra_info("ssl_object")  # type: ignore[no-any-return]
    finally:
        writer.close()


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
@pytest.mark.parametrize("cert_reqs", [0, 1])  # none, optional (and none sent)
async def test_https_without_client_certificate(pki: Path, interface: str, cert_reqs: int) -> None:
    seen = Seen()
    options = server_options(pki, cert_reqs, interface=interface)
    async with running_server(apps(seen)[interface], **options) as server:
        client = await h1_requests(server.port, client_context(pki))
    assert len(seen.tls) == 2
    check(seen.tls[0], pki, client, chain=False)
    assert seen.tls[0] is seen.tls[1]  # made once for the connection, not per request


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
@pytest.mark.parametrize("cert_reqs", [1, 2])  # optional, required
async def test_https_with_client_certificate_chain(
    pki: Path, interface: str, cert_reqs: int
) -> None:
    seen = Seen()
    options = server_options(pki, cert_reqs, interface=interface)
    async with running_server(apps(seen)[interface], **options) as server:
        client = await h1_requests(server.port, client_context(pki, cert=True))
        if cert_reqs == 1:  # another connection, without a certificate: its own dict
            other = await h1_requests(server.port, client_context(pki), count=1)
            check(seen.tls[2], pki, other, chain=False)
    check(seen.tls[0], pki, client, chain=True)
    assert seen.tls[0] is seen.tls[1]


@pytest.mark.parametrize(
    ("cipher", "number"),
    [("ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B), ("ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9)],
)
async def test_tls_1_2_version_and_cipher_suite(pki: Path, cipher: str, number: int) -> None:
    seen = Seen()
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    async with running_server(apps(seen)["asgi"], **server_options(pki)) as server:
        client = await h1_requests(server.port, context, count=1)
    check(seen.tls[0], pki, client, chain=False)
    assert (seen.tls[0]["tls_version"], seen.tls[0]["cipher_suite"]) == (0x0303, number)


async def test_tls_1_3(pki: Path) -> None:
    seen = Seen()
    context = client_context(pki)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    async with running_server(apps(seen)["asgi"], **server_options(pki)) as server:
        client = await h1_requests(server.port, context, count=1)
    check(seen.tls[0], pki, client, chain=False)
    assert seen.tls[0]["tls_version"] == 0x0304
    assert seen.tls[0]["cipher_suite"] in (0x1301, 0x1302, 0x1303)  # RFC 8446 appendix B.4


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
async def test_plain_http_has_no_tls(interface: str) -> None:
    seen = Seen()
    options = server_options(Path(), interface=interface)
    del options["ssl_keyfile"], options["ssl_certfile"]
    async with running_server(apps(seen)[interface], **options) as server:
        assert (await server.request(REQUEST)).status == 200
    assert seen.tls == [Seen.absent]


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
@pytest.mark.parametrize("cert", [False, True])
async def test_http2_streams_share_their_connection_s_tls(
    pki: Path, interface: str, cert: bool
) -> None:
    seen = Seen()
    options = server_options(pki, 1, interface=interface)
    async with (
        running_server(apps(seen)[interface], **options) as server,
        httpx.AsyncClient(verify=client_context(pki, cert, "h2"), http2=True) as client,
    ):
        url = f"https://localhost:{server.port}/"
        responses = await asyncio.gather(*(client.get(url) for _ in range(3)))
    assert [(r.http_version, r.status_code) for r in responses] == [("HTTP/2", 200)] * 3
    check(seen.tls[0], pki, None, chain=cert)
    assert seen.tls[0]["tls_version"] in (0x0303, 0x0304)
    assert seen.tls[0] is seen.tls[1] is seen.tls[2]


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
async def test_tls_requests_get_what_plain_ones_do_and_tls(pki: Path, interface: str) -> None:
    """(TLS servers build the message or scope in a request cycle class of their own.)"""
    seen = Seen()
    plain_options = server_options(pki, interface=interface)
    del plain_options["ssl_keyfile"], plain_options["ssl_certfile"]
    request = b"POST /a%20b?q HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\nhi"
    async with running_server(apps(seen)[interface], **plain_options) as server:
        assert (await server.request(request)).status == 200
    options = server_options(pki, interface=interface)
    async with running_server(apps(seen)[interface], **options) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(pki), server_hostname="localhost"
        )
        client = RawClient(reader, writer)
        await client.send(request)
        assert (await client.read_response()).status == 200
        writer.close()
    plain, tls = seen.keys
    assert sorted(tls) == sorted([*plain, "tls"] if interface == "messaging" else plain)
    assert seen.request[0] == seen.request[1]
    assert seen.request[0][:3] == ("http.request" if interface == "messaging" else "http",
                                   "POST", "/a b")  # fmt: skip
    if interface == "asgi":
        assert seen.extensions[1] == seen.extensions[0] | {"tls"}


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
@pytest.mark.parametrize("cert", [False, True])
async def test_wss_over_http1(pki: Path, interface: str, cert: bool) -> None:
    seen = Seen()
    options = server_options(pki, 1, interface=interface)
    async with (
        running_server(apps(seen)[interface], **options) as server,
        connect(f"wss://localhost:{server.port}/", ssl=client_context(pki, cert)) as ws,
    ):
        assert await ws.recv() == "hi"
        client = ws.transport.get_extra_info("ssl_object")
    check(seen.tls[0], pki, client, chain=cert)


@pytest.mark.parametrize("interface", ["messaging", "asgi"])
async def test_wss_over_http2(pki: Path, interface: str) -> None:
    """RFC 8441: an extended CONNECT on a TLS connection (ALPN h2)."""
    seen = Seen()
    options = server_options(pki, 2, interface=interface)
    async with running_server(apps(seen)[interface], **options) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(pki, True, "h2"),
            server_hostname="localhost",
        )  # fmt: skip
        client = H2Client(reader, writer, True)
        client.conn.initiate_connection()
        client.flush()
        client.start_reading()
        await client.until(lambda: client.conn.remote_settings.enable_connect_protocol)
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream_id, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", "/"), (":authority", "localhost"), ("sec-websocket-version", "13"),
        ])  # fmt: skip
        client.flush()
        await client.until(
            lambda: any(isinstance(e, h2.events.DataReceived) for e in client.events)
        )
        responses = [e for e in client.events if isinstance(e, h2.events.ResponseReceived)]
        assert dict(responses[0].headers)[b":status"] == b"200"
        check(seen.tls[0], pki, writer.get_extra_info("ssl_object"), chain=True)
        client.close()


def test_rfc4514_names() -> None:
    assert rfc4514_name(((("commonName", "a"),),)) == "CN=a"
    subject = ((("domainComponent", "org"),), (("domainComponent", "example"),),
               (("organizationalUnitName", "x"), ("commonName", "y")))  # fmt: skip
    assert rfc4514_name(subject) == "OU=x+CN=y,DC=example,DC=org"
    # RFC 4514 section 2.4: special characters, a leading '#' or space, a trailing space.
    assert rfc4514_name(((("commonName", '#a,b+c"d\\e<f>g;h '),),)) == (
        'CN=\\#a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\ '
    )
    assert rfc4514_name(((("commonName", " "),),)) == "CN=\\ "
    # Types without a short name are written as their dotted OID (section 2.3).
    assert rfc4514_name(((("emailAddress", "a@b"),),)) == "1.2.840.113549.1.9.1=a@b"
