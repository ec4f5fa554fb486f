"""Property tests of WebSocketCore on streams Hypothesis builds: valid client messages (masked,
fragmented, compressed, with control frames between) are delivered exactly, however the bytes
are split; the app's messages reach the client intact; any bytes keep the invariants of
``invariants.py`` (only Message/Closed/Pong, nothing after Closed, bounded buffers, well-formed
server frames), which the fuzz harness (fuzz/fuzz_websocket.py) checks too."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocols.invariants import chunks_at
from tests.protocols.invariants_websocket import (
    RAW,
    WebSocketRun,
    WsOp,
    build_client_stream,
    compare_ws_runs,
)
from tests.protocols.invariants_websocket_frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    SENDABLE_CODES,
    TEXT,
    client_frame,
)
from uvicorn.protocols.websocket import Closed

settings.register_profile(
    "uvicorn-websocket",
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("uvicorn-websocket")

masks = st.binary(min_size=4, max_size=4)
texts = st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass"))


@st.composite
def valid_ops(draw: st.DrawFn) -> list[WsOp]:
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from([TEXT, TEXT, BINARY, BINARY, PING, PONG]))
        if kind in (TEXT, BINARY):
            payload = draw(texts) if kind == TEXT else draw(st.binary(max_size=300))
            if kind == TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:  # lone surrogates: not UTF-8
                    payload = b"?"
            ops.append(
                WsOp(
                    kind,
                    payload,
                    fragments=draw(st.integers(1, 4)),
                    compress=draw(st.booleans()),
                    mask=draw(masks),
                    long_length=draw(st.booleans()),
                )
            )
        else:
            ops.append(WsOp(kind, draw(st.binary(max_size=125)), mask=draw(masks)))
    if draw(st.booleans()):
        code = draw(st.none() | st.sampled_from([*sorted(SENDABLE_CODES)[:12], 3000, 4999]))
        reason = draw(st.text(max_size=10)).encode("utf-8", "replace")
        ops.append(WsOp(CLOSE, reason if code else b"", code=code, mask=draw(masks)))
    return ops


cut_lists = st.lists(st.integers(0, 5000), max_size=10)


@PROFILE
@given(valid_ops(), cut_lists, st.booleans())
def test_valid_messages_are_delivered_exactly(
    ops: list[WsOp], cuts: list[int], deflate: bool
) -> None:
    whole = WebSocketRun(deflate=deflate, offer_deflate=deflate)
    data, expected = build_client_stream(ops, whole.negotiated, whole.max_size)
    assert expected is not None
    whole.feed(data)
    split = WebSocketRun(deflate=deflate, offer_deflate=deflate)
    for chunk in chunks_at(data, cuts):
        split.feed(chunk)
    compare_ws_runs(whole, split)
    assert whole.events == expected
    # Every ping got its pong, with the same data, in order (RFC 6455 section 5.5.2).
    pings = [op.payload for op in ops if op.kind == PING]
    closes = [i for i, op in enumerate(ops) if op.kind == CLOSE]
    if closes:
        pings = [op.payload for op in ops[: closes[0]] if op.kind == PING]
    pongs = [f.payload for f in whole.reader.frames if f.opcode == PONG]
    assert pongs == pings
    if closes:
        close = ops[closes[0]]
        assert whole.reader.close == ((1005, "") if close.code is None else expected[-1][1:])
        assert whole.transport_closed  # the server closes TCP first (RFC 6455 section 7.1.1)


@PROFILE
@given(
    st.lists(st.tuples(st.sampled_from([TEXT, BINARY, PING]), st.binary(max_size=200)), max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_app_messages_reach_the_client_intact(
    sends: list[tuple[int, bytes]], deflate: bool, close: bool
) -> None:
    run = WebSocketRun(deflate=deflate, offer_deflate=deflate)
    for kind, payload in sends:
        run.app_send(kind, payload)
    if close:
        run.app_send(CLOSE, b"\x03\xe8")
        assert run.reader.close == (1000, "") and not run.transport_closed
        run.feed(client_frame(CLOSE, b"\x03\xe8"))
        assert run.events[-1] == ("closed", 1000, "") and run.transport_closed
    run.check_sent()


max_sizes = st.sampled_from([2**20, 1000, 125, 1])


@PROFILE
@given(st.binary(max_size=400), cut_lists, st.booleans(), max_sizes)
def test_any_bytes_keep_the_invariants(
    data: bytes, cuts: list[int], deflate: bool, max_size: int
) -> None:
    whole = WebSocketRun(max_size, deflate, deflate)
    whole.feed(data)
    split = WebSocketRun(max_size, deflate, deflate)
    for chunk in chunks_at(data, cuts):
        split.feed(chunk)
    compare_ws_runs(whole, split)
    whole.feed_eof()
    whole.connection_lost()


@st.composite
def any_ops(draw: st.DrawFn) -> list[WsOp]:
    """Frames that may break every rule: unmasked, reserved opcodes, long control frames,
    invalid UTF-8, bad close codes, raw bytes in between."""
    ops = draw(valid_ops())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(ops)))
        bad = draw(
            st.sampled_from(
                [
                    WsOp(TEXT, b"\xff\xfe"),
                    WsOp(TEXT, b"ok", mask=None),
                    WsOp(PING, b"x" * 126),
                    WsOp(CLOSE, code=1005),
                    WsOp(CLOSE, code=999),
                    WsOp(BINARY, b"y" * 1500, fragments=3),
                    WsOp(RAW, raw=client_frame(0x3, b"x")),
                    WsOp(RAW, raw=client_frame(0x0, b"x")),
                    WsOp(RAW, raw=client_frame(TEXT, b"x", rsv=0b010)),
                    WsOp(RAW, raw=client_frame(PING, b"x", fin=False)),
                    WsOp(RAW, raw=b"\x81\xff"),
                ]
            )
            | st.builds(WsOp, st.just(RAW), raw=st.binary(min_size=1, max_size=12))
        )
        ops.insert(at, bad)
    return ops


@PROFILE
@given(any_ops(), cut_lists, st.booleans(), max_sizes)
def test_invalid_frames_fail_the_connection_cleanly(
    ops: list[WsOp], cuts: list[int], deflate: bool, max_size: int
) -> None:
    whole = WebSocketRun(max_size, deflate, deflate)
    data, expected = build_client_stream(ops, whole.negotiated, max_size)
    whole.feed(data)
    split = WebSocketRun(max_size, deflate, deflate)
    for chunk in chunks_at(data, cuts):
        split.feed(chunk)
    compare_ws_runs(whole, split)
    if expected is not None:
        assert whole.events == expected
    whole.connection_lost()
    assert whole.events[-1][0] == "closed"


# Found by fuzzing (fuzz/fuzz_websocket.py): invalid UTF-8 was checked only once websockets had
# parsed the whole read, so a bad frame later in the same read decided the close code sent, and a
# ping after the bad message was still answered.


def test_the_app_is_told_the_close_code_that_was_sent() -> None:
    run = WebSocketRun()
    events = run.core.receive_data(client_frame(TEXT, b"\xff") + client_frame(0xC, b""))
    sent, _ = run.core.data_to_send()
    assert sent[2:4] == (1007).to_bytes(2, "big"), sent  # was: 1002, 'invalid opcode'
    assert [(e.code) for e in events if isinstance(e, Closed)] == [1007]


def test_nothing_is_answered_after_the_connection_failed() -> None:
    run = WebSocketRun()
    run.core.receive_data(client_frame(TEXT, b"\xff") + client_frame(PING, b"late"))
    sent, _ = run.core.data_to_send()
    assert sent.startswith(b"\x88"), sent  # was: a pong first, b"\x8a\x04late"
