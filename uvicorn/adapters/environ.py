"""The request, translated both ways: the messaging interface's request message to a PEP 3333
``environ`` (for ``ASGIAdapter``) and an ``environ`` to a request message (for ``WSGIAdapter``).

PEP 3333 strings are "native strings" holding bytes: "the values of ... environ ... must be of
type str, ... containing only code points representable in ISO-8859-1". So every byte string
from the wire becomes a str by decoding it as latin-1, and back by encoding it as latin-1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote_to_bytes
from wsgiref.util import FileWrapper

from uvicorn.types import Message

# Header names seen so far -> their environ keys (a handful of names recur on every request).
_KEYS: dict[bytes, str | None] = {}
_KEYS_LIMIT = 1000


def _environ_key(name: bytes) -> str | None:
    key = _KEYS.get(name)
    if key is None and name not in _KEYS:
        text = name.decode("latin-1").lower()
        if text == "content-type":
            key = "CONTENT_TYPE"
        elif text == "content-length":
            key = "CONTENT_LENGTH"
        elif "_" in text:
            # "X-Auth_Token" and "X-Auth-Token" would both be HTTP_X_AUTH_TOKEN: a client could
            # smuggle one past a proxy that filters the other. Dropped, as nginx and gunicorn do.
            key = None
        else:
            key = "HTTP_" + text.upper().replace("-", "_")
        if len(_KEYS) < _KEYS_LIMIT:
            _KEYS[name] = key
    return key


def build_environ(message: Message, wsgi_input: Any, multiprocess: bool = False) -> dict[str, Any]:
    """The PEP 3333 ``environ`` of an ``http.request`` message."""
    scheme = message.get("scheme", "http")
    raw_path = message.get("raw_path")
    if raw_path is None:
        path_bytes = message.get("path", "/").encode("utf-8")
    else:
        # PATH_INFO is percent-decoded, and its bytes are handed over as latin-1 (PEP 3333:
        # "decoded ... as ISO-8859-1"); the app decodes them as it sees fit (UTF-8, mostly).
        path_bytes = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
    # The root path is where the app is mounted: CGI's SCRIPT_NAME. PEP 3333 wants it empty
    # or starting with '/' and never just '/', and SCRIPT_NAME + PATH_INFO to be the full path.
    root = message.get("root_path", "").rstrip("/").encode("utf-8").decode("latin-1")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": message["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path_bytes.decode("latin-1"),
        "QUERY_STRING": message.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + message.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": wsgi_input,
        # The end of wsgi.input is the end of the body, even when it has no Content-Length
        # (a chunked upload): the extension Werkzeug and mod_wsgi use to read such bodies.
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    server = message.get("server")
    if server and server[1] is not None:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
    else:
        # A Unix socket has no host or port, yet PEP 3333 requires both; URL reconstruction
        # prefers HTTP_HOST anyway, so name the default port of the scheme.
        environ["SERVER_NAME"] = "localhost"
        environ["SERVER_PORT"] = "443" if scheme == "https" else "80"
    client = message.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
    for name, value in message.get("headers", ()):
        key = _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            # One value per name in CGI: repeated fields are combined as RFC 9110 section 5.3
            # allows, with ','; cookies with '; ' (RFC 6265 section 5.4), as one Cookie header.
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    return environ


class InputStream:
    """``wsgi.input``: the request body, read as the app asks for it, never all at once.

    ``fetch()`` blocks until the next chunk arrives and returns ``(data, more)``; it is None
    once the body is complete. PEP 3333 asks for ``read(size)``, ``readline()``,
    ``readlines(hint)`` and ``__iter__``, and lets ``read()`` without a size return the rest.
    """

    def __init__(self, first: bytes, fetch: Callable[[], tuple[bytes, bool]] | None) -> None:
        self._buffer = bytearray(first)
        self._fetch = fetch

    def _fill(self) -> bool:
        """Append the next chunk; False at the end of the body."""
        fetch = self._fetch
        if fetch is None:
            return False
        data, more = fetch()
        if not more:
            self._fetch = None
        self._buffer += data
        return True

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        data = bytes(buffer[:size])
        del buffer[:size]  # bytearray drops a prefix without copying the rest
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = sys.maxsize if size is None or size < 0 else size
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned, limit)
            if end >= 0:
                return self._take(end + 1)
            scanned = len(self._buffer)
            if scanned >= limit or not self._fill():
                return self._take(limit)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


_HTTP_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1"}


def message_from_environ(environ: dict[str, Any], body: bytes) -> Message:
    """The ``http.request`` message (every key of SPEC.md's table) of a WSGI request."""
    path_bytes = environ.get("PATH_INFO", "").encode("latin-1") or b"/"
    raw_path = _raw_path(environ, path_bytes)
    headers: list[list[bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-").encode("latin-1")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.lower().replace("_", "-").encode("latin-1")
        else:
            continue
        headers.append([name, value.encode("latin-1")])
    client = None
    if environ.get("REMOTE_ADDR"):
        client = [environ["REMOTE_ADDR"], _port(environ.get("REMOTE_PORT"))]
    return {
        "channel": "http.request",
        "http_version": _HTTP_VERSIONS.get(environ.get("SERVER_PROTOCOL", ""), "1.1"),
        "method": environ["REQUEST_METHOD"].upper(),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path_bytes.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", "").encode("latin-1").decode("utf-8", "replace"),
        "headers": headers,
        "body": body,
        "client": client,
        "server": [environ.get("SERVER_NAME", "localhost"), _port(environ.get("SERVER_PORT"))],
    }


def _raw_path(environ: dict[str, Any], path_bytes: bytes) -> bytes:
    """The path as on the wire. PATH_INFO is already decoded, so prefer the request target
    the server kept (gunicorn's RAW_URI, uWSGI's and Apache's REQUEST_URI) when it is this
    very path; otherwise percent-encode PATH_INFO again."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target and not environ.get("SCRIPT_NAME"):
        raw: bytes = str(target).split("?", 1)[0].encode("latin-1")
        if unquote_to_bytes(raw) == path_bytes:
            return raw
    return quote(path_bytes, safe="/:@!$&'()*+,;=~").encode("ascii")


def _port(text: Any) -> int | None:
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return None
