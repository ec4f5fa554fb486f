"""HTTP/2 over cleartext with prior knowledge (h2c): the load generator h2load (Debian's
nghttp2-client), its command lines and output, the one-request checks (curl
--http2-prior-knowledge), and the idle connections whose memory the runner measures.

Each run is a warm-up of `warmup` seconds (at least 1) in h2load's timed mode (-D), whose rate
sizes the measured run: -n requests for about `duration` seconds, but never more than
STREAMS_PER_CONNECTION per connection (zttp, the published uvicorn's HTTP/2, sends GOAWAY
ENHANCE_YOUR_CALM after 4,096 streams on a connection, and h2load then fails the requests it
had left for it rather than connect again)."""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.loads import SCENARIOS, timed
from harness.procs import HOST, MIB, ServerFailed, TreeWatch

STREAMS_PER_CONNECTION = 4000
MIN_ROUNDS = 4  # a measured run sends at least this many requests per stream slot (-c x -m)
DOWNLOAD_BODY = bytes(range(256)) * 4096  # what apps/download.py answers
UPLOAD_SIZE = 64 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    head = len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big")
    return head + payload


def preface() -> bytes:
    """The client's connection preface and an empty SETTINGS frame."""
    return PREFACE + frame(SETTINGS, 0, 0)


def get_request(authority: str) -> bytes:
    """The preface and GET / on stream 1, ended. HPACK from the static table, no Huffman:
    :method GET (index 2), :scheme http (6), :path / (4), :authority a literal (name 1)."""
    block = b"\x82\x86\x84\x41" + bytes((len(authority),)) + authority.encode()
    return preface() + frame(HEADERS, END_STREAM | END_HEADERS, 1, block)


def argv(port: int, path: str, clients: int, streams: int, *, requests: int = 0,
         seconds: int = 0, data: Path | None = None, log: Path | None = None,
         limit: int = 90) -> list[str]:  # fmt: skip
    """h2load over one thread: timed (-D seconds) or counted (-n requests). A connection that
    sees nothing for 10 s, or is open longer than `limit` s, is given up (its requests fail)."""
    out = ["h2load", f"-c{clients}", f"-m{streams}", "-t1", "-N", "10s", "-T", f"{limit}s"]
    out += ["-D", f"{seconds}s"] if seconds else ["-n", str(requests)]
    if data is not None:
        out += ["-d", str(data)]
    if log is not None:
        out += ["--log-file", str(log)]
    return [*out, f"http://{HOST}:{port}{path}"]


def size_requests(rate: float, seconds: float, clients: int, streams: int) -> int:
    """-n for a run of about `seconds` at `rate` req/s, a multiple of `clients`, between
    MIN_ROUNDS requests per stream slot and STREAMS_PER_CONNECTION per connection."""
    wanted = max(rate * seconds, clients * streams * MIN_ROUNDS)
    return int(min(wanted, clients * STREAMS_PER_CONNECTION)) // clients * clients


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_FINISHED = re.compile(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout", re.M)  # fmt: skip
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_TRAFFIC = re.compile(r"^traffic: .*\((\d+)\) data", re.M)


def parse(stdout: str) -> dict[str, Any]:
    """h2load's summary: done requests, req/s, seconds, errors (every request asked for that
    got no 2xx or 3xx: h2load's `failed` counts statuses >= 400, network errors and the
    requests a closed connection left undone), non-2xx statuses, response body bytes."""
    finished, requests = _FINISHED.search(stdout), _REQUESTS.search(stdout)
    status, traffic = _STATUS.search(stdout), _TRAFFIC.search(stdout)
    if not (finished and requests and status and traffic):
        raise ServerFailed(f"h2load printed no result:\n{stdout[-600:]}")
    total, _started, done, succeeded, failed, _errored, _timeout = map(int, requests.groups())
    _ok, redirect, client_error, server_error = map(int, status.groups())
    return {
        "requests": done, "rps": float(finished[3]),
        "seconds": float(finished[1]) * _UNITS[finished[2]],
        "errors": max(failed, total - succeeded),
        "non_2xx": redirect + client_error + server_error, "data_bytes": int(traffic[1]),
    }  # fmt: skip


def latency(log_text: str) -> tuple[float, float]:
    """(p50, p99) in ms of the requests in an h2load --log-file (start us, status, duration us;
    status -1 for a failed stream, left out)."""
    durations = sorted(int(cols[2]) for line in log_text.splitlines()
                       if len(cols := line.split("\t")) >= 3 and cols[1] != "-1")  # fmt: skip
    if not durations:
        return 0.0, 0.0
    if len(durations) == 1:
        return durations[0] / 1000, durations[0] / 1000
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return cuts[49] / 1000, cuts[98] / 1000


def check(name: str, port: int, upload: Path | None) -> None:
    """One request of the scenario's shape with curl over h2c; ServerFailed unless the answer
    is HTTP/2, status 200, and exactly the expected body."""
    scen = SCENARIOS[name]
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", "-",
           "-w", "\n%{http_code} %{http_version}"]  # fmt: skip
    if upload is not None:
        want = upload.read_bytes()
        cmd += ["--data-binary", f"@{upload}", "-H", "Content-Type: application/octet-stream",
                "-H", "Expect:"]  # fmt: skip
    else:
        want = DOWNLOAD_BODY if scen.module == "download" else b"Hello, world"
    done = subprocess.run([*cmd, f"http://{HOST}:{port}{scen.path}"], capture_output=True)
    body, _, tail = done.stdout.rpartition(b"\n")
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise ServerFailed(f"does not answer HTTP/2 (h2c, prior knowledge): {err}")
    if tail.split() != [b"200", b"2"] or body != want:
        got = tail.decode(errors="replace")
        raise ServerFailed(f"wrong h2c answer: {got!r} (status, HTTP version), {len(body)} "
                           f"body bytes (want '200 2', {len(want)})")  # fmt: skip


def _answered(sock: socket.socket) -> None:
    """Read frames until stream 1 ends, acknowledging the server's SETTINGS."""
    buf = b""
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            size, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            buf = buf[9 + size :]
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0))
            elif kind == GOAWAY or (kind == RST_STREAM and stream == 1):
                sent = "GOAWAY" if kind == GOAWAY else "RST_STREAM"
                raise ServerFailed(f"the server sent {sent}")
            elif stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise ServerFailed("the server closed the connection before answering")
        buf += chunk


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)  # with a timeout, recv() would wait for data rather than say none
    try:
        while sock.recv(65536):
            pass  # a PING or the like: read and dropped
        return False  # end of stream
    except BlockingIOError:
        return True
    except OSError:
        return False


def idle_memory(port: int, count: int, watch: TreeWatch, settle: float = 0.5) -> dict[str, Any]:
    """Open `count` h2c connections, each answered one GET / and left open; the growth of the
    worker's RSS per connection, in KiB. {"conn_error": ...} when the server closed some
    before the reading, or failed one."""
    request = get_request(f"{HOST}:{port}")
    before, _ = watch.idle_rss()
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    try:
        try:
            for _ in range(count):
                socks.append(socket.create_connection((HOST, port), timeout=10))
                socks[-1].sendall(request)
                _answered(socks[-1])
        except (OSError, ServerFailed) as exc:
            return {"conn_error": f"idle h2c connection {len(socks)} of {count}: {exc}"}
        time.sleep(settle)
        after, _ = watch.idle_rss()
        opened = time.monotonic() - t0
        closed = sum(not _still_open(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    if closed:
        return {"conn_error": f"the server closed {closed} of {count} idle h2c connections "
                              f"within {opened:.1f} s"}  # fmt: skip
    return {"conn_kib": (after - before) * 1024 / count, "idle_conns": count,
            "idle_open_s": opened}  # fmt: skip


def run(name: str, port: int, warmup: float, seconds: float, cpu: int | None,
        watch: TreeWatch, server_cpu: int | None, scratch: Path,
        idle_conns: int = 0) -> dict[str, Any]:  # fmt: skip
    """Check, idle memory (h2-hello, when idle_conns), warm-up, and the measured run."""
    scen = SCENARIOS[name]
    upload = None
    if scen.module == "echo":
        upload = scratch / "h2-upload.bin"
        if not upload.exists():
            upload.write_bytes(os.urandom(UPLOAD_SIZE))
    check(name, port, upload)
    extra = idle_memory(port, idle_conns, watch) if idle_conns and scen.module == "hello" else {}
    shape = (port, scen.path, scen.clients, scen.streams)
    out = scratch / f"{name}-{port}.h2load"
    code, text, _ = timed(argv(*shape, seconds=max(1, round(warmup)), data=upload), out, cpu,
                          watch, server_cpu)  # fmt: skip
    if code != 0:
        raise ServerFailed(f"h2load (warm-up) exited with {code}:\n{text[-600:]}")
    requests = size_requests(parse(text)["rps"], seconds, scen.clients, scen.streams)
    log = out.with_suffix(".log")
    cmd = argv(*shape, requests=requests, data=upload, log=log, limit=30 + 10 * round(seconds))
    code, text, meters = timed(cmd, out, cpu, watch, server_cpu)
    if code != 0:
        raise ServerFailed(f"h2load exited with {code}:\n{text[-600:]}")
    res = dict(parse(text), **meters, **extra, h2load_n=requests)
    res["p50_ms"], res["p99_ms"] = latency(log.read_text())
    log.unlink()
    if scen.module != "hello":
        res["mib_s"] = res["data_bytes"] / res["seconds"] / MIB
    return res
