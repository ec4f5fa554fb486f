"""TLS options through the real command line: a key with a password, and client certificates
verified against --ssl-ca-certs with --ssl-cert-reqs."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.process import CLIProcess
from tests.helpers import UNIT


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate (key encrypted with 'secret') and a client certificate."""
    # With the extensions strict verification asks for (Python 3.13 verifies strictly by
    # default): key usages, key identifiers, and the names in subjectAltName.
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"),
             "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, extra in (("server", ["-passout", "pass:secret"]), ("client", ["-nodes"])):
        key_args = extra if name == "client" else ["-passout", "pass:secret"]
        usage = "serverAuth" if name == "server" else "clientAuth"
        (d / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{name}\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid,issuer\n"
            "subjectKeyIdentifier=hash\nbasicConstraints=critical,CA:FALSE\n"
        )
        _openssl("req", "-newkey", "rsa:2048", *key_args, "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}")  # fmt: skip
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))  # fmt: skip
    return d


def _get(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10 * UNIT) as raw,
        context.wrap_socket(raw, server_hostname="server") as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        response = b""
        while data := sock.recv(65536):
            response += data
        return response


def test_password_protected_key_and_required_client_certificates(pki: Path) -> None:
    with CLIProcess(
        "examples.hello_world:hello_world", "--port", "0",
        "--ssl-keyfile", str(pki / "server.key"), "--ssl-certfile", str(pki / "server.pem"),
        "--ssl-keyfile-password", "secret", "--ssl-ca-certs", str(pki / "ca.pem"),
        "--ssl-cert-reqs", "required",
    ) as server:  # fmt: skip
        port = int(server.wait_for_line(r"https://127\.0\.0\.1:(\d+)").group(1))
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        context.check_hostname = False
        # Without a client certificate the handshake is refused: TLS 1.3 reports it on the
        # first read, as an alert or as the end of the connection, never as a response.
        try:
            refused = _get(port, context)
        except (ssl.SSLError, ConnectionResetError):
            refused = b""
        assert refused == b""  # and the server goes on serving:
        context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        assert _get(port, context).endswith(b"Hello, world")
        assert server.stop() == 0


def test_wrong_key_password_is_a_clear_error(pki: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "examples.hello_world:hello_world", "--port", "0",
         "--ssl-keyfile", str(pki / "server.key"), "--ssl-certfile", str(pki / "server.pem"),
         "--ssl-keyfile-password", "wrong"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
        timeout=30 * UNIT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Error: cannot load TLS certificate or key" in result.stderr
    assert "Traceback" not in result.stderr
