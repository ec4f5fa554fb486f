"""Listening sockets: shared, SO_REUSEPORT per worker, the pid file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from uvicorn.config_values import BindSpec
from uvicorn.exceptions import StartupError
from uvicorn.supervisor.pidfile import PidFile
from uvicorn.supervisor.sockets import Listeners


def test_shared_sockets_are_the_same_for_every_worker(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    listeners = Listeners([BindSpec("tcp", "127.0.0.1", 0), BindSpec("unix", path=path)], 16)
    first, own = listeners.for_worker()
    second, _ = listeners.for_worker()
    assert own == [] and first == second == listeners.shared
    listeners.close()
    assert not os.path.exists(path)


def test_reuse_port_makes_a_socket_per_worker_on_one_port() -> None:
    listeners = Listeners([BindSpec("tcp", "127.0.0.1", 0)], 16, reuse_port=True)
    (first,), _ = listeners.for_worker()
    (second,), _ = listeners.for_worker()
    assert first is not second
    assert first.getsockname() == second.getsockname()
    assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    for sock in (first, second):
        sock.close()
    listeners.close()


def test_pid_file(tmp_path: Path) -> None:
    path = tmp_path / "server.pid"
    path.write_text("999999999\n")  # a crashed server's: nobody has that pid
    pidfile = PidFile(str(path))
    pidfile.create(os.getpid())
    assert path.read_text() == f"{os.getpid()}\n"
    with pytest.raises(StartupError, match="names a running process"):
        PidFile(str(path)).create(os.getpid() + 1)
    pidfile.remove()
    assert not path.exists()


def test_pid_file_is_not_removed_when_it_names_another_process(tmp_path: Path) -> None:
    path = tmp_path / "server.pid"
    pidfile = PidFile(str(path))
    pidfile.create(os.getpid())
    path.write_text("12345\n")  # a newer server took over
    pidfile.remove()
    assert path.exists()
