"""The Redis URL forms (``uvicorn.broadcast_urls``): what each names, what is printed of it (never
a password), and the backend ``BroadcastMiddleware`` makes of it, from ``url=`` or
``$UVICORN_REDIS_URL``."""

from __future__ import annotations

from typing import Any

import pytest

from uvicorn.broadcast import BroadcastMiddleware, make_backend
from uvicorn.broadcast_cluster import ClusterBackend, _NodeReader
from uvicorn.broadcast_redis import RedisBackend
from uvicorn.broadcast_sentinel import SentinelBackend
from uvicorn.broadcast_urls import parse

SECRET = "s3cr3t:p@ss/w0rd"
QUOTED = "s3cr3t%3Ap%40ss%2Fw0rd"


def test_one_server() -> None:
    where = parse(f"rediss://user:{QUOTED}@db.example:6380/2?ssl_cert_reqs=none")
    assert where.kind == "redis" and where.tls
    assert where.address == "rediss://db.example:6380/2"
    assert set(where.secrets) == {SECRET, QUOTED}


def test_cluster_seeds_and_their_node_urls() -> None:
    where = parse(f"rediss-cluster://:{QUOTED}@10.0.0.1:7000,10.0.0.2,[::1]:7002?ssl_ca_certs=/ca")
    assert where.kind == "cluster" and where.tls
    assert where.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert where.address == "rediss-cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002"
    assert where.node_url("::1", 7002) == f"rediss://:{QUOTED}@[::1]:7002/0?ssl_ca_certs=/ca"
    assert parse("redis-cluster://h:1").node_url("h2", 2) == "redis://h2:2/0"


def test_sentinels_and_the_master_name() -> None:
    where = parse(f"redis-sentinel://:{QUOTED}@s1:26380,s2/3#mymaster")
    assert where.kind == "sentinel" and not where.tls
    assert where.nodes == (("s1", 26380), ("s2", 26379))
    assert where.service == "mymaster"
    assert where.address == "redis-sentinel://s1:26380,s2/3#mymaster"
    assert where.node_url("m", 6379) == f"redis://:{QUOTED}@m:6379/3"
    assert parse("rediss-sentinel://s1/0?ssl_ca_certs=/ca#m").tls


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (f"redis-sentinel://:{QUOTED}@s1,s2/0", "needs the master's name after '#'"),
        (f"redis-cluster://:{QUOTED}@h1:7000/1", "only database 0"),
        (f"redis-cluster://:{QUOTED}@h1:port", "invalid host 'h1:port'"),
        (f"redis-sentinel://:{QUOTED}@s1/db#m", "invalid database 'db'"),
    ],
)
def test_errors_name_the_url_without_its_password(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as info:
        parse(url)
    assert SECRET not in str(info.value) and QUOTED not in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_scrub_hides_the_password_in_any_form() -> None:
    where = parse(f"redis-cluster://:{QUOTED}@h:1?password=other")
    text = f"Error connecting with {SECRET} / {QUOTED} / other"
    assert where.scrub(text) == "Error connecting with *** / *** / ***"


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("redis://127.0.0.1:1", RedisBackend),
        ("rediss://:pw@127.0.0.1:1", RedisBackend),
        ("redis-cluster://127.0.0.1:1,127.0.0.1:2", ClusterBackend),
        ("rediss-cluster://:pw@127.0.0.1:1", ClusterBackend),
        ("redis-sentinel://127.0.0.1:1/0#mymaster", SentinelBackend),
        ("rediss-sentinel://:pw@127.0.0.1:1/0#mymaster", SentinelBackend),
    ],
)
async def test_the_environment_chooses_the_backend(
    monkeypatch: pytest.MonkeyPatch, url: str, backend: type
) -> None:
    # A deployment changes no app code: the app says nothing about Redis.
    monkeypatch.setenv("UVICORN_REDIS_URL", url)
    app = BroadcastMiddleware(lambda message, channels: None)
    assert isinstance(app.groups.backend, backend)
    await app.close()  # nothing was connected: nothing to wait for


def test_a_malformed_url_fails_when_the_middleware_is_made() -> None:
    with pytest.raises(ValueError, match="needs the master's name"):
        BroadcastMiddleware(lambda message, channels: None, url="redis-sentinel://s1/0")


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1", "redis-sentinel://127.0.0.1:1/0#m", "redis-cluster://h:1"]
)
async def test_reading_connections_wait_in_redis_without_a_socket_timeout(url: str) -> None:
    # redis-py 6 and later time a socket out after 5 s unless told otherwise: an XREAD BLOCK
    # of 5 s that found nothing would end in a TimeoutError, taken for an outage, logged, and
    # reconnected, every 5 s of quiet. The reads are bounded by Reader.blocking instead.
    backend = make_backend(url, "t:", 10)
    if isinstance(backend, ClusterBackend):
        reader: Any = _NodeReader(backend, "127.0.0.1:1")
    else:
        assert isinstance(backend, RedisBackend)
        reader = backend._reader
    options = reader.client.connection_pool.connection_kwargs
    assert options["socket_timeout"] is None and options["socket_keepalive"]
    await reader.client.aclose()
    await backend.close()
