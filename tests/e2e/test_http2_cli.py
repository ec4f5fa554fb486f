"""HTTP/2 through the real command line and real clients, on both app interfaces: curl by prior
knowledge, by Upgrade: h2c and by ALPN over TLS (where HTTP/1.1 is still served on the same
port), httpx over TLS, h2load's loads and uploads (every request counted, none failed), and
--http 1.1 / --http 2 refusing the other version. The access log says "HTTP/2".

The tools fail the test when missing (h2tools.tool says how to install them)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.h2tools import curl, h2load, self_signed
from tests.e2e.process import CLIProcess
from tests.helpers import UNIT

HELLO = b"Hello, world"
# (app, app that echoes the request body): each answers HELLO to a request without one.
APPS = {
    "messaging": ("examples.hello_world:hello_world", "examples.echo_body:echo_body"),
    "asgi3": ("tests.e2e.h2_apps:asgi_echo", "tests.e2e.h2_apps:asgi_echo"),
}
# Over TLS, one app for both: echoes a body, answers HELLO without one.
BOTH = {"messaging": "tests.e2e.h2_apps:echo", "asgi3": "tests.e2e.h2_apps:asgi_echo"}
LOAD = ["-n", "2000", "-c", "4", "-m", "10"]
UPLOAD = ["-n", "200", "-c", "2", "-m", "4"]


def access_lines(server: CLIProcess, version: str) -> int:
    """Access-log lines of requests answered 200 over ``version``, once the server stopped."""
    assert server.stop() == 0
    return len(re.findall(rf'"GET / HTTP/{re.escape(version)}" 200$', server.output(), re.M))


def upload_file(tmp_path: Path) -> Path:
    # 40,000 bytes: several DATA frames, within the stream's first window (256 KiB).
    path = tmp_path / "upload.bin"
    path.write_bytes(os.urandom(40_000))
    return path


@pytest.mark.parametrize("interface", APPS)
def test_cleartext_prior_knowledge_h2c_upgrade_and_h2load(interface: str, tmp_path: Path) -> None:
    app, echo = APPS[interface]
    upload = upload_file(tmp_path)
    with CLIProcess(app, "--port", "0") as server:
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        known = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url)
        assert known.returncode == 0 and known.stdout == "Hello, world\n2", known
        # RFC 7540 section 3.2: 101, then the answer to the same request over HTTP/2.
        upgraded = curl("--http2", "-v", "-w", "\n%{http_version}", url)
        assert upgraded.returncode == 0 and upgraded.stdout == "Hello, world\n2", upgraded
        heads = re.findall(r"^< (HTTP/\S+ \d+)", upgraded.stderr, re.M)
        assert heads == ["HTTP/1.1 101", "HTTP/2 200"], upgraded.stderr
        load = h2load(url, *LOAD)
        assert load.clean and load.total == 2000, load.output
        assert load.data == 2000 * len(HELLO), load.output
        assert access_lines(server, "2") == 2 + load.total
    with CLIProcess(echo, "--port", "0", "--no-access-log") as server:
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        sent = h2load(url, *UPLOAD, "-d", str(upload))
        assert sent.clean and sent.total == 200, sent.output
        assert sent.data == 200 * 40_000, sent.output  # each body came back whole
        echoed = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}",
                      "-o", str(tmp_path / "echoed"), url)  # fmt: skip
        assert echoed.returncode == 0, echoed
        assert (tmp_path / "echoed").read_bytes() == upload.read_bytes()
        assert server.stop() == 0


@pytest.mark.parametrize("interface", APPS)
def test_tls_alpn_h2_and_http11_on_the_same_port(interface: str, tmp_path: Path) -> None:
    with CLIProcess(BOTH[interface], "--port", "0", *self_signed(tmp_path)) as server:
        url = f"https://127.0.0.1:{server.wait_ready()}/"
        # RFC 9113 section 3.2: h2 chosen by ALPN; a client offering only http/1.1 gets it.
        h2 = curl("--http2", "-k", "-w", "\n%{http_version}", url)
        assert h2.returncode == 0 and h2.stdout == "Hello, world\n2", h2
        h1 = curl("--http1.1", "-k", "-w", "\n%{http_version}", url)
        assert h1.returncode == 0 and h1.stdout == "Hello, world\n1.1", h1
        with httpx.Client(http2=True, verify=False, timeout=10 * UNIT) as client:
            responses = [client.get(url) for _ in range(3)]  # one connection
            posted = client.post(url, content=b"x" * 100_000)
        assert [(r.http_version, r.content) for r in responses] == [("HTTP/2", HELLO)] * 3
        assert posted.http_version == "HTTP/2" and posted.content == b"x" * 100_000
        load = h2load(url, *LOAD)
        assert load.clean and load.total == 2000, load.output
        assert load.data == 2000 * len(HELLO), load.output
        sent = h2load(url, *UPLOAD, "-d", str(upload_file(tmp_path)))
        assert sent.clean and sent.total == 200 and sent.data == 200 * 40_000, sent.output
        assert server.stop() == 0
        output = server.output()
    assert output.count(' HTTP/1.1" 200') == 1, output
    assert output.count('"GET / HTTP/2" 200') == 1 + 3 + load.total
    assert output.count('"POST / HTTP/2" 200') == 1 + sent.total


def test_http_1_1_only_refuses_http2(tmp_path: Path) -> None:
    with CLIProcess(APPS["messaging"][0], "--port", "0", "--http", "1.1") as server:
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        # The preface is answered 505 in HTTP/1.1, which curl, expecting frames, refuses.
        refused = curl("--http2-prior-knowledge", "-w", "%{http_version}", url)
        assert refused.returncode != 0 and refused.stdout == "0", refused
        # The h2c upgrade is ignored: answered in HTTP/1.1 (RFC 9110 section 7.8: optional).
        kept = curl("--http2", "-w", "\n%{http_version}", url)
        assert kept.returncode == 0 and kept.stdout == "Hello, world\n1.1", kept
        load = h2load(url, "-n", "10")  # h2load gives up on its connection's first answer
        assert load.succeeded == 0 and load.failed == load.errored == 10, load.output
        assert access_lines(server, "2") == 0
    assert server.output().count('"GET / HTTP/1.1" 200') == 1


def test_http_2_only_refuses_http11(tmp_path: Path) -> None:
    with CLIProcess(APPS["messaging"][0], "--port", "0", "--http", "2") as server:
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        refused = curl("--http1.1", "-w", "\n%{http_code} %{http_version}", url)
        assert refused.returncode == 0 and refused.stdout.endswith("\n505 1.1"), refused
        known = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url)
        assert known.returncode == 0 and known.stdout == "Hello, world\n2", known
        upgraded = curl("--http2", "-w", "\n%{http_version}", url)
        assert upgraded.returncode == 0 and upgraded.stdout == "Hello, world\n2", upgraded
        assert access_lines(server, "2") == 2
    assert server.output().count('"GET / HTTP/1.1" 505') == 1
