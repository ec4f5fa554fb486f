"""Property tests of H2Core on client streams Hypothesis builds: frames of every type, with any
flags, streams and payloads, and header blocks (whole, cut, or not HPACK at all), under the
server's default settings and smaller ones; the invariants of ``invariants_http2.py`` (only
connection errors escape, and then cleanly; well-formed frames sent, within the client's frame
size and windows, never after a stream's end; bounded state) hold at every read, with the app
answering each request, and the events and frames do not depend on how the bytes are split.
The fuzz harness (fuzz/fuzz_http2.py) checks the same on the fuzzer's streams."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocols.invariants import chunks_at
from tests.protocols.invariants_http2 import (
    FIELD_SETS,
    FrameSpec,
    H2Run,
    client_bytes,
    compare_h2_runs,
)
from uvicorn.protocols.http2 import H2Settings

settings.register_profile(
    "uvicorn-http2",
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("uvicorn-http2")

# Frame types (RFC 9113 section 6), HEADERS and DATA most often, and one no one knows (0x20).
KINDS = [0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 0x20]
# END_STREAM, END_HEADERS, PADDED, PRIORITY and ACK, alone and together; any byte sometimes.
FLAGS = st.one_of(st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x24, 0x25, 0x2D]), st.integers(0, 255))
STREAMS = st.one_of(st.sampled_from([0, 1, 1, 3, 3, 5, 7, 2]), st.integers(0, 2**32 - 1))
SETTING = st.tuples(
    st.sampled_from([1, 2, 3, 4, 5, 6, 8, 9, 0x10]),
    st.sampled_from([0, 1, 100, 16383, 16384, 65535, 2**24 - 1, 2**24, 2**31 - 1, 2**32 - 1]),
)


def payload_of(kind: int, draw: st.DrawFn) -> bytes:
    if kind == 4:  # SETTINGS: whole settings, usually
        pairs = draw(st.lists(SETTING, max_size=3))
        extra = draw(st.sampled_from([b"", b"", b"", b"\0"]))
        return b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs) + extra
    if kind in (3, 8):  # RST_STREAM, WINDOW_UPDATE: four octets, usually
        value = draw(st.sampled_from([0, 1, 8, 65535, 2**31 - 1, 2**31, 2**32 - 1]))
        return value.to_bytes(4, "big")[: draw(st.sampled_from([4, 4, 4, 3]))]
    if kind == 6:  # PING
        return draw(st.binary(min_size=8, max_size=8) | st.binary(max_size=12))
    if kind == 0:  # DATA, sometimes past a window
        size = draw(st.sampled_from([0, 1, 5, 100, 16384, 70_000]))
        return draw(st.binary(max_size=8)) + b"d" * size
    return draw(st.binary(max_size=20))


@st.composite
def frame_specs(draw: st.DrawFn) -> FrameSpec:
    kind = draw(st.sampled_from(KINDS))
    flags, stream_id = draw(FLAGS), draw(STREAMS)
    if kind in (1, 9) and draw(st.integers(0, 4)):  # a header block, mostly HPACK
        prefix = b""
        if kind == 1 and flags & 0x08:  # PADDED: its length first (the padding: not sent)
            prefix = bytes([draw(st.integers(0, 40))])
        if kind == 1 and flags & 0x20:  # PRIORITY: 5 octets
            prefix += draw(st.binary(min_size=5, max_size=5))
        cut = draw(st.sampled_from([0, 0, 0, 0, 1, 3, -2]))
        fields = draw(st.integers(0, len(FIELD_SETS) - 1))
        return FrameSpec(kind, flags, stream_id, prefix, fields, cut)
    return FrameSpec(kind, flags, stream_id, payload_of(kind, draw))


# client_streams' actions, by number: 1-3 a request, 4 body, 5 trailers or reset, 6 window,
# 7 ping, 8 settings, 9 priority, 10 a burst of requests left open (past any concurrency limit:
# refused, each reset remembered); 0 (one in thirty) any frame. Most likely first: Hypothesis
# leans towards the first of a sampled list.
ACTIONS = st.sampled_from([1, 4, 6, 2, 4, 5, 7, 3, 4, 8, 9, 6, 1, 4] * 2 + [5, 10, 0])


@st.composite
def client_streams(draw: st.DrawFn) -> list[FrameSpec]:
    """Mostly what a client may send (requests on new streams, whole or in CONTINUATIONs, their
    bodies, trailers, resets, windows, pings, settings, priorities, bursts), one frame in thirty
    anything at all: far enough into a connection to reach its streams' states."""
    specs: list[FrameSpec] = []
    next_id, opened = 1, [0]  # (stream 0: WINDOW_UPDATE and the like on the connection)
    for _ in range(draw(st.integers(1, 30))):
        what = draw(ACTIONS)
        stream_id = draw(st.sampled_from(opened))
        if what == 0:
            specs.append(draw(frame_specs()))
        elif what <= 3:  # a request: GET or a body to come, sometimes a bad one
            fields = draw(st.sampled_from([0, 0, 1, 2, 3, 5, 6]))
            end = draw(st.booleans()) if fields != 1 else False
            parts = draw(st.sampled_from([0, 0, 0, 1, 3]))
            specs.append(FrameSpec(1, 0x04 | end, next_id, fields=fields, continuations=parts))
            if not end:
                opened.append(next_id)
            next_id += 2 * draw(st.sampled_from([1, 1, 1, 2]))
        elif what == 4 and stream_id:
            end = draw(st.booleans())
            specs.append(FrameSpec(0, int(end), stream_id, payload_of(0, draw)[:5]))
            if end:
                opened.remove(stream_id)
        elif what == 5 and stream_id:  # trailers, or a reset
            specs.append(FrameSpec(1, 0x05, stream_id, fields=4) if draw(st.booleans())
                         else FrameSpec(3, 0, stream_id, (8).to_bytes(4, "big")))  # fmt: skip
            opened.remove(stream_id)
        elif what == 6:
            increment = draw(st.sampled_from([1, 1000, 65535, 2**20]))
            specs.append(FrameSpec(8, 0, stream_id, increment.to_bytes(4, "big")))
        elif what == 7:
            specs.append(FrameSpec(6, draw(st.sampled_from([0, 1])), 0, b"8 octets"))
        elif what == 8:
            key, value = draw(st.sampled_from([(1, 0), (1, 4096), (3, 10), (4, 0), (4, 2**20),
                                               (5, 2**14), (5, 2**20), (6, 100)]))  # fmt: skip
            specs.append(FrameSpec(4, 0, 0, key.to_bytes(2, "big") + value.to_bytes(4, "big")))
        elif what == 10:
            count = draw(st.sampled_from([20, 300]))
            specs.append(FrameSpec(1, 0x04, next_id, fields=0, repeat=count))
            opened.append(next_id)
            next_id += 2 * count
        else:
            priority = draw(st.binary(min_size=5, max_size=5))
            specs.append(FrameSpec(2, 0, stream_id or next_id, priority))
    return specs


configs = st.sampled_from([
    H2Settings(),
    H2Settings(max_concurrent_streams=2, initial_window_size=100),
    H2Settings(max_concurrent_streams=1, initial_window_size=0, extended_connect=True),
    H2Settings(max_frame_size=2**24 - 1, initial_window_size=2**20),
])  # fmt: skip
# Two streams in three a client's, the third any frames at all.
streams = st.one_of(client_streams(), client_streams(),
                    st.lists(frame_specs(), min_size=1, max_size=30))  # fmt: skip
client_settings = st.dictionaries(
    st.sampled_from([1, 3, 4, 5]), st.sampled_from([0, 16384, 65535, 2**20]), max_size=2
)


@PROFILE
@given(configs, streams, client_settings)
def test_any_frames_keep_the_invariants_with_the_app_answering(
    config: H2Settings, specs: list[FrameSpec], peer: dict[int, int]
) -> None:
    run = H2Run(config, respond=True)
    run.feed(client_bytes(specs, peer))


@PROFILE
@given(configs, streams, st.lists(st.integers(1, 100_000), max_size=12))
def test_events_do_not_depend_on_how_the_bytes_are_split(
    config: H2Settings, specs: list[FrameSpec], cuts: list[int]
) -> None:
    data = client_bytes(specs)
    whole = H2Run(config)
    whole.feed(data)
    split = H2Run(config)
    for chunk in chunks_at(data, sorted({c % len(data) for c in cuts} - {0})):
        split.feed(chunk)
    compare_h2_runs(whole, split)


def test_a_request_and_an_error_are_seen() -> None:
    """The strategies reach what they are for: a valid stream is served, a bad one fails."""
    run = H2Run(respond=True)
    run.feed(client_bytes([FrameSpec(1, 0x05, 1, fields=0)]))
    assert run.error is None and run.events and run.events[0][1] == 1
    assert ("HEADERS", 1, False, True) in run.sent
    run = H2Run()
    run.feed(client_bytes([FrameSpec(1, 0x05, 2, fields=0)]))  # an even stream
    assert run.error == 1 and run.sent[-1][0] == "GOAWAY"
