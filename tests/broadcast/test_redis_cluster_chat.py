"""The chat across real server processes over a Redis Cluster (issue 14): the command line, two
instances, one with ``--workers 2``, ``$UVICORN_REDIS_URL=redis-cluster://:password@seed,seed``
(the session's cluster): rooms on every master, each message reaches exactly its room's clients,
once. Nothing the processes print shows the password."""

from __future__ import annotations

from tests.broadcast.clients import clients, receive, receive_until
from tests.broadcast.redis_setups import Cluster
from tests.broadcast.test_cluster import instances, ports
from tests.broadcast.test_redis_cluster import spread


async def test_rooms_on_every_master_across_two_instances_one_with_two_workers(
    redis_cluster: Cluster,
) -> None:
    rooms = list(spread(redis_cluster, 6, prefix="uvicorn.groups:"))  # the app's prefix
    url = redis_cluster.url()
    relay = "tests.broadcast.apps:relay"
    with (
        instances(relay, url, count=1) as one,
        instances(relay, url, "--workers", "2", count=1) as two,
    ):
        a, b = ports([*one, *two])
        # Three clients per room, one on the first instance and two on the second (on whichever
        # of its workers accepts them).
        room_of = [room for room in rooms for _ in range(3)]
        urls = [f"ws://127.0.0.1:{port}/{room}" for room in rooms for port in (a, b, b)]
        async with clients(urls) as chat:
            for i, client in enumerate(chat):
                await client.send(f"{room_of[i]} {i}")
            for i, client in enumerate(chat):
                room = room_of[i]
                expected = sorted(f"{room} {j}" for j in range(len(chat)) if room_of[j] == room)
                assert sorted(await receive(client, 3)) == expected
            for i in range(0, len(chat), 3):  # sent after the others: any duplicate comes first
                await chat[i].send(f"{room_of[i]} end")
            for i, client in enumerate(chat):
                end = f"{room_of[i]} end"
                assert await receive_until(client, end) == [end]
    for process in [*one, *two]:
        output = process.output()
        assert "Traceback" not in output and "ERROR" not in output, output
        assert "s3cr3t" not in output
