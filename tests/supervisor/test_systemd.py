"""sd_notify messages to a fake $NOTIFY_SOCKET, and LISTEN_FDS."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from uvicorn.supervisor.systemd import Notifier, listen_fds, notify_message


def test_message_format() -> None:
    assert notify_message(ready=1, status="2 workers") == b"READY=1\nSTATUS=2 workers"


def receive(sock: socket.socket) -> dict[str, str]:
    lines = sock.recv(4096).decode().split("\n")
    return dict(line.split("=", 1) for line in lines)


def test_notifier_sends_to_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        notifier = Notifier()
        assert "NOTIFY_SOCKET" not in os.environ  # not for the workers
        notifier.ready("1 worker")
        assert receive(sock) == {"READY": "1", "STATUS": "1 worker"}
        notifier.reloading("reloading")
        message = receive(sock)
        assert message["RELOADING"] == "1" and int(message["MONOTONIC_USEC"]) > 0
        notifier.stopping("bye")
        assert receive(sock) == {"STOPPING": "1", "STATUS": "bye"}
        notifier.close()


def test_notifier_abstract_namespace() -> None:
    name = f"uvicorn-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier("@" + name).status("hello")
        assert receive(sock) == {"STATUS": "hello"}


def test_no_socket_no_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled
    Notifier().ready("nobody listens")
    Notifier(str(tmp_path / "gone")).ready("nobody listens")  # systemd went away: not fatal


def test_listen_fds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert listen_fds() == [3, 4]
    assert "LISTEN_FDS" not in os.environ
    monkeypatch.setenv("LISTEN_PID", "1")  # meant for another process
    monkeypatch.setenv("LISTEN_FDS", "2")
    assert listen_fds() == []
