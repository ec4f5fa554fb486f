"""The commonest request head, read without llhttp: sans I/O, a strict subset of what llhttp
accepts, read the way llhttp and ``RequestParser`` read it.

Most requests arrive whole in one read, without a body and with a few plain fields (a GET on a
keep-alive connection, say), in at most ``SIMPLE_MAX`` bytes. (Compiled by mypyc only: as
bytecode, the scan costs more than llhttp, and the pure-Python build does not call it.) Through
llhttp, httptools calls back into Python for the URL, each field, the end of the head and the
end of the message, and each call costs more than reading the bytes. ``simple_head`` scans such
a head in one pass instead, byte by byte (mypyc compiles the loops to C), or declines (None) as
soon as anything is out of the ordinary; the caller then feeds the bytes to llhttp as before,
which decides, and words the errors. Declined: a head that is not all of the bytes (a body or a
pipelined request follows); a byte outside what each part may hold (VCHAR, SP, HTAB in a field
value: no obs-text, no CTL, no bare CR or LF); extra whitespace in the request line; a method
that llhttp has not yet accepted in this process; a version other than HTTP/1.1 or HTTP/1.0; a
target not in origin-form or with a byte outside RFC 3986's pchar, "/" and "?" (RFC 9112 section
3.2.1); a field name that is not a token; Host other than once with a value already found valid;
Connection other than once with "close" or "keep-alive"; the fields that frame a body or change
what follows (Content-Length, Transfer-Encoding, Expect, Upgrade, and Proxy-Connection, which
llhttp reads as Connection); and anything past the limits.

tests/protocols/test_http_simple.py compares what it reads with what llhttp reads of the same
bytes, and the property tests and fuzz/fuzz_http_parser.py feed every input whole (read here
when it can be) and split (llhttp) and compare the events.
"""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.http_events import Limits, RequestHead

# The longest head tried here. The scan costs ~3 ns a byte against llhttp's ~1 (compiled,
# Zen 4): a browser's GET of 586 bytes and 13 fields took RequestParser 3.3 us here against 3.6
# through llhttp, one of 1,388 bytes (a long cookie) 5.5 against 4.2; and a head declined late
# costs no more than this much scanning.
SIMPLE_MAX: Final = 1024
_ALNUM: Final = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What each byte may be, as bits of _CLASSES[byte] (0: none of them).
_TCHAR: Final = 1  # RFC 9110 section 5.6.2: of a token (a method, a field name)
_TARGET: Final = 2  # RFC 3986 sections 3.3 and 3.4: pchar, "/" and "?"
_VALUE: Final = 4  # RFC 9110 section 5.5: VCHAR, SP, HTAB (obs-text is llhttp's to judge)


def _classes() -> bytes:
    table = bytearray(256)
    for c in _ALNUM + b"!#$%&'*+-.^_`|~":
        table[c] |= _TCHAR
    for c in _ALNUM + b"-._~!$&'()*+,;=:@%/?":
        table[c] |= _TARGET
    for c in b"\t" + bytes(range(0x20, 0x7F)):
        table[c] |= _VALUE
    return bytes(table)


_CLASSES: Final = _classes()
_SP: Final = 0x20
_HTAB: Final = 0x09
_CR: Final = 0x0D
_LF: Final = 0x0A
_COLON: Final = 0x3A
_SLASH: Final = 0x2F
_QUESTION: Final = 0x3F
_G: Final = ord("G")
_E: Final = ord("E")
_T: Final = ord("T")
_H: Final = ord("H")
_P: Final = ord("P")
_DOT: Final = ord(".")
_ONE: Final = ord("1")
_ZERO: Final = ord("0")
# The fields read here, by lower-case name; any other name is carried as it is.
_HOST: Final = 0
_CONNECTION: Final = 1
_PROXY: Final = 2
_DECLINE: Final = 3
_FIELDS: Final = {
    b"host": _HOST,
    b"connection": _CONNECTION,
    b"x-forwarded-for": _PROXY,
    b"x-forwarded-proto": _PROXY,
    b"forwarded": _PROXY,
    b"content-length": _DECLINE,
    b"transfer-encoding": _DECLINE,
    b"expect": _DECLINE,
    b"upgrade": _DECLINE,
    b"proxy-connection": _DECLINE,  # llhttp reads it as Connection
}


def simple_head(
    data: bytes, limits: Limits, methods: dict[bytes, str], hosts: set[bytes]
) -> RequestHead | None:
    """The request whose head is all of ``data``, or None: give it to llhttp. ``data`` ends
    with CRLF CRLF (the caller looked), so that every scan below stops at a CR by the end of
    the data at the latest, whatever the bytes before. ``methods`` and ``hosts``: the methods
    (decoded) and the Host values that llhttp and the parser's own rules have accepted."""
    classes = _CLASSES
    # RFC 9112 section 3: request-line = method SP request-target SP HTTP-version CRLF
    i = 0
    while classes[data[i]] & _TCHAR:
        i += 1
    if i == 0 or data[i] != _SP:
        return None
    if i == 3 and data[0] == _G and data[1] == _E and data[2] == _T:
        method = "GET"  # (no slice to hash and look up, for most requests)
    else:
        found = methods.get(data[:i])
        if found is None:
            return None
        method = found
    start = i + 1
    i = start
    while classes[data[i]] & _TARGET:
        i += 1
    if data[start] != _SLASH or data[i] != _SP or i - start > limits.request_line:
        return None  # (origin-form only: section 3.2.1)
    url = data[start:i]
    # " HTTP/1.1" or " HTTP/1.0", then CRLF: compared a byte at a time, which costs less than
    # a slice to hash and look up.
    i += 1
    if i + 11 >= len(data):  # (not even room for it and the empty line)
        return None
    minor = data[i + 7]
    if (
        data[i] != _H
        or data[i + 1] != _T
        or data[i + 2] != _T
        or data[i + 3] != _P
        or data[i + 4] != _SLASH
        or data[i + 5] != _ONE
        or data[i + 6] != _DOT
        or (minor != _ONE and minor != _ZERO)
        or data[i + 8] != _CR
        or data[i + 9] != _LF
    ):
        return None
    version = "1.1" if minor == _ONE else "1.0"
    i += 10
    # Section 5: field-line = field-name ":" OWS field-value OWS, each ended by CRLF; then the
    # empty line, which must end the data.
    headers: list[list[bytes]] = []
    field_size = limits.field_size
    host = 0
    connection: bytes | None = None
    proxied = False
    while data[i] != _CR:
        name_start = i
        while classes[data[i]] & _TCHAR:
            i += 1
        if i == name_start or data[i] != _COLON:
            return None
        name_end = i
        i += 1
        while data[i] == _SP or data[i] == _HTAB:
            i += 1
        value_start = i
        while classes[data[i]] & _VALUE:
            i += 1
        if data[i] != _CR or data[i + 1] != _LF:
            return None  # a bare CR, a bare LF or another byte not allowed (section 2.2)
        value_end = i
        while value_end > value_start and (
            data[value_end - 1] == _SP or data[value_end - 1] == _HTAB
        ):
            value_end -= 1
        i += 2
        if name_end - name_start + value_end - value_start > field_size:
            return None
        name = data[name_start:name_end].lower()
        value = data[value_start:value_end]
        kind = _FIELDS.get(name)
        if kind is not None:
            if kind == _HOST:
                host += 1
                if value not in hosts:
                    return None
            elif kind == _CONNECTION:
                if connection is not None:
                    return None
                connection = value.lower()
                if connection != b"close" and connection != b"keep-alive":
                    return None
            elif kind == _PROXY:
                proxied = True
            else:
                return None
        headers.append([name, value])
    if i + 2 != len(data) or host != 1 or len(headers) > limits.fields:
        return None
    if _QUESTION in url:
        raw_path, _, query_string = url.partition(b"?")
    else:
        raw_path, query_string = url, b""
    head = RequestHead()  # (compiled: its native constructor, cheaper than new_head)
    head.method = method
    head.raw_path = raw_path
    head.query_string = query_string
    head.http_version = version
    head.headers = headers
    # RFC 9112 section 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
    head.keep_alive = connection != b"close" if version == "1.1" else connection == b"keep-alive"
    head.expect_continue = False
    head.upgrade = None
    head.proxied = proxied
    return head
