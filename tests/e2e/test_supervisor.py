"""The master and its workers, through the real command line and real signals."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.process import CLIProcess, http_get, run_cli
from tests.e2e.supervision import SERVING, Load, gone, serving_pids, title, wait_gone
from tests.helpers import UNIT

WHOAMI = "tests.e2e.supervisor_apps:whoami"


def test_spawn_and_titles() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        port = server.wait_ready()
        workers = serving_pids(server, 2)
        assert title(server.proc.pid) == f"uvicorn: master [{WHOAMI}]"
        for pid in workers:
            assert title(pid) == f"uvicorn: worker [{WHOAMI}]"
            assert int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[1]) == (
                server.proc.pid
            )
        assert int(http_get(port).split(b"\r\n\r\n")[1]) in workers
        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output
    assert all(gone(pid) for pid in workers)


def test_killed_worker_is_replaced_under_load() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2", "--no-access-log") as server:
        port = server.wait_ready()
        first, _ = serving_pids(server, 2)
        load = Load(port)
        try:
            load.more(50)
            os.kill(first, signal.SIGKILL)
            server.wait_for_line(rf"Worker \[{first}\] was killed by SIGKILL \(out of memory\?\)")
            replacement = serving_pids(server, 3)[2]
            assert title(replacement) == f"uvicorn: worker [{WHOAMI}]"
            load.more(50)
        finally:
            load.stop()
        # Only the connections the killed worker held can fail, nothing after.
        assert len(load.failures) <= 4, load.failures
        assert server.stop() == 0


def test_workers_end_with_a_killed_master() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        server.wait_ready()
        workers = serving_pids(server, 2)
        server.proc.kill()
        server.proc.wait()
        wait_gone(workers)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_such_module:app", "Error: could not import module 'no_such_module'"),
        ("tests.e2e.apps:lifespan_fails", "Error: lifespan startup failed: database unreachable"),
    ],
)
def test_boot_failure_halts_promptly_with_the_error_once(app: str, message: str) -> None:
    started = time.monotonic()
    result = run_cli(app, "--port", "0", "--workers", "3")
    assert time.monotonic() - started < 5 * UNIT
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [errors[0]] and errors[0].startswith(message), result.stderr
    assert result.stderr.count("Started server process") <= 1  # one worker tried, not three


def test_an_error_in_the_apps_module_is_shown_once(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('config missing')\n")
    result = run_cli("broken:app", "--app-dir", str(tmp_path), "--port", "0", "--workers", "3")
    assert result.returncode == 1
    assert result.stderr.count("Traceback") == 1, result.stderr  # one worker tried, not three
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: error while importing 'broken:app': RuntimeError('config missing')"]


def test_crash_loop_backs_off() -> None:
    with CLIProcess("tests.e2e.supervisor_apps:crash_after_start", "--port", "0") as server:
        delays = [
            float(m.group(1))
            for m in server.wait_for_lines(r"Restarting in ([\d.]+)s", 4, timeout=20)
        ]
        assert delays == sorted(delays) and delays[-1] > delays[0], delays
        assert server.proc.poll() is None, "the master stays up"
        server.wait_for_line(r"Worker \[\d+\] exited with code 1")
        assert server.stop() == 0


def test_blocked_worker_is_aborted_with_its_traceback_and_replaced() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--timeout", "1") as server:
        port = server.wait_ready()
        (blocked,) = serving_pids(server, 1)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /block HTTP/1.1\r\nhost: x\r\n\r\n")
            server.wait_for_line(rf"Worker \[{blocked}\] timed out", timeout=5)
            server.wait_for_line(r"in whoami", timeout=5)  # faulthandler's traceback
            server.wait_for_line(rf"Worker \[{blocked}\] was killed by SIGABRT", timeout=5)
        (replacement,) = serving_pids(server, 2)[1:]
        assert http_get(port).endswith(str(replacement).encode())
        assert server.stop() == 0


def test_ttin_and_ttou() -> None:
    with CLIProcess(WHOAMI, "--port", "0") as server:
        server.wait_ready()
        (first,) = serving_pids(server, 1)
        server.signal(signal.SIGTTIN)
        second = serving_pids(server, 2)[1]
        server.signal(signal.SIGTTOU)
        server.wait_for_line(r"Received SIGTTOU: 1 workers")
        stopped = int(server.wait_for_line(r"Worker \[(\d+)\] stopped").group(1))
        assert stopped in (first, second)
        server.signal(signal.SIGTTOU)
        server.wait_for_line("staying at one worker")
        assert server.stop() == 0
        assert len([line for line in server.output().splitlines() if "serving" in line]) == 2


def test_term_lets_the_slow_request_finish_with_two_workers() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        port = server.wait_ready()
        serving_pids(server, 2)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            server.wait_for_line("slow request started")
            server.signal(signal.SIGTERM)
            response = b""
            while data := sock.recv(65536):
                response += data
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert server.proc.wait(10 * UNIT) == 0


def test_pid_file_and_log_file_reopened_on_usr1(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "uvicorn.pid", tmp_path / "uvicorn.log"
    args = [WHOAMI, "--port", "0", "--pid", str(pidfile), "--log-file", str(log)]
    with CLIProcess(*args) as server:
        deadline = time.monotonic() + 10 * UNIT
        while "serving" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "no worker serving"
            time.sleep(0.02)  # the log goes to the file: nothing to wait on but the file
        assert pidfile.read_text() == f"{server.proc.pid}\n"
        second = run_cli(*args)
        assert second.returncode == 1
        assert "names a running process" in second.stderr
        log.rename(tmp_path / "uvicorn.log.1")
        server.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10 * UNIT
        while not log.exists() or "log files reopened" not in log.read_text():
            assert time.monotonic() < deadline, "the log file was not reopened"
            time.sleep(0.02)
        assert server.stop() == 0
    assert not pidfile.exists()


def test_reuse_port_gives_each_worker_its_own_socket() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2", "--reuse-port") as server:
        port = server.wait_ready()
        workers = serving_pids(server, 2)
        seen = {int(http_get(port).split(b"\r\n\r\n")[1]) for _ in range(40)}
        assert seen == set(workers)
        assert server.stop() == 0


def test_only_one_line_says_serving_per_worker() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        server.wait_ready()
        serving_pids(server, 2)
        assert server.stop() == 0
        assert len([line for line in server.output().splitlines() if SERVING[:6] in line]) >= 2


def test_systemd_socket_activation() -> None:
    with CLIProcess(WHOAMI, "--workers", "2", module="tests.e2e.socket_activation") as server:
        port = server.wait_ready()
        assert len(serving_pids(server, 2)) == 2
        assert http_get(port).startswith(b"HTTP/1.1 200 OK")
        assert server.stop() == 0
        running = [line for line in server.output().splitlines() if "Uvicorn running" in line]
    assert len(running) == 2, running  # one socket (systemd's) per worker: no default address


def test_quit_stops_at_once() -> None:
    with CLIProcess(WHOAMI, "--port", "0", "--workers", "2") as server:
        port = server.wait_ready()
        serving_pids(server, 2)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /block HTTP/1.1\r\nhost: x\r\n\r\n")  # would take a minute
            server.wait_for_line("blocking the event loop")
            started = time.monotonic()
            server.signal(signal.SIGQUIT)
            assert server.proc.wait(10 * UNIT) == 0
        assert time.monotonic() - started < 5 * UNIT  # the blocked worker was killed
        server.wait_for_line(r"did not stop in time: it was killed by SIGKILL")
