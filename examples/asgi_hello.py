"""An ASGI 3 app on the same server: ``uvicorn examples.asgi_hello:app``.

Any ASGI 3 framework (Starlette, FastAPI, ...) runs the same way; this one also speaks the
lifespan protocol, keeping its start time in the lifespan state that each request sees.
"""
import time


async def app(scope, receive, send):
    if scope['type'] == 'lifespan':
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                scope['state']['started'] = time.time()
                await send({'type': 'lifespan.startup.complete'})
            elif message['type'] == 'lifespan.shutdown':
                await send({'type': 'lifespan.shutdown.complete'})
                return
    assert scope['type'] == 'http'
    uptime = time.time() - scope['state']['started']
    body = f"Hello from ASGI 3: {scope['method']} {scope['path']}, up {uptime:.0f}s\n".encode()
    await send({
        'type': 'http.response.start',
        'status': 200,
        'headers': [(b'content-type', b'text/plain; charset=utf-8')],
    })
    await send({'type': 'http.response.body', 'body': body})
