"""Listeners through the real command line: Unix sockets, inherited fds, IPv6, TLS, several."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.process import REPO, CLIProcess, free_port, http_get
from tests.helpers import UNIT


def _unix_get(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10 * UNIT)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        response = b""
        while data := sock.recv(65536):
            response += data
        return response


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "server.sock")
    with CLIProcess("tests.e2e.apps:describe", "--uds", path) as server:
        server.wait_for_line(r"Uvicorn running on http\+unix:")
        response = _unix_get(path)
        assert b"'client': None" in response
        assert f"'server': [{path!r}, None]".encode() in response
        assert server.stop() == 0
    assert not Path(path).exists(), "the socket file is removed on exit"


def test_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    with CLIProcess("examples.hello_world:hello_world", "--bind", f"unix:{path}") as server:
        server.wait_for_line(r"Uvicorn running on http\+unix:")
        assert _unix_get(path).endswith(b"Hello, world")
        server.stop()


def test_inherited_fd() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.hello_world:hello_world", "--fd", str(fd)],
        cwd=REPO,
        pass_fds=[fd],
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Uvicorn running on" in line:
                break
        assert http_get(port).endswith(b"Hello, world")
    finally:
        proc.terminate()
        assert proc.wait(10 * UNIT) == 0


def test_several_binds_and_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        ipv6 = True
    except OSError:
        ipv6 = False
    first, second = free_port(), free_port()
    args = ["--bind", f"127.0.0.1:{first}", "--bind", f"localhost:{second}"]
    if ipv6:
        args += ["--bind", "[::1]:0"]
    with CLIProcess("examples.hello_world:hello_world", *args) as server:
        server.wait_for_line(f"http://127.0.0.1:{first}")
        server.wait_for_line(f":{second}")
        assert http_get(first).endswith(b"Hello, world")
        assert http_get(second).endswith(b"Hello, world")
        if ipv6:
            match = server.wait_for_line(r"http://\[::1\]:(\d+)")
            assert http_get(int(match.group(1)), host="::1").endswith(b"Hello, world")
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


def test_tls(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    with CLIProcess(
        "tests.e2e.apps:describe", "--port", "0", "--ssl-keyfile", str(key),
        "--ssl-certfile", str(cert),
    ) as server:  # fmt: skip
        match = server.wait_for_line(r"Uvicorn running on https://127\.0\.0\.1:(\d+)")
        port = int(match.group(1))
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            response = b""
            while data := sock.recv(65536):
                response += data
        assert response.startswith(b"HTTP/1.1 200 OK")
        assert b"'scheme': 'https'" in response
        server.stop()


def test_tls_bad_certificate_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "examples.hello_world:hello_world", "--port", "0",
         "--ssl-keyfile", str(bogus), "--ssl-certfile", str(bogus)],
        cwd=REPO, capture_output=True, text=True, timeout=20 * UNIT,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Error: cannot load TLS certificate or key" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_config_file(tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "ACCESS %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file),
                              "formatter": "plain"},
                     "console": {"class": "logging.StreamHandler"}},
        "loggers": {"uvicorn.access": {"handlers": ["file"], "level": "INFO",
                                       "propagate": False},
                    "uvicorn.error": {"handlers": ["console"], "level": "INFO"}},
    }  # fmt: skip
    config_path = tmp_path / "logging.json"
    config_path.write_text(json.dumps(config))
    with CLIProcess(
        "examples.hello_world:hello_world", "--port", "0", "--log-config", str(config_path)
    ) as server:
        port = server.wait_ready()
        http_get(port, "/logged")
        assert server.stop() == 0
    assert '"GET /logged HTTP/1.1" 200' in log_file.read_text()


def test_root_path_and_headers_flags() -> None:
    with CLIProcess(
        "tests.e2e.apps:describe", "--port", "0", "--root-path", "/api",
        "--header", "x-powered-by: us", "--no-server-header", "--no-date-header",
    ) as server:  # fmt: skip
        port = server.wait_ready()
        response = http_get(port)
        head = response.split(b"\r\n\r\n")[0].lower()
        assert b"x-powered-by: us" in head
        assert b"server:" not in head
        assert b"date:" not in head
        assert b"'root_path': '/api'" in response
        server.stop()


def test_proxy_headers_trusted_from_localhost() -> None:
    with CLIProcess("tests.e2e.apps:describe", "--port", "0") as server:
        port = server.wait_ready()
        response = http_get(
            port, extra=b"x-forwarded-for: 203.0.113.7\r\nx-forwarded-proto: https\r\n"
        )
        assert b"'client': ['203.0.113.7', 0]" in response
        assert b"'scheme': 'https'" in response
        server.stop()
    with CLIProcess("tests.e2e.apps:describe", "--port", "0", "--no-proxy-headers") as server:
        port = server.wait_ready()
        response = http_get(port, extra=b"x-forwarded-for: 203.0.113.7\r\n")
        assert b"'client': ['127.0.0.1'," in response
        server.stop()
