"""Bind the listening sockets: TCP (IPv4/IPv6), Unix, or inherited file descriptors."""

from __future__ import annotations

import errno
import os
import socket
import stat

from uvicorn.config import BindSpec
from uvicorn.exceptions import StartupError


def bind(spec: BindSpec, backlog: int) -> socket.socket:
    """A listening socket for ``spec``, or a ``StartupError`` naming the address."""
    try:
        if spec.kind == "fd":
            sock = socket.socket(fileno=spec.fd)
            if sock.type != socket.SOCK_STREAM:
                raise StartupError(f"fd://{spec.fd} is not a stream socket")
            sock.listen(backlog)
        elif spec.kind == "unix":
            sock = _bind_unix(spec.path, backlog)
        else:
            sock = _bind_tcp(spec.host, spec.port, backlog)
    except OSError as exc:
        reason = {
            errno.EADDRINUSE: "address already in use",
            errno.EACCES: "permission denied",
            errno.EADDRNOTAVAIL: "address not available on this machine",
            errno.EBADF: "not an open file descriptor",
            errno.ENOTSOCK: "not a socket",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise StartupError(f"cannot listen on {spec}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    # A stale socket file left by a crashed server would make bind() fail: remove it, but
    # only if nothing listens on it (connecting tells) and it is a socket, not a user's file.
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise StartupError(f"cannot listen on unix:{path}: the file exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise OSError(errno.EADDRINUSE, "address already in use")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
