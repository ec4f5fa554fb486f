"""The README's ASGIAdapter: a plain WSGI app, served by uvicorn.

    uvicorn examples.asgi_adapter:asgi
    curl http://127.0.0.1:8000/uvicorn
    curl -d 'some data' http://127.0.0.1:8000/

(``uvicorn --interface wsgi examples.asgi_adapter:app`` serves the same app without the
wrapper.)
"""

from uvicorn.utils import ASGIAdapter


def app(environ, start_response):
    body = environ['wsgi.input'].read()
    if body:
        content = b'You sent: ' + body
    else:
        name = environ['PATH_INFO'].strip('/') or 'world'
        content = f'Hello, {name}, from WSGI'.encode('latin-1')
    start_response('200 OK', [
        ('Content-Type', 'text/plain'),
        ('Content-Length', str(len(content))),
    ])
    return [content]


asgi = ASGIAdapter(app)
