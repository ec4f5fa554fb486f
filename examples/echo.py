"""The README's WebSocket echo: ``uvicorn examples.echo:echo``, then connect to ws://127.0.0.1:8000/."""


async def echo(message, channels):
    if message['channel'] == 'websocket.receive':
        text = message['text']
        await channels['reply'].send({
            'text': text
        })
