"""A real WSGI app (Flask) for the ASGIAdapter tests, served by our CLI with --interface wsgi
and in-process through ASGIAdapter."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


@app.get("/hello")
def hello() -> str:
    return "Hello from Flask"


@app.route("/info", methods=["GET", "POST", "PUT"])
def info() -> Response:
    return jsonify(
        method=request.method,
        path=request.path,
        script_root=request.script_root,
        url=request.url,
        args=request.args.to_dict(flat=False),
        headers={name: value for name, value in request.headers.items()},
        cookies=request.cookies.to_dict(),
        remote_addr=request.remote_addr,
        form=request.form.to_dict(),
    )


@app.post("/upload")
def upload() -> Response:
    digest = hashlib.sha256()
    size = 0
    while chunk := request.stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest(), content_length=request.content_length)


@app.get("/stream")
def stream() -> Response:
    def generate() -> Iterator[str]:
        for i in range(5):
            yield f"chunk {i}\n"

    return Response(generate(), mimetype="text/plain")


@app.post("/duplex")
def duplex() -> Response:
    """Answers before the upload is over: 'ready', then what the client sends next."""

    def generate() -> Iterator[bytes]:
        yield b"ready\n"
        line = request.stream.readline()
        yield b"got " + line

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/cookies")
def cookies() -> Response:
    response = Response("cookies set")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    response.headers["X-Custom"] = "yes"
    return response


@app.get("/error")
def error() -> str:
    raise RuntimeError("flask view failed on purpose")


@app.get("/error-mid-stream")
def error_mid_stream() -> Response:
    def generate() -> Iterator[str]:
        yield "partial\n"
        raise RuntimeError("stream failed on purpose")

    return Response(generate(), mimetype="text/plain")


# Flask answers a failing view with its own 500; this app lets the exception reach the server.
propagating = Flask("propagating")
propagating.config["PROPAGATE_EXCEPTIONS"] = True


@propagating.get("/")
def propagated() -> str:
    raise RuntimeError("propagated on purpose")
