"""The cipher suite table of the ``tls`` extension: OpenSSL's names to IANA numbers."""

from __future__ import annotations

import ssl

from uvicorn.protocols.tls_ciphers import CIPHER_SUITES


def test_every_suite_openssl_offers_has_its_iana_number() -> None:
    """OpenSSL's id of a TLS suite is 0x0300 followed by its two IANA bytes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    suites = context.get_ciphers()
    assert len(suites) > 100
    for suite in suites:
        assert suite["id"] >> 16 == 0x0300, suite
        assert CIPHER_SUITES[suite["name"]] == suite["id"] & 0xFFFF, suite["name"]


def test_known_numbers() -> None:
    # RFC 8446 appendix B.4, RFC 5289, RFC 7905, RFC 5288.
    assert CIPHER_SUITES["TLS_AES_128_GCM_SHA256"] == 0x1301
    assert CIPHER_SUITES["TLS_AES_256_GCM_SHA384"] == 0x1302
    assert CIPHER_SUITES["TLS_CHACHA20_POLY1305_SHA256"] == 0x1303
    assert CIPHER_SUITES["TLS_AES_128_CCM_SHA256"] == 0x1304
    assert CIPHER_SUITES["TLS_AES_128_CCM_8_SHA256"] == 0x1305
    assert CIPHER_SUITES["ECDHE-ECDSA-AES128-GCM-SHA256"] == 0xC02B
    assert CIPHER_SUITES["ECDHE-RSA-AES256-GCM-SHA384"] == 0xC030
    assert CIPHER_SUITES["ECDHE-RSA-CHACHA20-POLY1305"] == 0xCCA8
    assert CIPHER_SUITES["DHE-RSA-AES128-GCM-SHA256"] == 0x009E
    assert len(set(CIPHER_SUITES.values())) == len(CIPHER_SUITES)
