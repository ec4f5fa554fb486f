"""HPACK, header compression for HTTP/2 (RFC 7541), sans I/O.

``Decoder`` reads the header blocks of one connection, keeping its dynamic table in step with
the peer's encoder; ``Encoder`` writes blocks that never touch a dynamic table (our responses
need none: RFC 7541 section 2.3.2 lets an encoder leave it empty), so it holds no state.

Speed. The HTTP/2 core caches whole request heads keyed by (``Decoder.generation``, block):
a block made only of references to the tables decodes to the same fields as long as the
dynamic table has not changed, which is what h2load sends, request after request. A miss costs
one pass over the block: a run of one-octet indexed fields (most of a browser's block) is
picked from the tables by one ``itemgetter``, and Huffman-coded strings are decoded an octet
at a time by a state table. Measured (callgrind, CPython 3.11): h2load's all-indexed block of 7
fields, ~11k instructions when not cached; a browser's block of 17 fields with a new
Huffman-coded :path, ~60k (the hit of the core's cache: a dict lookup, ~1k).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

from uvicorn.protocols.hpack_tables import HUFFMAN_CODES, STATIC_TABLE

__all__ = ["Decoder", "Encoder", "HPACKError"]

Field = tuple[bytes, bytes]

# An entry's size: its name and value plus 32 octets of overhead (RFC 7541 section 4.1; the
# same measure bounds a header list, RFC 9113 section 6.5.2).
ENTRY_OVERHEAD = 32
# Integers: RFC 7541 section 5.1 leaves the bound to us ("integer encodings that exceed
# implementation limits -- in value or octet length -- MUST be treated as decoding errors").
# Every integer here is an index, a string length or a table size, and none of these can
# exceed 32 bits; five continuation octets (35 bits) hold any such value even when padded
# with zero octets, as the ``hpack`` package also allows.
MAX_INTEGER = 2**32 - 1
MAX_CONTINUATION_SHIFT = 28  # the shift of the fifth continuation octet
_STATIC_COUNT = len(STATIC_TABLE)  # 61: dynamic indices start at 62 (RFC 7541 section 2.3.3)


class HPACKError(Exception):
    """The header block cannot be decoded (RFC 9113 section 4.3: a connection error of type
    COMPRESSION_ERROR): the connection's decoding state is lost."""


# Huffman decoding (RFC 7541 section 5.2, the code of Appendix B), an octet at a time.
#
# The code's decoding tree has 256 inner nodes (its 257 leaves are the 256 octets and EOS).
# Between two octets of a string, a decoder is at one of them: the bits of a code begun and
# not finished (the root: none). For each node and each octet, _OUTPUT holds the symbols that
# the octet completes, and _NEXT the node after it, times 256 so that the next index is one OR
# away. A string that contains EOS leads to _FAILED, which never leaves. So each octet costs
# two list lookups, with no branch, whatever its symbols. Built on first use (65,792 entries
# each; ~10 ms, ~1.8 MB, once per process).
_EOS = 256
_OUTPUT: list[bytes] = []
_NEXT: list[int] = []
_FAILED = 256 * 256  # the node after EOS (the inner nodes are 0 to 255)
# The nodes a string may end at: the padding is at most 7 bits, the most significant bits of
# EOS (all ones), so the root and the first 7 nodes on EOS's path. Set by _build_huffman,
# with the nodes on EOS's path deeper than that (padding too long).
_PADDED: set[int] = set()
_TOO_LONG: set[int] = set()


def _build_huffman() -> None:
    # The tree: step[node] is [its child for bit 0, for bit 1]; a child is an inner node's
    # number (never 0: the root is no child), or ~symbol for a leaf.
    step = [[0, 0]]
    for symbol, (code, length) in enumerate(HUFFMAN_CODES):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if not step[node][bit]:
                step[node][bit] = len(step)
                step.append([0, 0])
            node = step[node][bit]
        step[node][code & 1] = ~symbol
    assert len(step) * 256 == _FAILED
    # Four bits at a time first: (symbols completed, next node) per node and half-octet.
    halves: list[tuple[bytes, int]] = []
    for node in range(len(step)):
        for half in range(16):
            at, symbols = node, b""
            for shift in (3, 2, 1, 0):
                at = step[at][(half >> shift) & 1]
                if at < 0:
                    if ~at == _EOS:
                        at = len(step)
                        break
                    symbols += bytes((~at,))
                    at = 0
            halves.append((symbols, at))
    halves += [(b"", len(step))] * 16  # after EOS
    # Then whole octets, as two halves; equal outputs and states are one object each.
    shared: dict[bytes, bytes] = {}
    scaled = [node * 256 for node in range(len(step) + 1)]
    output: list[bytes] = []
    following: list[int] = []
    for node in range(len(step) + 1):
        for high in range(16):
            first, middle = halves[node * 16 + high]
            for symbols, after in halves[middle * 16 : middle * 16 + 16]:
                symbols = first + symbols
                output.append(shared.setdefault(symbols, symbols))
                following.append(scaled[after])
    node = 0
    for depth in range(HUFFMAN_CODES[_EOS][1]):  # EOS is 30 ones
        (_PADDED if depth <= 7 else _TOO_LONG).add(node * 256)
        node = step[node][1]
    _OUTPUT[:] = output  # whole, and _NEXT last: Decoder() builds while _NEXT is empty
    _NEXT[:] = following


def _huffman(data: bytes) -> bytes:
    """A Huffman-coded string, decoded (RFC 7541 section 5.2)."""
    output = _OUTPUT
    following = _NEXT
    out: list[bytes] = []
    append = out.append
    state = 0
    for octet in data:
        index = state | octet
        append(output[index])
        state = following[index]
    if state not in _PADDED:
        if state == _FAILED:
            raise HPACKError("a Huffman-coded string contains EOS (RFC 7541 section 5.2)")
        if state in _TOO_LONG:
            raise HPACKError("a Huffman-coded string has padding longer than 7 bits")
        raise HPACKError("a Huffman-coded string ends with padding that is not all ones")
    return b"".join(out)


def _integer(block: bytes, pos: int, value: int) -> tuple[int, int]:
    """The continuation octets of an integer whose prefix is all ones (RFC 7541 section 5.1),
    from ``pos``: the integer and the position after it. IndexError when truncated."""
    shift = 0
    while True:
        octet = block[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        if octet < 0x80:
            break
        shift += 7
        if shift > MAX_CONTINUATION_SHIFT:
            raise HPACKError("an integer is longer than 5 continuation octets")
    if value > MAX_INTEGER:
        raise HPACKError(f"an integer is larger than 2**32 - 1: {value}")
    return value, pos


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """A string literal at ``pos`` (RFC 7541 section 5.2) and the position after it."""
    first = block[pos]
    length = first & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _integer(block, pos, 0x7F)
    end = pos + length
    if end > len(block):
        raise HPACKError(f"a string of {length} octets runs past the end of the block")
    if first & 0x80:
        return _huffman(block[pos:end]), end
    return block[pos:end], end


# See Decoder.decode: octets 0x81 to 0xFE are indexed fields of indices 1 to 126.
_ONE_OCTET_INDEX = bytes(octet - 0x80 if 0x80 < octet < 0xFF else 0 for octet in range(256))
_RUN = 64


class Decoder:
    """The decoding context of one connection (RFC 7541 section 2.2): the dynamic table, in
    step with the peer's encoder as long as every header block it sends is decoded, in order.

    ``max_table_size`` is our SETTINGS_HEADER_TABLE_SIZE (RFC 9113 section 6.5.2), the most the
    peer may make the table; ``max_list_size`` bounds a decoded header list (the
    SETTINGS_MAX_HEADER_LIST_SIZE measure). ``generation`` changes whenever the dynamic table
    does (an insert, an eviction, a size update), and only then: a block decoded without
    changing it decodes to the same fields for as long as it stays the same."""

    __slots__ = ("_entries", "_sizes", "_size", "_max_size", "_limit", "_max_list_size",
                 "_update_due", "generation", "list_size")  # fmt: skip

    def __init__(self, max_table_size: int = 4096, max_list_size: int = 65536) -> None:
        # Both tables in one list, so that an index is a position (RFC 7541 section 2.3.3):
        # 0 unused, 1-61 the static table, then the dynamic table, newest first (inserting at
        # 62 moves at most max_table_size / 32 references). _sizes holds each entry's size.
        self._entries: list[Field] = [(b"", b""), *STATIC_TABLE]
        self._sizes: list[int] = [0] + [len(n) + len(v) + ENTRY_OVERHEAD for n, v in STATIC_TABLE]
        self._size = 0  # of the dynamic table
        self._max_size = max_table_size  # the table's maximum size, as the peer last set it
        self._limit = max_table_size  # what the peer may set it to
        self._max_list_size = max_list_size
        self._update_due = False
        self.generation = 0
        self.list_size = 0  # of the last header list decoded (RFC 9113 section 6.5.2's measure)
        if not _NEXT:
            _build_huffman()

    def decode(self, block: bytes) -> tuple[list[Field], bool]:
        """The header fields of a complete header block, in order, names and values as sent
        (bytes), and whether the list is too large: over max_list_size by RFC 9113 section
        6.5.2's measure (name + value + 32 per field). A block too large is still decoded to its
        end (RFC 7541 section 2.2: the dynamic table must stay in sync), but its fields are not
        kept beyond the limit (return [] and True), so that a huge header list costs no memory.
        Raises HPACKError for: an index 0 or beyond the tables, a truncated block or integer, an
        integer over 2**32 - 1 (or longer than 5 continuation octets), invalid Huffman (padding
        longer than 7 bits, padding not all ones, an EOS symbol: RFC 7541 section 5.2), a
        dynamic table size update above the limit, or one not at the start of a block (section
        4.2), or a block without one when our limit was lowered below the table's size."""
        entries = self._entries  # mutated in place by _insert, never replaced
        sizes = self._sizes
        fields: list[Field] = []
        append = fields.append
        limit = self._max_list_size
        total = 0  # the list's size so far; more than 0 once a field is decoded
        pos = 0
        end = len(block)
        if self._update_due and (not end or block[0] & 0xE0 != 0x20):
            # RFC 7541 section 4.2: a lower limit is acknowledged by a size update at the start
            # of the next block.
            raise HPACKError(f"a dynamic table size update to at most {self._limit} is due")
        # Each octet that would be a one-octet indexed field (section 6.1), as its index; 0 for
        # the others. Where two or more such fields follow each other (most of a browser's
        # block), the run is decoded by C-level calls: an itemgetter of their indices picks
        # their sizes and their fields, _RUN at most at a time (the tuples it makes stay small
        # however long the run).
        runs = block.translate(_ONE_OCTET_INDEX)
        try:
            while pos < end:
                if runs[pos]:
                    stop = runs.find(0, pos, pos + _RUN)
                    if stop < 0:
                        stop = min(end, pos + _RUN)
                    if stop - pos > 1:
                        pick = itemgetter(*runs[pos:stop])
                        try:
                            total += sum(pick(sizes))
                        except IndexError:
                            raise HPACKError(self._bad_index(max(runs[pos:stop]))) from None
                        if total <= limit:
                            fields += pick(entries)
                        elif fields:
                            fields.clear()
                        pos = stop
                        continue
                octet = block[pos]
                pos += 1
                if octet & 0x80:  # indexed header field (section 6.1)
                    index = octet & 0x7F
                    if index == 0x7F:
                        index, pos = _integer(block, pos, 0x7F)
                    if not 0 < index < len(entries):
                        raise HPACKError(self._bad_index(index))
                    field = entries[index]
                    total += sizes[index]
                elif (octet & 0x60) == 0x20:  # dynamic table size update (section 6.3)
                    if total:
                        raise HPACKError("a dynamic table size update follows a header field")
                    size = octet & 0x1F
                    if size == 0x1F:
                        size, pos = _integer(block, pos, 0x1F)
                    self._resize(size)
                    continue
                else:  # literal: with incremental indexing (6.2.1), without (6.2.2), never (6.2.3)
                    mask = 0x3F if octet & 0x40 else 0x0F
                    index = octet & mask
                    if index == mask:
                        index, pos = _integer(block, pos, mask)
                    if not index:
                        name, pos = _string(block, pos)
                    elif index < len(entries):
                        name = entries[index][0]
                    else:
                        raise HPACKError(self._bad_index(index))
                    value, pos = _string(block, pos)
                    field = (name, value)
                    size = len(name) + len(value) + ENTRY_OVERHEAD
                    total += size
                    if mask == 0x3F:
                        self._insert(field, size)
                if total <= limit:
                    append(field)
                elif fields:  # too large: keep nothing, decode on (the table must follow)
                    fields.clear()
        except IndexError:
            raise HPACKError("the header block is truncated") from None
        self.list_size = total
        return fields, total > limit

    def set_max_table_size(self, size: int) -> None:
        """Our SETTINGS_HEADER_TABLE_SIZE changed (after the peer acknowledged it)."""
        self._limit = size
        if self._max_size > size:
            # The peer must now shrink the table (RFC 7541 section 4.2): entries past the new
            # limit can no longer be referenced, so they go now (section 4.3), and the next
            # block must begin with a size update.
            self._resize(size)
            self._update_due = True

    def _resize(self, size: int) -> None:
        """A dynamic table size update (RFC 7541 sections 4.3, 6.3)."""
        if size > self._limit:
            raise HPACKError(f"a dynamic table size update to {size} exceeds {self._limit}")
        self._update_due = False
        self._max_size = size
        self.generation += 1
        self._evict(size)

    def _insert(self, field: Field, size: int) -> None:
        """A new entry (RFC 7541 section 4.4): evict until it fits, then add it first."""
        self.generation += 1
        if size > self._max_size:  # an entry larger than the table empties it
            self._evict(0)
            return
        self._evict(self._max_size - size)
        self._entries.insert(_STATIC_COUNT + 1, field)
        self._sizes.insert(_STATIC_COUNT + 1, size)
        self._size += size

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until the dynamic table's size is at most ``room``."""
        sizes = self._sizes
        while self._size > room:
            self._entries.pop()
            self._size -= sizes.pop()

    def _bad_index(self, index: int) -> str:
        if not index:
            return "index 0 (RFC 7541 section 6.1)"
        return f"index {index} is beyond the tables ({len(self._entries) - 1} entries)"


def _encode_integer(value: int, prefix: int, first: int) -> bytes:
    """``value`` in an integer representation with a ``prefix``-bit prefix (RFC 7541 section
    5.1), ``first`` the bits above the prefix in the first octet."""
    top = (1 << prefix) - 1
    if value < top:
        return bytes((first | value,))
    out = bytearray((first | top,))
    value -= top
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# A string's length prefix (not Huffman-coded), for the short strings most values are.
_LENGTHS = [bytes((n,)) for n in range(0x7F)]


def _static_names() -> dict[bytes, tuple[bytes, dict[bytes, bytes]]]:
    """Per static name: the first octets of a literal without indexing that refers to the name
    by its index (section 6.2.2), and the static entries with that name, as indexed fields
    (section 6.1), by value."""
    names: dict[bytes, tuple[bytes, dict[bytes, bytes]]] = {}
    for index, (name, value) in enumerate(STATIC_TABLE, 1):
        _, values = names.setdefault(name, (_encode_integer(index, 4, 0), {}))
        if value:
            values[value] = _encode_integer(index, 7, 0x80)
    return names


_STATIC_NAMES = _static_names()


class Encoder:
    """Header blocks that never touch the dynamic table: each field an indexed field when the
    static table holds it whole (``:status 200``), else a literal without indexing, the name
    by its static index when it has one (RFC 7541 sections 6.1, 6.2.2). Stateless, so that
    every block stands alone and may be cached and sent on any connection. Strings are not
    Huffman-coded (section 5.2 makes it optional): the caller caches the blocks it sends
    often, and the octets saved are few."""

    __slots__ = ()

    def encode(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """A header block for these fields. Names must already be lower-case."""
        parts: list[bytes] = []
        append = parts.append
        lengths = _LENGTHS
        for name, value in headers:
            static = _STATIC_NAMES.get(name)
            if static is None:
                n = len(name)
                append(b"\x00" + (lengths[n] if n < 0x7F else _encode_integer(n, 7, 0)) + name)
            else:
                indexed = static[1].get(value)
                if indexed is not None:
                    append(indexed)
                    continue
                append(static[0])
            n = len(value)
            append(lengths[n] if n < 0x7F else _encode_integer(n, 7, 0))
            append(value)
        return b"".join(parts)
