"""Group messages over a Redis master that Sentinels watch (``redis-sentinel://...#master``).

The same streams and the same reading as one Redis server (``broadcast_redis``), on connections
that redis-py's Sentinel pool makes: each new connection asks the Sentinels where the master is
now. So following a failover is reconnecting: the reader's connection fails (the master died, or
was demoted: redis-py turns its READONLY into a connection error), it drops its connections, and
after its back-off the next one asks the Sentinels again, and reads on from the last id seen on
the promoted replica. A send that fails on a connection to the old master is tried once more on
a new one, which goes to wherever the Sentinels say.
"""

from __future__ import annotations

from typing import Any

from uvicorn.broadcast_redis import RedisBackend
from uvicorn.broadcast_streams import EXPIRE
from uvicorn.broadcast_urls import RedisURL

# Asking a Sentinel that does not answer must not hold up a reconnect for long.
SENTINEL_TIMEOUT = 1.0


class SentinelBackend(RedisBackend):
    behind_from_start = False  # a promoted replica may lack the last entries read

    def __init__(
        self, where: RedisURL, prefix: str, history: int, expire: float | None = EXPIRE
    ) -> None:
        from redis.asyncio.connection import parse_url
        from redis.asyncio.sentinel import Sentinel

        host, port = where.nodes[0]
        # The data nodes' options: credentials, database and TLS options from the URL (the
        # Sentinels say where the master is); over TLS, the Sentinel pool's own SSL class.
        options: dict[str, Any] = dict(parse_url(where.node_url(host, port)))
        for name in ("host", "port", "connection_class"):
            options.pop(name, None)
        tls = {name: value for name, value in options.items() if name.startswith("ssl_")}
        if where.tls:
            options["ssl"] = tls["ssl"] = True
        self._sentinel = Sentinel(
            list(where.nodes),
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT, "retry": None,
                             "socket_connect_timeout": SENTINEL_TIMEOUT, **tls},
            **options,
        )  # fmt: skip
        super().__init__(where, prefix, history, expire)

    def _connect(self, **options: Any) -> Any:
        return self._sentinel.master_for(self.where.service, retry=None, socket_connect_timeout=2,
                                         **options)  # fmt: skip

    async def close(self) -> None:
        await super().close()
        for sentinel in self._sentinel.sentinels:
            await sentinel.aclose()
