"""A peer of benchmarks/fanout.py: the same chat (every text a client sends goes to every client)
written with Django Channels and ``channels_redis``, settings configured here (no project), to be
served by the published uvicorn from a virtual environment of its own (never the project's):

    cd benchmarks && /tmp/uvicorn-bench-channels/bin/uvicorn channels_chat:application --workers 2

Redis at ``$REDIS_URL`` (default redis://localhost:6379). ``$CHANNELS_LAYER`` picks the layer:
``pubsub`` (the default: ``RedisPubSubChannelLayer``, one PUBLISH per group message, which each
process hands to its local members) or ``core`` (``RedisChannelLayer``: a group is a sorted set of
channel names, and each group message is queued in a list per receiving process).
"""

from __future__ import annotations

import os

import django
from django.conf import settings

LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": LAYERS[os.environ.get("CHANNELS_LAYER", "pubsub")],
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://localhost:6379")]},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402 (after setup)
from channels.routing import ProtocolTypeRouter  # noqa: E402

GROUP = "chat"


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.channel_layer.group_send(GROUP, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": ChatConsumer.as_asgi()})
