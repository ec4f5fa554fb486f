"""HPACK (RFC 7541): our tables against the RFC's and the ``hpack`` package's, the examples of
Appendix C, round trips with ``hpack`` both ways, every decoding error, header lists too large,
the ``generation`` a cache relies on, and any bytes decoded as ``hpack`` decodes them
(``check_against_hpack``, which fuzz/fuzz_hpack.py runs too). ``hpack`` is a test oracle only:
uvicorn never imports it."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Sequence

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uvicorn.protocols.hpack import Decoder, Encoder, HPACKError, _encode_integer
from uvicorn.protocols.hpack_tables import HUFFMAN_CODES, STATIC_TABLE

Fields = list[tuple[bytes, bytes]]
PROFILE = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def dynamic_table(decoder: Decoder) -> tuple[Fields, int]:
    """The dynamic table, newest first (index 62 first), and its size."""
    return decoder._entries[len(STATIC_TABLE) + 1 :], decoder._size


def size(fields: Sequence[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) + 32 for name, value in fields)


# The tables (RFC 7541 Appendices A and B).


def test_static_table_is_the_rfcs() -> None:
    assert len(STATIC_TABLE) == 61
    assert STATIC_TABLE[0] == (b":authority", b"")
    assert STATIC_TABLE[7] == (b":status", b"200")
    assert STATIC_TABLE[60] == (b"www-authenticate", b"")
    assert list(STATIC_TABLE) == list(HeaderTable.STATIC_TABLE)


def test_huffman_code_is_the_rfcs() -> None:
    assert len(HUFFMAN_CODES) == 257
    assert HUFFMAN_CODES[ord("0")] == (0x0, 5) and HUFFMAN_CODES[ord("a")] == (0x3, 5)
    assert HUFFMAN_CODES[256] == (0x3FFFFFFF, 30)  # EOS: 30 ones
    assert tuple(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)) == HUFFMAN_CODES
    # A complete prefix code: every bit string begins with exactly one code.
    assert sum(2 ** (30 - length) for _, length in HUFFMAN_CODES) == 2**30
    codes = sorted(format(code, f"0{length}b") for code, length in HUFFMAN_CODES)
    assert not any(b.startswith(a) for a, b in itertools.pairwise(codes))


# Appendix C: each block, the fields it decodes to, then the dynamic table and its size.

AUTHORITY = (b":authority", b"www.example.com")
NO_CACHE = (b"cache-control", b"no-cache")
CUSTOM = (b"custom-key", b"custom-value")
REQUEST_1 = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), AUTHORITY]
REQUEST_2 = [*REQUEST_1, NO_CACHE]
REQUEST_3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html")]
REQUEST_3 += [AUTHORITY, CUSTOM]
PRIVATE = (b"cache-control", b"private")
DATE_21 = (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT")
DATE_22 = (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT")
LOCATION = (b"location", b"https://www.example.com")
COOKIE = (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSE_1 = [(b":status", b"302"), PRIVATE, DATE_21, LOCATION]
RESPONSE_2 = [(b":status", b"307"), PRIVATE, DATE_21, LOCATION]
RESPONSE_3 = [(b":status", b"200"), PRIVATE, DATE_22, LOCATION, (b"content-encoding", b"gzip")]
RESPONSE_3 += [COOKIE]
REQUEST_TABLES = [[AUTHORITY], [NO_CACHE, AUTHORITY], [CUSTOM, NO_CACHE, AUTHORITY]]
RESPONSE_TABLES = [
    [LOCATION, DATE_21, PRIVATE, (b":status", b"302")],
    [(b":status", b"307"), LOCATION, DATE_21, PRIVATE],
    [COOKIE, (b"content-encoding", b"gzip"), DATE_22],
]
REQUESTS = list(zip([REQUEST_1, REQUEST_2, REQUEST_3], REQUEST_TABLES, [57, 110, 164], strict=True))
RESPONSES = list(
    zip([RESPONSE_1, RESPONSE_2, RESPONSE_3], RESPONSE_TABLES, [222, 222, 215], strict=True)
)
Example = tuple[int, list[str], list[tuple[Fields, Fields, int]]]
C_EXAMPLES: dict[str, Example] = {
    "C.2.1": (4096, ["400a637573746f6d2d6b65790d637573746f6d2d686561646572"],
              [([(b"custom-key", b"custom-header")], [(b"custom-key", b"custom-header")], 55)]),
    "C.2.2": (4096, ["040c2f73616d706c652f70617468"], [([(b":path", b"/sample/path")], [], 0)]),
    "C.2.3": (4096, ["100870617373776f726406736563726574"], [([(b"password", b"secret")], [], 0)]),
    "C.2.4": (4096, ["82"], [([(b":method", b"GET")], [], 0)]),
    "C.3": (4096, ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
                   "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"], REQUESTS),
    "C.4": (4096, ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
                   "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"], REQUESTS),
    "C.5": (256, ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a3133"
                  "3a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                  "4803333037c1c0bf",
                  "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a"
                  "69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d"
                  "61782d6167653d333630303b2076657273696f6e3d31"], RESPONSES),
    "C.6": (256, ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d"
                  "29ad171863c78f0b97c8e9ae82ae43d3", "4883640effc1c0bf",
                  "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821d"
                  "d7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b106"
                  "3d5007"], RESPONSES),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(C_EXAMPLES))
def test_rfc7541_appendix_c(name: str) -> None:
    table_size, blocks, expected = C_EXAMPLES[name]
    decoder = Decoder(max_table_size=table_size)
    for block, (fields, table, table_bytes) in zip(blocks, expected, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == (fields, False)
        assert dynamic_table(decoder) == (table, table_bytes)


# The encoder: no dynamic table, static indices where they fit.


def test_encoder_uses_the_static_table() -> None:
    block = Encoder().encode(
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-id", b"7")]
    )
    # :status 200 is index 8 (6.1); content-type is name 31 (6.2.2: 0000 1111, then 31 - 15).
    assert block == b"\x88" + b"\x0f\x10\x0atext/plain" + b"\x00\x04x-id\x017"
    assert Encoder().encode([(b":status", b"418"), (b"age", b"")]) == b"\x08\x03418\x0f\x06\x00"
    long = b"v" * 300  # a length of 300: 127, then 173 in 7-bit groups
    assert Encoder().encode([(b"x", long)]) == b"\x00\x01x\x7f\xad\x01" + long


names = st.sampled_from([n for n, _ in STATIC_TABLE]) | st.binary(min_size=0, max_size=40)
values = (
    st.sampled_from([v for _, v in STATIC_TABLE]) | st.binary(max_size=12) | st.binary(max_size=300)
)
header_lists = st.lists(st.tuples(names, values), max_size=12)


@PROFILE
@given(st.lists(header_lists, min_size=1, max_size=4))
def test_our_blocks_decode_as_sent(lists: list[Fields]) -> None:
    theirs = hpack.Decoder(max_header_list_size=2**40)
    ours = Decoder(max_list_size=2**40)
    for headers in lists:
        block = Encoder().encode(headers)
        assert [tuple(f) for f in theirs.decode(block, raw=True)] == headers
        assert ours.decode(block) == (headers, False)
        assert dynamic_table(ours) == ([], 0) and ours.generation == 0


HpackBlock = tuple[list[tuple[bytes, bytes, bool]], bool, int | None]
hpack_blocks = st.tuples(
    st.lists(st.tuples(names, values, st.booleans()), max_size=12),  # (name, value, sensitive)
    st.booleans(),  # Huffman
    st.sampled_from([None, None, None, 0, 64, 100, 256, 4096]),  # a table size update first
)


@PROFILE
@given(st.lists(hpack_blocks, min_size=1, max_size=8))
def test_hpacks_blocks_decode_as_sent(blocks: list[HpackBlock]) -> None:
    """``hpack``'s encoder indexes what it sends (sensitive fields never), Huffman-codes or
    not, and resizes its table: we decode exactly what went in, our table in step with its."""
    encoder = hpack.Encoder()
    decoder = Decoder(max_list_size=2**40)
    for headers, huffman, table_size in blocks:
        if table_size is not None:
            encoder.header_table_size = table_size
        before = dynamic_table(decoder), decoder.generation
        block = encoder.encode(headers, huffman=huffman)
        fields = [(name, value) for name, value, _ in headers]
        assert decoder.decode(block) == (fields, False)
        table = (list(encoder.header_table.dynamic_entries), encoder.header_table._current_size)
        assert dynamic_table(decoder) == table
        if decoder.generation == before[1]:  # a block a cache may keep: the table is the same
            assert table == before[0]
            assert decoder.decode(block) == (fields, False)
            assert decoder.generation == before[1]


# Errors: each a minimal block (a connection error, RFC 9113 section 4.3).

HUGE_SIZE_UPDATE = _encode_integer(4097, 5, 0x20)
ERRORS = {
    "index 0": b"\x80",
    "index 0, after a field": b"\x82\x80",
    "index beyond the static table": b"\xbe",  # 62, the dynamic table empty
    "index beyond, in a run": b"\x82\x84\xbe",
    "index beyond, multi-octet": b"\xff\x80\x01",  # 255
    "name index beyond": b"\x7e\x00",  # literal with indexing, name 62
    "name index 0 of a literal is a new name, truncated": b"\x40",
    "truncated string": b"\x00\x01",
    "truncated value": b"\x04\x05/ab",
    "truncated integer": b"\xff",
    "truncated continuation": b"\x82\x3f\x80",
    "integer over 2**32 - 1": _encode_integer(2**32, 7, 0x80),
    "integer of 6 continuation octets": b"\x3f\x80\x80\x80\x80\x80\x00",
    "Huffman padding longer than 7 bits": b"\x04\x81\xff",
    "Huffman padding not all ones": b"\x04\x81\x18",  # 'a' (00011), then 000
    "Huffman EOS": b"\x04\x84\xff\xff\xff\xff",
    "Huffman EOS after a symbol": b"\x04\x85\x1f\xff\xff\xff\xff",
    "size update above the limit": HUGE_SIZE_UPDATE,
    "size update after a field": b"\x82\x20",
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_decoding_errors(name: str) -> None:
    with pytest.raises(HPACKError):
        Decoder().decode(ERRORS[name])
    with pytest.raises(hpack.HPACKError):  # ``hpack`` refuses them too
        hpack.Decoder().decode(ERRORS[name], raw=True)


def test_integers_padded_with_zero_octets_are_accepted() -> None:
    # Five continuation octets (RFC 7541 section 5.1 allows zero padding; so does ``hpack``).
    decoder = Decoder()
    assert decoder.decode(b"\x3f\x80\x80\x80\x80\x00") == ([], False)  # size update: 31
    assert decoder._max_size == 31


def test_huffman_padding_of_up_to_7_bits_is_accepted() -> None:
    encode = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode
    for n in range(9):  # "a" is 5 bits: n of them leave 3, 6, 1, 4, 7, 2, 5, 0 bits of padding
        value = encode(b"a" * n)
        assert len(value) == (5 * n + 7) // 8
        block = b"\x04" + bytes((0x80 | len(value),)) + value
        assert Decoder().decode(block) == ([(b":path", b"a" * n)], False)


def test_a_lower_limit_needs_a_size_update_first() -> None:
    def lowered() -> Decoder:
        decoder = Decoder()
        decoder.decode(bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"))
        decoder.set_max_table_size(40)  # below the table's 55 octets: evicted now (section 4.3)
        assert dynamic_table(decoder) == ([], 0)
        return decoder

    for block in (b"\x82", b"", b"\x3f\x0a"):  # no size update, or one above the new limit
        with pytest.raises(HPACKError):
            lowered().decode(block)
    decoder = lowered()
    assert decoder.decode(b"\x20\x3f\x09\x82") == ([(b":method", b"GET")], False)  # 0, 40
    assert decoder._max_size == 40 and decoder.decode(b"\x82") == ([(b":method", b"GET")], False)
    decoder.set_max_table_size(8192)  # a higher limit needs nothing
    assert decoder.decode(b"\x82") == ([(b":method", b"GET")], False)
    assert decoder.decode(b"\x3f\xe1\x3f") == ([], False)  # 8192: now allowed
    with pytest.raises(HPACKError):
        decoder.decode(b"\x3f\xe2\x3f")  # 8193


def test_an_entry_larger_than_the_table_empties_it() -> None:
    # RFC 7541 section 4.4: not an error; the table is emptied and the field decoded.
    decoder = Decoder(max_table_size=100)
    decoder.decode(b"\x40\x01a\x01b")
    assert dynamic_table(decoder) == ([(b"a", b"b")], 34)
    big = (b"x", b"y" * 68)  # 101 octets
    assert decoder.decode(b"\x40\x01x\x44" + big[1]) == ([big], False)
    assert dynamic_table(decoder) == ([], 0) and decoder.generation == 2
    assert decoder.decode(b"\x40\x01x\x43" + b"y" * 67) == ([(b"x", b"y" * 67)], False)
    assert dynamic_table(decoder) == ([(b"x", b"y" * 67)], 100)  # exactly full: kept


# Header lists too large (RFC 9113 section 6.5.2's measure): decoded to the end, kept nowhere.


def test_a_list_too_large_is_decoded_to_its_end_and_dropped() -> None:
    decoder = Decoder(max_list_size=100)
    first = b"\x82\x84" + b"\x40\x01a\x03xyz" + b"\x41\x05host1"  # 42 + 38 + 36 + 47
    assert decoder.decode(first) == ([], True)
    # Both literals were added all the same: the table is the peer's.
    assert dynamic_table(decoder) == ([(b":authority", b"host1"), (b"a", b"xyz")], 83)
    assert decoder.decode(b"\xbe\xbf") == ([(b":authority", b"host1"), (b"a", b"xyz")], False)
    assert decoder.decode(b"\xbf\xbe\x82") == ([], True)  # 36 + 47 + 42: a run past the limit
    assert decoder.decode(b"") == ([], False)
    exactly = Decoder(max_list_size=84).decode(b"\x82\x82")  # 42 + 42: not over
    assert exactly == ([(b":method", b"GET")] * 2, False)


def test_a_header_list_bomb_costs_no_memory() -> None:
    # 100,000 references to a 4,000-octet entry: 400 MB as a header list, from 100 kB.
    decoder = Decoder()
    decoder.decode(b"\x40\x01x" + _encode_integer(4000 - 33, 7, 0) + b"v" * (4000 - 33))
    block = b"\xbe" * 100_000
    tracemalloc.start()
    try:
        fields, too_large = decoder.decode(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (fields, too_large) == ([], True)
    assert peak < len(block) + 50_000  # the block's translation, and no list of 100,000
    block = (b"\x00\x01x" + _encode_integer(1000, 7, 0) + b"v" * 1000) * 200  # no indexing
    decoder = Decoder()
    tracemalloc.start()
    try:
        assert decoder.decode(block) == ([], True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(block) + 70_000  # 64 kB of fields at most, then none


# ``generation``: changes exactly when the dynamic table does (a block cache's key).


def test_generation() -> None:
    decoder = Decoder()
    assert decoder.generation == 0
    decoder.decode(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"))  # one insert
    assert decoder.generation == 1
    for unchanged in (b"\x82\x86\x84\xbe", b"\x04\x01/", b"\x10\x01a\x01b", b"\x82", b""):
        decoder.decode(unchanged)  # indexed, without indexing, never indexed: no change
        assert decoder.generation == 1
    decoder.decode(b"\x82\x40\x01a\x01b\x40\x01a\x01b")  # two inserts
    assert decoder.generation == 3
    decoder.decode(b"\x3f\xe1\x1f")  # a size update to the same size: still an update
    assert decoder.generation == 4
    decoder.decode(b"\x3f\x0a")  # to 41 octets: evicts
    assert decoder.generation == 5 and dynamic_table(decoder) == ([(b"a", b"b")], 34)
    decoder.set_max_table_size(8192)  # a higher limit: nothing changes
    assert decoder.generation == 5
    decoder.set_max_table_size(33)  # lower than the table: evicts now
    assert decoder.generation == 6 and dynamic_table(decoder) == ([], 0)
    with pytest.raises(HPACKError):
        decoder.decode(b"\x82")
    assert decoder.generation == 6


# Any bytes: only HPACKError, and what ``hpack`` decodes, we decode the same.


def check_against_hpack(
    blocks: Sequence[bytes], max_list_size: int = 65536, limits: Sequence[int | None] = ()
) -> None:
    """Decode ``blocks`` in order with ours and ``hpack``'s decoders (before block i, our
    SETTINGS_HEADER_TABLE_SIZE becomes ``limits[i]`` when given), and check: only HPACKError
    escapes; both refuse the same blocks (the connection then ends); an accepted block gives
    the same fields, or ([], True) when the list is over ``max_list_size``, never a longer
    list; the tables stay the same; a block after which ``generation`` is unchanged left the
    table unchanged and decodes again to the same fields."""
    ours = Decoder(max_list_size=max_list_size)
    theirs = hpack.Decoder(max_header_list_size=2**62)
    for i, block in enumerate(blocks):
        limit = limits[i] if i < len(limits) else None
        if limit is not None:
            ours.set_max_table_size(limit)
            theirs.max_allowed_table_size = limit
        before = dynamic_table(ours), ours._max_size, ours.generation
        try:
            expected: Fields | None = [(f[0], f[1]) for f in theirs.decode(block, raw=True)]
        except hpack.HPACKError:
            expected = None
        try:
            got: tuple[Fields, bool] | None = ours.decode(block)
        except HPACKError:
            got = None
        assert (got is None) == (expected is None), f"block {block!r}: {got} but hpack {expected}"
        if got is None or expected is None:
            return
        too_large = size(expected) > max_list_size
        assert got == (([], True) if too_large else (expected, False)), block
        assert dynamic_table(ours) == (
            list(theirs.header_table.dynamic_entries),
            theirs.header_table._current_size,
        )
        assert ours._max_size == theirs.header_table.maxsize
        assert ours._size <= ours._max_size <= ours._limit  # the table's memory is bounded
        if ours.generation == before[2]:
            assert (dynamic_table(ours), ours._max_size) == before[:2]
            assert ours.decode(block) == got and ours.generation == before[2]


@PROFILE
@given(
    st.lists(st.binary(max_size=60), min_size=1, max_size=4),
    st.sampled_from([65536, 300, 40, 0]),
    st.lists(st.sampled_from([None, None, 0, 64, 4096, 8192]), max_size=4),
)
def test_any_bytes_decode_as_hpack_decodes_them(
    blocks: list[bytes], max_list_size: int, limits: list[int | None]
) -> None:
    check_against_hpack(blocks, max_list_size, limits)


@PROFILE
@given(st.lists(hpack_blocks, min_size=1, max_size=5), st.data())
def test_corrupted_blocks_decode_as_hpack_decodes_them(
    blocks: list[HpackBlock], data: st.DataObject
) -> None:
    encoder = hpack.Encoder()
    encoded = [encoder.encode(headers, huffman=huffman) for headers, huffman, _ in blocks]
    i = data.draw(st.integers(0, len(encoded) - 1))
    if encoded[i]:
        at = data.draw(st.integers(0, len(encoded[i]) - 1))
        octet = data.draw(st.integers(0, 255))
        encoded[i] = encoded[i][:at] + bytes((octet,)) + encoded[i][at + 1 :]
    check_against_hpack(encoded, data.draw(st.sampled_from([65536, 500])))
