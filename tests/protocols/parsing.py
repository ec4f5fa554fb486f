"""Helpers for the parser tests: feed bytes split in several ways, compare normalized events."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import cycle
from typing import Any

from uvicorn.protocols.http_parser import (
    END_OF_REQUEST,
    BadRequest,
    Body,
    Event,
    Preface,
    RequestHead,
    RequestParser,
    Upgrade,
)

HOST = [[b"host", b"example.com"]]

# Every request is fed whole, byte by byte and in odd chunk sizes; the events must not depend on
# how the bytes were split.
SPLITS = ("whole", "bytewise", "odd")


def split(data: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    chunks, sizes, i = [], cycle((3, 7, 1, 13, 2, 5)), 0
    while i < len(data):
        size = next(sizes)
        chunks.append(data[i : i + size])
        i += size
    return chunks


@dataclass
class Head:
    """The expected form of a ``RequestHead``."""

    method: str = "GET"
    raw_path: bytes = b"/"
    query_string: bytes = b""
    http_version: str = "1.1"
    headers: list[list[bytes]] = field(default_factory=lambda: [list(h) for h in HOST])
    keep_alive: bool = True
    expect_continue: bool = False
    upgrade: bytes | None = None


END = "END_OF_REQUEST"


def body(data: bytes) -> tuple[str, bytes]:
    return ("body", data)


def bad(status: int) -> tuple[str, int]:
    return ("bad", status)


def upgrade(data: bytes) -> tuple[str, bytes]:
    return ("upgrade", data)


def normalize(event: Event) -> Any:
    if isinstance(event, RequestHead):
        return Head(
            event.method,
            event.raw_path,
            event.query_string,
            event.http_version,
            event.headers,
            event.keep_alive,
            event.expect_continue,
            event.upgrade,
        )
    if isinstance(event, Body):
        assert event.data, "empty Body event"
        return body(event.data)
    if isinstance(event, BadRequest):
        return bad(event.status)
    if isinstance(event, Upgrade):
        return upgrade(event.data)
    if isinstance(event, Preface):
        return ("preface", event.data)
    assert event is END_OF_REQUEST
    return END


def _kind(event: Any) -> str | None:
    return event[0] if isinstance(event, tuple) else None


def feed(data: bytes, how: str, parser: RequestParser | None = None, **kw: Any) -> list[Any]:
    """Feed ``data`` split as ``how`` says; return the normalized events, Body events merged.

    After an Upgrade the parser takes nothing more: what follows goes to the new protocol, so
    it is added to the Upgrade's data here, as the caller would hand it over. After a
    BadRequest the parser must return nothing more."""
    parser = parser if parser is not None else RequestParser(**kw)
    events: list[Any] = []
    for chunk in split(data, how):
        done = bool(events) and _kind(events[-1]) in ("bad", "upgrade", "preface")
        got = [normalize(e) for e in parser.receive_data(chunk)]
        while parser.held:  # a long pipeline, parsed a batch at a time
            got += [normalize(e) for e in parser.receive_data(b"")]
        if done:
            assert got == [], f"events after {events[-1]}: {got}"
            if _kind(events[-1]) in ("upgrade", "preface"):
                events[-1] = (events[-1][0], events[-1][1] + chunk)
            continue
        for event in got:
            if _kind(event) == "body" and events and _kind(events[-1]) == "body":
                events[-1] = body(events[-1][1] + event[1])
            else:
                events.append(event)
    return events


def feed_all(data: bytes, **kw: Any) -> list[Any]:
    """The events for ``data``, after checking that every split gives the same ones."""
    results = {how: feed(data, how, **kw) for how in SPLITS}
    assert results["bytewise"] == results["whole"], "bytewise differs from whole"
    assert results["odd"] == results["whole"], "odd chunks differ from whole"
    return results["whole"]


def reason(data: bytes, **kw: Any) -> str:
    """The reason of the BadRequest that ends ``data`` fed whole."""
    events = RequestParser(**kw).receive_data(data)
    assert isinstance(events[-1], BadRequest), events
    return events[-1].reason
