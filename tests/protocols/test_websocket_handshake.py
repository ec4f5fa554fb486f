"""The WebSocket opening handshake on ``WebSocketCore``: request head in, HTTP answer out
(RFC 6455 section 4)."""

from __future__ import annotations

import pytest

from tests.protocols.wsclient import (
    ACCEPT,
    KEY,
    Pair,
    core_for,
    handshake,
    key,
    parse_head,
    response_of,
)
from uvicorn.protocols.http_parser import Limits, RequestParser
from uvicorn.protocols.websocket import HandshakeState, WebSocketCore


def test_nothing_is_answered_before_the_app_decides() -> None:
    core = core_for(handshake())
    assert core.state is HandshakeState.PENDING and not core.handshake_failed
    assert core.data_to_send() == (b"", False)
    assert core.request.path == "/chat?room=1"
    assert core.subprotocols == []


def test_accept_answers_101_with_the_accept_key() -> None:
    core = core_for(handshake())
    core.accept()
    data, eof = core.data_to_send()
    assert not eof
    status, headers, body = response_of(data)
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert status == 101 and core.status == 101 and core.state is HandshakeState.ACCEPTED
    # RFC 6455 section 4.2.2 item 5: Upgrade, Connection and the key's SHA-1 digest.
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"].lower() == "upgrade"
    assert headers["sec-websocket-accept"] == ACCEPT
    assert "sec-websocket-protocol" not in headers
    assert "sec-websocket-extensions" not in headers  # the client offered none
    assert body == b""
    assert core.is_open
    with pytest.raises(RuntimeError):
        core.accept()
    with pytest.raises(RuntimeError):
        core.reject()


def test_accept_with_extra_headers() -> None:
    core = core_for(handshake())
    core.accept(headers=[(b"set-cookie", b"session=1"), [b"x-extra", bytearray(b"yes")]])
    _, headers, _ = response_of(core.data_to_send()[0])
    assert headers["set-cookie"] == "session=1"
    assert headers["x-extra"] == "yes"


# Headers from the app are checked as for any HTTP response: whatever websockets version is
# installed, none can end its line and smuggle in one of its own (response splitting).
BAD_HEADERS = [
    ([(b"x-a", b"1\r\nX-Injected: yes")], ValueError),
    ([(b"x-a", b"1\nX-Injected: yes")], ValueError),
    ([(b"x-a", b"1\rX-Injected: yes")], ValueError),
    ([(b"x-a", b"1\x00")], ValueError),
    ([(b"X-Injected: yes\r\nx-a", b"1")], ValueError),
    ([(b"x a", b"1")], ValueError),
    ([(b"", b"1")], ValueError),
    ([("x-str", "ok")], TypeError),
    ([(b"x-a", "ok")], TypeError),
    ([(b"x-a",)], TypeError),
    ([b"x-a: 1"], TypeError),
]


@pytest.mark.parametrize("headers, error", BAD_HEADERS)
@pytest.mark.parametrize("answer", ["accept", "reject"])
def test_invalid_headers_are_refused_and_the_handshake_stays_unanswered(
    headers: list[object], error: type[Exception], answer: str
) -> None:
    core = core_for(handshake())
    with pytest.raises(error):
        if answer == "accept":
            core.accept(headers=headers)
        else:
            core.reject(401, headers, b"no")
    assert core.state is HandshakeState.PENDING
    assert core.data_to_send() == (b"", False)
    core.reject(500)  # what the worker then answers
    data, _ = core.data_to_send()
    assert data.startswith(b"HTTP/1.1 500 ") and b"Injected" not in data


def test_subprotocols_offered_in_several_headers() -> None:
    data = handshake("Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: v2")
    core = core_for(data)
    assert core.subprotocols == ["chat", "superchat", "v2"]
    core.accept("superchat")
    _, headers, _ = response_of(core.data_to_send()[0])
    assert headers["sec-websocket-protocol"] == "superchat"


def test_no_subprotocol_is_chosen_unless_the_app_does() -> None:
    core = core_for(handshake("Sec-WebSocket-Protocol: chat"))
    core.accept()
    _, headers, _ = response_of(core.data_to_send()[0])
    assert "sec-websocket-protocol" not in headers


def test_only_an_offered_subprotocol_can_be_chosen() -> None:
    # RFC 6455 section 4.2.2: the server selects "one or none of the acceptable protocols"
    # that the client offered.
    core = core_for(handshake("Sec-WebSocket-Protocol: chat"))
    with pytest.raises(ValueError, match="not offered"):
        core.accept("graphql-ws")
    assert core.state is HandshakeState.PENDING
    assert core.data_to_send() == (b"", False)
    core.accept("chat")
    assert response_of(core.data_to_send()[0])[1]["sec-websocket-protocol"] == "chat"


def test_real_client_completes_the_handshake_with_a_subprotocol() -> None:
    pair = Pair(subprotocols=["a", "b"], accept=False)
    assert pair.core.subprotocols == ["a", "b"]
    pair.accept("b")
    assert pair.client.subprotocol == "b"


def test_reject_answers_403_and_closes() -> None:
    core = core_for(handshake())
    core.reject()
    data, eof = core.data_to_send()
    status, headers, body = response_of(data)
    assert status == 403 and core.status == 403 and eof
    assert core.state is HandshakeState.REFUSED and core.handshake_failed
    assert headers["content-length"] == "0" and body == b""
    assert headers["connection"] == "close"
    assert "sec-websocket-accept" not in headers
    with pytest.raises(RuntimeError):
        core.accept()


def test_reject_with_any_http_response() -> None:
    core = core_for(handshake())
    core.reject(401, [(b"www-authenticate", b"Basic"), (b"content-type", b"text/plain")], b"no")
    status, headers, body = response_of(core.data_to_send()[0])
    assert status == 401 and body == b"no"
    assert headers["www-authenticate"] == "Basic"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "2"


def test_reject_with_a_status_python_does_not_name() -> None:
    core = core_for(handshake())
    core.reject(499, [], b"custom")
    data, eof = core.data_to_send()
    status, _, body = response_of(data)
    assert status == 499 and body == b"custom" and eof


def test_reject_ignores_framing_headers_from_the_app() -> None:
    core = core_for(handshake())
    core.reject(400, [(b"content-length", b"99"), (b"connection", b"keep-alive")], b"x")
    _, headers, _ = response_of(core.data_to_send()[0])
    assert headers["content-length"] == "1" and headers["connection"] == "close"


# Invalid handshakes: answered at once, never handed to the app.


def refused(data: bytes) -> tuple[int, dict[str, str], WebSocketCore]:
    core = core_for(data)
    assert core.handshake_failed and core.state is HandshakeState.REFUSED
    out, eof = core.data_to_send()
    assert eof, "an invalid handshake closes the connection"
    status, headers, _ = response_of(out)
    assert status == core.status
    return status, headers, core


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
def test_wrong_version_gets_426_with_the_version_we_speak(version: str) -> None:
    # RFC 6455 section 4.4: "an appropriate HTTP error code (such as 426 Upgrade Required) and
    # a |Sec-WebSocket-Version| header field indicating the version(s) the server is capable of
    # understanding".
    status, headers, _ = refused(handshake(version=version))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


def test_missing_version_is_400() -> None:
    assert refused(handshake(version=""))[0] == 400


@pytest.mark.parametrize(
    "bad_key",
    [None, "", "not base64!", key(b"short"), key(b"0123456789abcdefg"), KEY[:-2]],
)
def test_missing_or_bad_key_is_400(bad_key: str | None) -> None:
    # RFC 6455 section 4.2.1 item 5: a base64-encoded value that decodes to 16 bytes.
    assert refused(handshake(key=bad_key))[0] == 400


def test_two_keys_are_400() -> None:
    assert refused(handshake(f"Sec-WebSocket-Key: {key()}"))[0] == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_wrong_method_is_refused(method: str) -> None:
    # RFC 6455 section 4.1: "The method of the request MUST be GET"; SPEC.md: an invalid
    # handshake (bad version, key, or method) gets 400.
    status, _, _ = refused(handshake(method=method))
    assert status == 400


def test_invalid_handshake_then_ignores_what_follows() -> None:
    core = core_for(handshake(version="8"))
    core.data_to_send()
    assert core.receive_data(b"\x81\x85" + b"x" * 9) == []
    assert core.data_to_send() == (b"", False)


def test_header_lines_longer_than_websockets_reads_are_fine() -> None:
    # The HTTP parser already accepted these (a big cookie is common); rebuilding the request
    # for websockets must not trip over websockets' own 8 KiB line and 128 header limits.
    data = handshake("Cookie: " + "c" * 8182, *[f"X-H{i}: v" for i in range(90)])
    core = core_for(data)
    assert core.state is HandshakeState.PENDING
    core.accept()
    assert response_of(core.data_to_send()[0])[0] == 101
    parser = RequestParser(Limits(8190, 300, 20000), frozenset({b"websocket"}))
    many = handshake("Cookie: " + "c" * 15000, *[f"X-H{i}: v" for i in range(200)])
    (head, *_) = parser.receive_data(many)
    core = WebSocketCore(head, 2**20, True)  # type: ignore[arg-type]
    core.accept()
    assert response_of(core.data_to_send()[0])[0] == 101


def test_a_request_websockets_cannot_read_is_400_not_a_crash() -> None:
    parser = RequestParser(Limits(8190, 100, 20000), frozenset({b"websocket"}))
    (head, *_) = parser.receive_data(handshake("Sec-WebSocket-Protocol: " + "p" * 9000))
    core = WebSocketCore(head, 2**20, True)  # type: ignore[arg-type]
    assert core.handshake_failed and core.status in (400, 431)
    data, eof = core.data_to_send()
    assert eof and response_of(data)[0] == core.status


def test_bytes_after_the_request_are_kept_for_the_core() -> None:
    head, rest = parse_head(handshake() + b"\x81\x80" + b"\x00" * 4)
    assert rest == b"\x81\x80\x00\x00\x00\x00"
    core = WebSocketCore(head, 2**20, True)
    core.accept()
    (event,) = core.receive_data(rest)
    assert event.text == ""  # type: ignore[union-attr]


def test_answers_carry_the_servers_headers() -> None:
    accepted = core_for(handshake())
    accepted.accept()
    _, headers, _ = response_of(accepted.data_to_send()[0])
    assert headers["server"] == "uvicorn" and "date" in headers
    refused_ = core_for(handshake())
    refused_.reject(403)
    _, headers, _ = response_of(refused_.data_to_send()[0])
    assert headers["server"] == "uvicorn" and "date" in headers


def test_app_server_header_and_no_defaults() -> None:
    own = core_for(handshake())
    own.accept(headers=[(b"Server", b"mine")])
    _, headers, _ = response_of(own.data_to_send()[0])  # response_of refuses duplicates
    assert headers["server"] == "mine"
    head, _ = parse_head(handshake())
    bare = WebSocketCore(head, 2**20, True, server_header=False, date_header=False)
    bare.accept()
    _, headers, _ = response_of(bare.data_to_send()[0])
    assert "server" not in headers and "date" not in headers
