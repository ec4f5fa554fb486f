"""The ASGI ``tls`` extension's dict (ASGI TLS extension 0.2), which the messaging interface
gives under a ``tls`` key too (SPEC.md): what the TLS handshake of a connection settled.

It is made once per connection, when the handshake has ended (``connection_made``), and shared
by every request (and HTTP/2 stream, and WebSocket) of that connection; apps must not change it.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from uvicorn.protocols.tls_ciphers import CIPHER_SUITES

# The protocol versions ``SSLObject.version()`` names, as the TLS specifications number them.
TLS_VERSIONS = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# RFC 4514 section 3: the attribute types written by a short name (others: the dotted OID), by
# the long names Python's ``getpeercert()`` gives them.
_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_SPECIAL = frozenset('"+,;<>\\')


@functools.lru_cache(maxsize=8)
def server_certificate(certfile: str) -> str | None:
    """The PEM of the certificate we serve: the first of ``--ssl-certfile`` (read once; the
    server calls this when it loads the file into its TLS context)."""
    try:
        with open(certfile, encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        return None
    try:  # (normalized: 64-character lines, one final newline)
        return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(text[begin : end + 25]))
    except ValueError:
        return None


def tls_extension(transport: Any, certfile: str | None) -> dict[str, Any] | None:
    """The ``tls`` dict of a connection whose handshake has ended (None: not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    chain = client_chain(ssl_object)
    name = None
    if chain:
        subject = ssl_object.getpeercert().get("subject")
        name = rfc4514_name(subject) if subject else None
    return {
        "server_cert": server_certificate(certfile) if certfile else None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        # A client certificate that fails verification fails the handshake (--ssl-cert-reqs 1
        # or 2): no connection is served with one.
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": cipher_suite(ssl_object, cipher[0]) if cipher else None,
    }


def cipher_suite(ssl_object: Any, name: str) -> int | None:
    """The IANA number of the cipher suite OpenSSL calls ``name``."""
    number = CIPHER_SUITES.get(name)
    if number is None:  # a suite newer than our table: the low 16 bits of OpenSSL's id
        for suite in ssl_object.context.get_ciphers():
            if suite["name"] == name:
                return suite["id"] & 0xFFFF  # type: ignore[no-any-return]
    return number


def client_chain(ssl_object: Any) -> list[str]:
    """The client's certificate then the chain it sent, as PEM strings; empty without one."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return []
    get_chain = getattr(ssl_object, "get_unverified_chain", None)  # (Python 3.13)
    if get_chain is None:  # (3.10 to 3.12: the C object's)
        get_chain = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    chain = [ssl.DER_cert_to_PEM_cert(der)]  # the client's certificate
    if get_chain is not None:  # (the client's certificate first, as it sent them)
        try:
            sent = get_chain() or []
            for cert in sent[1:]:
                if cert is not None:
                    chain.append(
                        ssl.DER_cert_to_PEM_cert(cert) if isinstance(cert, bytes)
                        else cert.public_bytes()
                    )  # fmt: skip
        except (AttributeError, TypeError, ValueError, ssl.SSLError):  # (a private API)
            del chain[1:]
    return chain


def rfc4514_name(rdns: Any) -> str:
    """A distinguished name from ``getpeercert()``'s ``subject`` (RDNs in the certificate's
    order, each a tuple of (type, value) pairs) as RFC 4514 writes it: last RDN first."""
    return ",".join(
        "+".join(f"{_attribute_type(kind)}={_escape(value)}" for kind, value in rdn)
        for rdn in reversed(rdns)
    )


def _attribute_type(name: str) -> str:
    short = _SHORT_NAMES.get(name)
    if short is not None:
        return short
    try:
        return ssl._ASN1Object.fromname(name).oid  # dotted decimal (RFC 4514 section 2.3)
    except (AttributeError, ValueError):
        return name


def _escape(value: str) -> str:
    """RFC 4514 section 2.4."""
    out = ["\\" + char if char in _SPECIAL else "\\00" if char == "\0" else char for char in value]
    if value[:1] in (" ", "#"):
        out[0] = "\\" + value[0]
    if len(value) > 1 and value[-1] == " ":
        out[-1] = "\\ "
    return "".join(out)
