"""The README's clock: ``uvicorn examples.tick:tick``. Each WebSocket client gets the time
once a second.

The task ends when its client leaves: ``send()`` then raises ``uvicorn.ClientDisconnected``.
"""
import datetime
import asyncio


async def send_times(channel):
    while True:
        text = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
        await channel.send({'text': text})
        await asyncio.sleep(1)


async def tick(message, channels):
    if message['channel'] == 'websocket.connect':
        loop = asyncio.get_event_loop()
        loop.create_task(send_times(channels['reply']))
