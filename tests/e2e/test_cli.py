"""The real command line, as a subprocess: serving, user errors, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.process import CLIProcess, http_get, run_cli


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("examples.hello_world:hello_world", b"Hello, world"),
        ("examples.stream_response:stream_response", b"5\r\nHello\r\n2\r\n, \r\n5\r\nworld\r\n0"),
        ("examples.asgi_hello:app", b"Hello from ASGI 3: GET /x"),
        ("tests.e2e.apps:factory --factory", b"from factory"),
    ],
)
def test_serves_examples(target: str, body: bytes) -> None:
    with CLIProcess(*target.split(), "--port", "0") as server:
        port = server.wait_ready()
        response = http_get(port, "/x")
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body in response
        assert server.stop() == 0
        assert "Traceback" not in server.output()


def test_echo_body_example() -> None:
    with CLIProcess("examples.echo_body:echo_body", "--port", "0") as server:
        port = server.wait_ready()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 9\r\nconnection: close\r\n\r\n"
                b"some data"
            )
            response = b""
            while data := sock.recv(65536):
                response += data
        assert response.endswith(b"\r\n\r\nsome data")
        assert server.stop() == 0


def test_a_worker_sets_what_it_loaded_apart_from_the_garbage_collector() -> None:
    # gc.freeze() once serving: full collections then walk only what requests create, so they
    # no longer pause every request for milliseconds (the benchmarks' p99).
    with CLIProcess("tests.e2e.apps:gc_frozen", "--port", "0") as server:
        port = server.wait_ready()
        response = http_get(port, "/")
        assert int(response.partition(b"\r\n\r\n")[2]) > 1000
        assert server.stop() == 0


def test_a_worker_keeps_the_memory_it_freed_for_the_next_requests() -> None:
    # worker/allocator.py: glibc's thresholds raised in the worker, so that bodies of tens of
    # KiB do not cost a page fault per page, request after request.
    with CLIProcess("tests.e2e.apps:malloc_keeps", "--port", "0", "--log-level", "debug") as server:
        port = server.wait_ready()
        server.wait_for_line(r"malloc: freed memory kept up to 16 MiB")
        kept = int(http_get(port, "/").partition(b"\r\n\r\n")[2])
        assert kept > 6 * 1024, f"{kept} KiB of 8 MiB freed kept"
        assert server.stop() == 0


def test_access_log_line() -> None:
    with CLIProcess("examples.hello_world:hello_world", "--port", "0") as server:
        port = server.wait_ready()
        http_get(port, "/path?q=1")
        server.wait_for_line(r'INFO: +127\.0\.0\.1:\d+ - "GET /path\?q=1 HTTP/1\.1" 200')
        server.stop()


def test_access_log_format() -> None:
    # gunicorn's atoms through the real command line: as the shell hands them over, with the
    # worker's pid and a request header.
    fmt = '%(h)s "%(r)s" %(s)s %(b)s %(p)s %({x-id}i)s %(M)sms'
    with CLIProcess("examples.hello_world:hello_world", "--port", "0", "--workers", "1",
                    "--access-log-format", fmt) as server:  # fmt: skip
        port = server.wait_ready()
        http_get(port, "/path?q=1", extra=b"x-id: abc\r\n")
        line = server.wait_for_line(
            r'INFO: +127\.0\.0\.1 "GET /path\?q=1 HTTP/1\.1" 200 (\d+) <(\d+)> abc (\d+)ms$'
        )
        assert int(line.group(1)) == len(b"Hello, world")
        assert int(line.group(2)) != server.proc.pid  # the worker's, not the master's
        assert server.stop() == 0


def test_a_bad_access_log_format_stops_the_start() -> None:
    done = run_cli("examples.hello_world:hello_world", "--access-log-format", "%(h)s %(zz)s")
    assert done.returncode != 0
    assert "invalid --access-log-format" in done.stderr and "unknown atom %(zz)s" in done.stderr


def test_no_access_log() -> None:
    with CLIProcess("examples.hello_world:hello_world", "--port", "0", "--no-access-log") as server:
        port = server.wait_ready()
        http_get(port)
        server.stop()
        assert '"GET / HTTP/1.1"' not in server.output()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["examples.hello_world:hello_world", "--nope"], "unrecognized arguments: --nope"),
        (["examples.hello_world:hello_world", "--bind", "a:b:c"], "invalid bind address 'a:b:c'"),
        (["examples.hello_world:hello_world", "--port", "http"], "invalid --port 'http': not a"),
        (["examples.hello_world:hello_world", "--port", "70000"], "--port '70000': not in 0-65535"),
        (["examples.hello_world:hello_world", "--lifespan", "maybe"], "invalid choice: 'maybe'"),
        (["no_such_module:app"], "could not import module 'no_such_module'"),
        (["examples.hello_world:nope"], "attribute 'nope' not found in module"),
        (["examples.hello_world"], "expected MODULE:ATTR"),
        (["tests.e2e.apps:not_callable"], "is not callable"),
        (["tests.e2e.apps:lifespan_fails"], "lifespan startup failed: database unreachable"),
        (["examples.hello_world:hello_world", "--header", "novalue"], "invalid --header"),
        ([], "the following arguments are required: MODULE:ATTR"),
    ],
)
def test_user_errors_print_one_line(args: list[str], message: str) -> None:
    result = run_cli("--port", "0", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("examples.hello_world:hello_world", "--port", str(port))
    assert result.returncode != 0
    assert f"Error: cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    from uvicorn import __version__

    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith(f"uvicorn {__version__}")
    usage = run_cli("--help")
    assert usage.returncode == 0
    for flag in ("--bind", "--graceful-timeout", "--ssl-certfile", "--no-server-header"):
        assert flag in usage.stdout


def test_console_script() -> None:
    script = Path(sys.executable).parent / "uvicorn"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("uvicorn ")


def test_sigterm_lets_the_request_in_flight_finish() -> None:
    with CLIProcess("tests.e2e.apps:slow", "--port", "0") as server:
        port = server.wait_ready()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            server.wait_for_line("slow request started")
            server.signal(signal.SIGTERM)
            server.wait_for_line("Waiting for 1 request")
            response = b""
            while data := sock.recv(65536):
                response += data
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close" in response
        assert response.endswith(b"finished")
        assert server.proc.wait(timeout=10) == 0  # (stop() would send a second SIGTERM)


def test_a_process_left_running_by_a_failing_test_is_killed_with_what_it_started() -> None:
    # CLIProcess's cleanup: the process and its children (a demo's Redis and servers once
    # outlived a test that timed out), whatever they do with SIGTERM.
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', child.pid, flush=True); time.sleep(60)"
    )
    with CLIProcess("-c", script, module=None) as parent:
        child = int(parent.wait_for_line(r"^child (\d+)$").group(1))
    assert parent.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        for _ in range(500):  # (the kill is sent; its delivery is the kernel's)
            os.kill(child, 0)
            if Path(f"/proc/{child}/stat").read_text().split(") ")[1].startswith("Z"):
                raise ProcessLookupError  # a zombie: dead, its parent gone before reaping it
            time.sleep(0.01)
