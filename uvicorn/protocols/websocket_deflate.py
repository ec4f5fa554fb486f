"""permessage-deflate (RFC 7692) whose zlib streams exist only while they are used.

websockets' ``PerMessageDeflate`` makes its compressor and its decompressor as the handshake is
answered. zlib's compressor allocates its window, hash chains, hash table and pending buffer
at once (with the 4 KiB windows and memLevel 5 of ``--ws-deflate-window-bits 12``: about
38 KiB), the decompressor its state (about 7 KiB; its window on first use): every browser
negotiates permessage-deflate, so an idle chat member cost 29 KiB more than one without it
(``benchmarks/idle_memory.py``). ``LazyDeflate`` makes each on first use, and lets the
compressor go again once a connection has been quiet (``release_compressor()``): RFC 7692
section 7.2.1, without ``server_no_context_takeover`` the server "MAY" compress a message
with the last one's sliding window, so it may as well start from an empty one, which the
client's decompressor reads the same. The decompressor stays once made: a client that takes
over its context refers to its earlier messages (section 7.2.2).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from typing import Any

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CTRL_OPCODES, Frame
from websockets.typing import ExtensionParameter


class LazyDeflate(PerMessageDeflate):
    """``PerMessageDeflate`` with its zlib streams made on first use (``__getattr__`` runs
    only for an attribute not set)."""

    compressed = False  # a message was compressed since the last release_compressor()

    def __getattr__(self, name: str) -> Any:
        if name == "encoder":
            encoder = zlib.compressobj(wbits=-self.local_max_window_bits, **self.compress_settings)
            self.encoder = encoder
            return encoder
        if name == "decoder":
            decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            self.decoder = decoder
            return decoder
        raise AttributeError(name)

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode not in CTRL_OPCODES:  # (control frames pass through uncompressed)
            self.compressed = True
        return super().encode(frame)

    def release_compressor(self) -> bool:
        """Let the compressor go if no message was compressed since the last call (a quiet
        connection); the next message makes a new one. Whether it was let go."""
        if self.compressed:
            self.compressed = False
            return False
        return self.__dict__.pop("encoder", None) is not None

    @property
    def holds(self) -> tuple[bool, bool]:
        """(compressor, decompressor) made and held now."""
        return "encoder" in self.__dict__, "decoder" in self.__dict__


class LazyDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates as websockets' factory does; the connection's extension is a
    ``LazyDeflate``, holding no zlib stream yet."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, extension = super().process_request_params(params, accepted_extensions)
        # (websockets made both streams: dropped here, before the connection keeps them.)
        extension.__class__ = LazyDeflate
        extension.__dict__.pop("encoder", None)
        extension.__dict__.pop("decoder", None)
        return response, extension


# permessage-deflate (RFC 7692): the LZ77 window both sides use, in bits (sections 7.1.2.1 and
# 7.1.2.2: the server's, and the client's when it offers client_max_window_bits; the default of
# --ws-deflate-window-bits), and zlib's memLevel, its hash table as large as the window
# (2^(memLevel+7) entries). 4 KiB windows keep a busy connection's compression at ~50 KiB
# instead of ~250 KiB with zlib's defaults (15, 8), and compress faster, for ~15% more bytes:
# conformance/README.md has the measurements.
DEFLATE_WINDOW_BITS = 12


@functools.cache  # one for all connections: it holds settings, each connection its own state
def deflate_factory(window_bits: int) -> ServerPerMessageDeflateFactory:
    # Each connection's zlib streams made when first used (LazyDeflate).
    return LazyDeflateFactory(
        server_max_window_bits=window_bits,
        client_max_window_bits=window_bits,
        compress_settings={"memLevel": window_bits - 7},  # a hash table as large as the window
    )
