"""File bodies on HTTP/1.1, sans I/O: the framing around body bytes that the worker sends from a
file itself (``os.sendfile``), never through ``Response.body()``.

``body_frame`` counts them as ``Response.body()`` counts the bytes it is given: against the
app's content-length (more, or fewer in the last piece, is the app's error: RuntimeError, and
the connection must close), as one chunk of a chunked body, or as part of a close-delimited one.
"""

from __future__ import annotations

from uvicorn.protocols.http_response import Response, ResponseState

_IDLE, _STREAMING, _DONE = ResponseState.IDLE, ResponseState.STREAMING, ResponseState.DONE


def body_frame(response: Response, count: int, more: bool) -> tuple[bytes, bytes] | None:
    """What goes on the wire before and after ``count`` body bytes sent by the caller, or None
    when the response has no body (HEAD, 204, 304: nothing of the file is sent). ``more``
    false ends the response with them."""
    state = response.state
    if state is not _STREAMING:
        if state is _IDLE:
            raise RuntimeError("response body sent before the response started")
        raise RuntimeError("response already completed: nothing more can be sent")
    if not more:
        response.state = _DONE
    if response._no_body:
        return None
    if response._remaining >= 0:
        remaining = response._remaining - count
        if remaining < 0 or (not more and remaining > 0):
            response.state = _DONE
            response.keep_alive = False
            raise RuntimeError(
                f"response body does not match its content-length: {response._remaining} "
                f"bytes were still owed, a file of {count} sent"
                + ("" if remaining < 0 else " in the last message")
            )
        response._remaining = remaining
        return b"", b""
    if response._chunked:
        if not count:
            return b"", b"" if more else b"0\r\n\r\n"
        return b"%x\r\n" % count, b"\r\n" if more else b"\r\n0\r\n\r\n"
    return b"", b""  # close-delimited (HTTP/1.0)
