"""Bind the listening sockets: TCP (IPv4/IPv6), Unix, or inherited file descriptors."""

from __future__ import annotations

import errno
import os
import socket
import stat

from uvicorn.config_values import BindSpec
from uvicorn.exceptions import StartupError


def bind(
    spec: BindSpec, backlog: int, reuse_port: bool = False, cork: bool = False
) -> socket.socket:
    """A listening socket for ``spec``, or a ``StartupError`` naming the address.

    ``reuse_port`` (TCP only): set SO_REUSEPORT, and with ``backlog`` 0 bind without listening,
    which holds the address (and the port chosen for port 0) without taking connections.
    ``cork`` (TCP only): set TCP_CORK, which every connection accepted inherits. An HTTP/1.1
    response that ends its connection then leaves with the FIN in one segment without a
    setsockopt() of its own (the worker's ``transport.py``: 2 system calls and a socket
    object fewer per ``Connection: close`` request); every other connection uncorks before
    its first write. Never on an inherited socket (fd://): it may outlive this server and
    serve one that leaves its connections corked, each response held up to 200 ms."""
    try:
        if spec.kind == "fd":
            sock = socket.socket(fileno=spec.fd)
            if sock.type != socket.SOCK_STREAM:
                raise StartupError(f"fd://{spec.fd} is not a stream socket")
            sock.listen(backlog)
        elif spec.kind == "unix":
            sock = _bind_unix(spec.path, backlog)
        else:
            sock = _bind_tcp(spec.host, spec.port, backlog, reuse_port, cork)
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


def _bind_tcp(
    host: str, port: int, backlog: int, reuse_port: bool = False, cork: bool = False
) -> socket.socket:
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
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if cork and hasattr(socket, "TCP_CORK"):  # (Linux)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        sock.bind(address)
        if backlog:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class Listeners:
    """Every listening socket of a server, bound once by the master.

    By default each socket is shared: every worker inherits it and accepts from the one kernel
    queue, so a worker that exits leaves its queued connections to the others. With
    ``reuse_port``, each TCP address is held by a bound, non-listening socket, and each worker
    gets a fresh SO_REUSEPORT socket on it: the kernel spreads connections evenly, but those
    queued on a worker's socket are reset when that worker closes it.
    """

    def __init__(
        self, specs: list[BindSpec], backlog: int, reuse_port: bool = False, cork: bool = False
    ) -> None:
        self.backlog = backlog
        self.cork = cork  # the TCP listeners (see bind())
        self.shared: list[socket.socket] = []
        self._reserved: list[socket.socket] = []
        self._unix_paths: list[str] = []  # socket files created here, removed by close()
        try:
            for spec in specs:
                if reuse_port and spec.kind == "tcp":
                    self._reserved.append(bind(spec, 0, reuse_port=True))
                else:
                    self.shared.append(bind(spec, backlog, cork=cork))
                    if spec.kind == "unix":
                        self._unix_paths.append(spec.path)
        except BaseException:
            self.close()
            raise

    def for_worker(self) -> tuple[list[socket.socket], list[socket.socket]]:
        """(every socket a new worker serves, those made for it alone): the caller closes the
        latter once the worker is forked, so that it alone holds them."""
        own: list[socket.socket] = []
        try:
            for reserved in self._reserved:
                host, port = reserved.getsockname()[:2]
                spec = BindSpec("tcp", host=host, port=port)
                own.append(bind(spec, self.backlog, reuse_port=True, cork=self.cork))
        except BaseException:
            for sock in own:
                sock.close()
            raise
        return self.shared + own, own

    def fds(self) -> list[int]:
        return [sock.fileno() for sock in self.shared + self._reserved]

    def close(self) -> None:
        for sock in self.shared:
            sock.close()
        for sock in self._reserved:
            sock.close()
        self.shared, self._reserved = [], []
        for path in self._unix_paths:
            if os.path.exists(path):
                os.unlink(path)
        self._unix_paths = []


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
