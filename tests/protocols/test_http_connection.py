"""The HTTP/1.1 connection rules without sockets and without real time: ``H1Connection`` fed
parser events and a ``now`` (RFC 9112 section 9: pipelining, keep-alive, the deadlines)."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http_connection import H1Connection, Next, PendingUpgrade, Timer
from uvicorn.protocols.http_parser import BadRequest, RequestHead, RequestParser

KEEP_ALIVE, HEAD_TIMEOUT = 5.0, 30.0
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def connection(closing: bool = False) -> H1Connection[str]:
    return H1Connection(RequestParser(), KEEP_ALIVE, HEAD_TIMEOUT, closing)


def heads(conn: H1Connection[Any], data: bytes) -> list[RequestHead]:
    return [e for e in conn.parser.receive_data(data) if isinstance(e, RequestHead)]


def test_pipelined_requests_are_answered_in_order_one_at_a_time() -> None:
    conn = connection()
    assert conn.request("first") is True
    assert conn.request("second") is False
    assert conn.request("third") is False
    assert conn.current == "first" and list(conn.pipeline) == ["second", "third"]
    assert conn.must_pause(0, 65536)  # while requests wait their turn, nothing more is read
    assert conn.finished(True, True, True, False, now=1.0) is Next.START
    assert conn.current == "second"
    assert conn.finished(True, True, True, False, now=2.0) is Next.START
    assert conn.finished(True, True, True, False, now=3.0) is Next.IDLE
    assert conn.current is None and conn.deadline == 3.0 + KEEP_ALIVE
    assert not conn.must_pause(0, 65536)


def test_what_ends_a_connection_after_a_response() -> None:
    for done, keep_alive, body_complete, expecting in [
        (False, True, True, False),  # the response could not be completed
        (True, False, True, False),  # Connection: close, or HTTP/1.0 without keep-alive
        (True, True, False, True),  # the client still waits for 100 Continue: it won't send
    ]:
        conn = connection()
        conn.request("request")
        assert conn.finished(done, keep_alive, body_complete, expecting, now=0.0) is Next.CLOSE
    conn = connection()
    conn.request("request")
    # A body the app did not read is discarded (by the caller), and the connection goes on.
    assert conn.finished(True, True, False, False, now=0.0) is Next.IDLE


def test_a_bad_request_waits_its_turn_and_ends_the_connection() -> None:
    conn = connection()
    conn.request("first")
    conn.reading = None  # its body was complete
    error = BadRequest(400, "invalid Host header")
    assert conn.bad_request(error) is None and list(conn.pipeline) == [error]
    assert conn.finished(True, True, True, False, now=0.0) is Next.REFUSE
    assert conn.refusal is error
    idle = connection()
    assert idle.bad_request(error) is None and idle.refusal is error  # nothing before it


def test_a_body_that_breaks_its_framing() -> None:
    conn = connection()
    conn.request("answered")
    error = BadRequest(400, "invalid chunk size")
    assert conn.bad_request(error) == "answered"  # its own body: nothing after it is trusted
    queued = connection()
    queued.request("answered")
    queued.reading = None
    queued.request("waiting")
    assert queued.bad_request(error) is None
    assert list(queued.pipeline) == [error]  # the broken one dropped, its error in its turn


def test_an_upgrade_waits_for_the_responses_before_it() -> None:
    pending = PendingUpgrade(heads(connection(), GET)[0], b"frames")
    conn = connection()
    assert conn.upgrade(pending) is True
    conn = connection()
    conn.request("first")
    assert conn.upgrade(pending) is False
    assert conn.finished(True, True, True, False, now=0.0) is Next.UPGRADE
    assert conn.upgrading is pending


def test_the_keep_alive_timer_rearms_for_the_real_deadline() -> None:
    conn = connection()
    assert conn.idle(now=10.0) is Next.IDLE and conn.deadline == 10.0 + KEEP_ALIVE
    assert conn.timer(now=12.0) is Timer.REARM and conn.deadline == 15.0  # fired early
    assert conn.timer(now=15.0) is Timer.CLOSE
    conn.request("busy")
    assert conn.timer(now=99.0) is None  # a request is being answered: not idle


def test_a_trickled_head_has_its_own_deadline() -> None:
    conn = connection()
    conn.idle(now=0.0)
    heads(conn, b"GET / HT")  # part of a head
    assert conn.head_begun(now=1.0) == 1.0 + HEAD_TIMEOUT
    assert conn.head_begun(now=2.0) is None  # the clock is running already
    # The keep-alive deadline passes: the head's own deadline counts, from its first byte.
    assert conn.timer(now=1.0 + KEEP_ALIVE) is Timer.REARM
    assert conn.deadline == 1.0 + HEAD_TIMEOUT
    assert conn.timer(now=1.0 + HEAD_TIMEOUT) is Timer.TIMEOUT  # RFC 9110 15.5.9: 408


def test_a_pipelined_head_begun_during_a_response_is_timed_from_its_end() -> None:
    conn = connection()
    conn.request("answered")
    conn.reading = None
    heads(conn, GET + b"GET / HT")  # the next head began while the first was answered
    assert conn.finished(True, True, True, False, now=7.0) is Next.IDLE
    assert conn.deadline == 7.0 + KEEP_ALIVE  # the earlier of the two deadlines


def test_closing_and_eof() -> None:
    assert connection(closing=True).idle(now=0.0) is Next.CLOSE
    conn = connection()
    assert conn.shutdown() is True  # idle: close now
    conn = connection()
    conn.request("answered")
    assert conn.shutdown() is False  # after the response in flight
    assert conn.finished(True, True, True, False, now=0.0) is Next.CLOSE
    conn = connection()
    assert conn.eof() is False  # nothing to answer
    conn.request("answered")
    assert conn.eof() is False  # its body will never complete
    conn.reading = None
    assert conn.eof() is True and conn.peer_eof and conn.closing  # half open: it may read
    assert conn.lost() == ["answered"]
