"""The headers the server adds to every response (``server``, ``date``, ``--header``), kept in
the forms both protocols send: HTTP/1.1 lines, and HTTP/2 fields (lower-case names, RFC 9113
section 8.2.1) for HPACK to encode."""

from __future__ import annotations

from collections.abc import Iterable


class HeaderDefaults:
    """The worker calls ``set_date()`` once a second; ``block`` (HTTP/1.1) and ``fields``
    (HTTP/2) are what most responses use whole. An extra header (``--header``) named ``server``
    or ``date`` replaces the default one."""

    __slots__ = ("block", "fields", "_date", "_date_wanted", "_extra", "_server")

    def __init__(
        self,
        server_header: bool = True,
        date_header: bool = True,
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self._extra = [(name.lower(), name, value) for name, value in extra]
        names = {lower for lower, _, _ in self._extra}
        self._server = server_header and b"server" not in names
        self._date_wanted = date_header and b"date" not in names
        self._date = b""
        self._refresh()

    def set_date(self, date: bytes) -> None:
        """``date`` is an IMF-fixdate (RFC 9110 section 5.6.7)."""
        if self._date_wanted:
            self._date = date
            self._refresh()

    def _refresh(self) -> None:
        self.block = self.without(date=False, server=False)
        self.fields = self.fields_without(date=False, server=False)

    def fields_without(self, date: bool, server: bool) -> tuple[tuple[bytes, bytes], ...]:
        """The defaults as (lower-case name, value) pairs, minus the headers the app set itself
        (``date``, ``server``)."""
        fields = []
        if self._date and not date:
            fields.append((b"date", self._date))
        if self._server and not server:
            fields.append((b"server", b"uvicorn"))
        for lower, _, value in self._extra:
            if not ((date and lower == b"date") or (server and lower == b"server")):
                fields.append((lower, value))
        return tuple(fields)

    def without(self, date: bool, server: bool) -> bytes:
        """The defaults as HTTP/1.1 header lines, minus the headers the app set itself."""
        lines = [b"date: " + self._date + b"\r\n" if self._date and not date else b""]
        lines.append(b"server: uvicorn\r\n" if self._server and not server else b"")
        lines += [
            b"%s: %s\r\n" % (name, value)
            for lower, name, value in self._extra
            if not ((date and lower == b"date") or (server and lower == b"server"))
        ]
        return b"".join(lines)
