"""The README's in-memory chat server. From this directory (it reads index.html from here):

    cd examples/chat && uvicorn app:chat_server

then open http://127.0.0.1:8000/ in two browser windows. One process only: the set of clients
lives in memory (see examples/broadcast_chat for chat across processes and hosts).
"""
clients = set()
with open('index.html', 'rb') as file:
    homepage = file.read()

async def chat_server(message, channels):
    """
    ASGI-style 'Hello, world' application.
    """
    if message['channel'] == 'websocket.connect':
        clients.add(channels['reply'])

    elif message['channel'] == 'websocket.receive':
        for client in clients:
            await client.send({'text': message['text']})

    elif message['channel'] == 'websocket.disconnect':
        clients.remove(channels['reply'])

    elif message['channel'] == 'http.request':
        await channels['reply'].send({
            'status': 200,
            'headers': [
                [b'content-type', b'text/html'],
            ],
            'content': homepage
        })
