"""HTTP/2 under the supervisor (--workers 2), through the real command line: a SIGHUP restart
of every worker and --max-requests retirements under h2load lose no request, and a graceful
shutdown (SIGTERM) sends GOAWAY twice (RFC 9113 section 6.8) and completes the streams in
flight, those a client opened before it knew included, and no stream above the last one.

h2load is not a client that survives a GOAWAY, which a retiring worker sends on each of its
connections (its ``linger``): nghttp2's h2load (1.52, and its source today: src/h2load.cc,
Client::try_again_or_fail) reconnects only when an HTTP/1.1 response said ``connection:
close``; after an HTTP/2 GOAWAY, every request it had not sent yet is counted failed and
errored, although the server never saw it. (Run once across a SIGHUP with -n30000 -c4 -m10:
13,180 started, 13,140 succeeded, 16,860 failed.) A correct client sends those on a new
connection. So the load here is h2load runs back to back (H2LoadLoop), each connection
sending all of its requests as it opens (-n = c * m): a GOAWAY can then only come after
every request of the connection was sent, and each must be answered (a stream refused above
the GOAWAY's last stream id would count as failed, so would any request lost)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from pathlib import Path

import pytest

from tests.e2e.h2tools import H2LoadLoop, h2load, self_signed
from tests.e2e.process import CLIProcess
from tests.e2e.supervision import serving_pids
from tests.helpers import UNIT
from tests.worker.h2client import H2Client

HELD = "tests.e2e.h2_apps:held"
NO_ERROR, LARGEST_STREAM = 0, 2**31 - 1
STOPPED = r"Worker \[(\d+)\] stopped \(it exited with code 0\)"


def clean(runs: list[object]) -> list[str]:
    """The outputs of the runs that were not clean (every request sent and answered 2xx)."""
    return [run.output for run in runs if not run.clean]  # type: ignore[attr-defined]


# Over TLS, connections whose TLS handshake is in progress when a worker retires are waited
# for too (see the test below): before, h2load counted their 25 requests failed, in about
# one run of ten.
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_sighup_restart_of_every_worker_under_h2load(tls: bool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    args = ["--port", "0", "--workers", "2", "--no-access-log"]
    with CLIProcess(HELD, *args, *(self_signed(tmp_path) if tls else [])) as server:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{server.wait_ready()}/"
        old = serving_pids(server, 2)
        load = H2LoadLoop(url)
        held: list[object] = []
        # Streams in flight on the old workers for the whole restart: answered only once
        # both workers began retiring, i.e. after their GOAWAYs.
        holder = asyncio.new_event_loop()
        task = holder.run_in_executor(None, lambda: held.append(
            h2load(f"{url}hold?{release}", "-c", "2", "-m", "5", "-n", "10")))  # fmt: skip
        try:
            server.wait_for_lines("held request started", 10)
            load.wait_runs(1)
            server.signal(signal.SIGHUP)
            server.wait_for_line("Received SIGHUP: starting generation 2")
            # Both old workers began retiring (GOAWAY on each connection goes with this
            # line), one of them at least with the held connections.
            server.wait_for_lines("Shutting down", 2)
            server.wait_for_line(r"Retiring: answering \d+ open connection")
            release.touch()
            stopped = {int(m.group(1)) for m in server.wait_for_lines(STOPPED, 2)}
            assert stopped == set(old)
            server.wait_for_line("Reload complete: generation 2 serving")
            load.wait_runs(2)  # on the new generation only
            holder.run_until_complete(task)
        finally:
            runs = load.stop()
            holder.close()
        assert server.stop() == 0
    (summary,) = held
    assert summary.clean and summary.total == 10, summary.output  # type: ignore[attr-defined]
    assert len(runs) >= 3, len(runs)
    assert not clean(runs), "\n\n".join(clean(runs))


def test_max_requests_retirements_under_h2load() -> None:
    args = ("--port", "0", "--workers", "2", "--no-access-log", "--max-requests", "300")
    with CLIProcess(HELD, *args) as server:
        url = f"http://127.0.0.1:{server.wait_ready()}/"
        serving_pids(server, 2)
        load = H2LoadLoop(url)
        try:
            # Four workers retired and replaced (of 2 x 300 requests and more each).
            server.wait_for_lines(r"has served --max-requests: replacing it", 4, timeout=20)
            server.wait_for_lines(STOPPED, 4, timeout=20)
        finally:
            runs = load.stop()
        assert server.stop() == 0
    served = sum(run.succeeded for run in runs)
    assert served >= 4 * 300 and not clean(runs), clean(runs)


class LateRequests:
    """Requests sent at each GOAWAY, before the frames after it are read: at the first (the
    largest stream id), one already on its way, which the server must serve; after the last,
    one above its last stream id, which the server must never process (RFC 9113 section
    6.8)."""

    def __init__(self, client: H2Client) -> None:
        self.client = client
        self.late = self.above = 0
        client.on_goaway = self.goaway

    def goaway(self, code: int, last: int) -> None:
        if last == LARGEST_STREAM and not self.late:
            self.late = self.client.request("/late")
        elif last != LARGEST_STREAM and not self.above:
            self.above = self.client.request("/above")


async def test_sigterm_completes_the_stream_in_flight_after_two_goaways(tmp_path: Path) -> None:
    release = tmp_path / "release"
    with CLIProcess(HELD, "--port", "0", "--workers", "2") as server:
        port = await asyncio.to_thread(server.wait_ready)
        workers = await asyncio.to_thread(serving_pids, server, 2)
        client = await H2Client.open(port)
        held = client.request(f"/hold?{release}")
        await asyncio.to_thread(server.wait_for_line, "held request started")
        sent = LateRequests(client)
        server.signal(signal.SIGTERM)
        await client.until(lambda: len(client.goaways) == 2)
        assert client.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, sent.late)]
        late = await client.response(sent.late)
        assert late.status == 200 and int(late.data) in workers
        assert not client.streams[held].done  # still in flight, and the connection open
        release.touch()
        answer = await client.response(held)
        assert answer.status == 200 and answer.reset is None and answer.data == late.data
        await client.closed()
        client.close()
        assert not client.streams[sent.above].done  # never answered, not even refused
        assert await asyncio.to_thread(server.proc.wait, 10) == 0
        output = server.output()
    assert output.count(' HTTP/2" 200') == 2, output
    assert '"GET /late HTTP/2" 200' in output and "/above" not in output, output


async def test_sigterm_serves_the_request_sent_as_an_idle_connection_got_goaway() -> None:
    with CLIProcess(HELD, "--port", "0", "--workers", "2") as server:
        port = await asyncio.to_thread(server.wait_ready)
        workers = await asyncio.to_thread(serving_pids, server, 2)
        client = await H2Client.open(port)
        first = await client.response(client.request("/"))
        assert first.status == 200 and int(first.data) in workers
        sent = LateRequests(client)  # the connection is idle: nothing in flight
        server.signal(signal.SIGTERM)
        await client.until(lambda: len(client.goaways) == 2)
        assert client.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, sent.late)]
        late = await client.response(sent.late)
        assert late.status == 200 and late.data == first.data
        await client.closed()
        client.close()
        assert not client.streams[sent.above].done
        assert await asyncio.to_thread(server.proc.wait, 10) == 0
        output = server.output()
    assert '"GET /late HTTP/2" 200' in output and "/above" not in output, output


async def test_a_retiring_worker_answers_each_http2_connection_once_more() -> None:
    # Three connections when the retirement begins: one HTTP/2 that was served, told to go
    # away at once; one HTTP/2 that has sent no request yet, and one accepted that turns
    # HTTP/2 (its preface read) after it began: each is answered once, as an HTTP/1.1
    # connection is, and only then told to go away. A client sends its first requests as
    # the connection opens; a GOAWAY read before they left would drop them all (h2load
    # counts them failed). The keep-alive timeout is long, so that only a GOAWAY ends them.
    args = ("--port", "0", "--workers", "1", "--timeout-keep-alive", "60")
    with CLIProcess(HELD, *args) as server:
        port = await asyncio.to_thread(server.wait_ready)
        (old,) = await asyncio.to_thread(serving_pids, server, 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fresh = await H2Client.open(port)
        await fresh.round_trip()
        served = await H2Client.open(port)
        assert (await served.response(served.request("/"))).status == 200
        server.signal(signal.SIGHUP)
        await asyncio.to_thread(server.wait_for_line, r"Retiring: answering 3 open connection")
        await served.until(lambda: len(served.goaways) == 2)
        assert served.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, 1)]
        await served.closed()
        late = H2Client(reader, writer, auto_ack=True)
        late.conn.initiate_connection()  # prior knowledge, on the connection it had
        late.flush()
        late.start_reading()
        for client in (fresh, late):
            await client.round_trip()  # (after the linger began)
            assert client.goaways == []
            answer = await client.response(client.request("/"))
            assert answer.status == 200 and int(answer.data) == old
            await client.until(lambda c=client: len(c.goaways) == 2)  # type: ignore[misc]
            assert client.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, 1)]
            await client.closed()
        for client in (served, fresh, late):
            client.close()
        await asyncio.to_thread(server.wait_for_line, rf"Worker \[{old}\] stopped \(it exited")
        assert server.stop() == 0


async def test_sigterm_lets_a_response_held_back_by_the_windows_complete() -> None:
    # The body is not all sent: the client's window is full (the app waits in its send). A
    # graceful shutdown lets the stream complete once the client gives window (RFC 9113
    # section 6.8), not cut at the first window.
    with CLIProcess(HELD, "--port", "0", "--workers", "1") as server:
        port = await asyncio.to_thread(server.wait_ready)
        client = await H2Client.open(port, auto_ack=False)
        big = client.request("/big")
        await client.until(lambda: len(client.streams[big].data) == 65_535)
        server.signal(signal.SIGTERM)
        await client.until(lambda: len(client.goaways) == 2)
        assert client.goaways == [(NO_ERROR, LARGEST_STREAM), (NO_ERROR, big)]
        client.give_window(1_000_000, big)
        client.give_window(1_000_000)
        answer = await client.response(big)
        assert answer.ended and answer.data == b"x" * 1_000_000
        await client.closed()
        client.close()
        assert await asyncio.to_thread(server.proc.wait, 10) == 0
        assert '"GET /big HTTP/2" 200' in server.output()


def test_a_tls_handshake_in_progress_when_its_worker_retires_is_completed(tmp_path: Path) -> None:
    # The worker accepted the connection, and answered the ClientHello; its protocol hears of
    # the connection only once the handshake ends. It is counted meanwhile, so the
    # retirement's linger waits for it and answers it once more, as it does a cleartext
    # connection accepted at the same moment (before, the worker exited and cut it).
    args = ("--port", "0", "--workers", "1", *self_signed(tmp_path))
    with CLIProcess(HELD, *args) as server:
        port = server.wait_ready()
        (old,) = serving_pids(server, 1)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing)
        with socket.create_connection(("127.0.0.1", port), timeout=10 * UNIT) as sock:
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()  # the ClientHello
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))  # the server's answer: mid-handshake
            server.signal(signal.SIGHUP)
            server.wait_for_line(rf"Retiring: answering 1 open|Worker \[{old}\] stopped")
            try:
                while True:  # the rest of the server's flight, then our Finished
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        sock.sendall(outgoing.read())
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError("closed during the handshake") from None
                        incoming.write(data)
                sock.sendall(outgoing.read())
                assert tls.selected_alpn_protocol() == "h2"
                tls.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\4\0\0\0\0\0")
                sock.sendall(outgoing.read())
                data = sock.recv(65536)  # the server's SETTINGS, then GOAWAY
            except (ssl.SSLError, ConnectionError) as exc:
                raise AssertionError(f"the connection was cut: {exc!r}") from exc
            assert data, "the connection was closed"
        assert server.stop() == 0
