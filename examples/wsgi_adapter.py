"""The README's WSGIAdapter: a messaging-interface app, served by any WSGI server.

    gunicorn examples.wsgi_adapter:wsgi
    python -m examples.wsgi_adapter          (wsgiref, on 127.0.0.1:8000)
    curl -d 'some data' http://127.0.0.1:8000/
"""

from uvicorn.utils import WSGIAdapter


async def app(message, channels):
    body = message.get('body', b'')
    if 'body' in channels:
        while True:
            chunk = await channels['body'].receive()
            body += chunk['content']
            if not chunk.get('more_content', False):
                break
    await channels['reply'].send({
        'status': 200,
        'headers': [
            [b'content-type', b'text/plain'],
        ],
        'content': b'You sent: ',
        'more_content': True
    })
    await channels['reply'].send({
        'content': body or b'nothing',
        'more_content': False
    })


wsgi = WSGIAdapter(app)


if __name__ == '__main__':
    from wsgiref.simple_server import make_server

    make_server('127.0.0.1', 8000, wsgi).serve_forever()
