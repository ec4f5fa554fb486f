"""Fan-out benchmark (issue 14): N WebSocket members (--clients, default 1,000 and 10,000) in one
chat group, spread over 2 server instances x 2 workers (separate ports) on one Redis; a publisher
sends messages stamped with the send time; every member receives every message. Reports
deliveries per second, delivery latency (p50, p99, max), the servers' CPU per delivery and their
memory per idle member, in the same run, for

- ours: the README's broadcast chat (examples/broadcast_chat, unchanged) on this uvicorn, with
  its delivery guarantee (Redis Streams, replay after reconnects: the default); with --ours,
  a commit's package compiled by mypyc as ``pip install .`` builds it (--pure: not);
- broadcaster: the same chat with Starlette + ``broadcaster`` (benchmarks/broadcaster_chat.py);
- channels: the same chat with Django Channels + ``channels_redis`` (benchmarks/channels_chat.py,
  ``RedisPubSubChannelLayer`` unless --channels-layer core);

the peers on the published uvicorn, each from a venv of its own under /tmp (made on first use by
benchmarks/fanout_peers.py; never the project's .venv, whose ``uvicorn`` is this one). Redis is
the script's own, on free ports: ``single`` (one redis-server) and ``cluster`` (3 masters + 3
replicas; ours gets ``redis-cluster://`` and the six as seeds; the peers have no cluster client:
each of their instances uses one master, whose classic pub/sub reaches every node's subscribers).

    .venv/bin/python benchmarks/fanout.py --ours HEAD    # the full run; quick: --clients 200

Per server: the members connect (the workers' RSS is read before and after, idle), then a burst
(--burst messages back to back: throughput, and latency under load) and a paced phase (--rate
messages/s, by default 10,000 deliveries/s, for --seconds, at least 10 messages: latency at a
steady load). The members are a minimal WebSocket client in client processes: the client side
costs every server the same, and on a small machine a good part of the CPU, so the figures
compare the servers rather than measure any alone. Other processes' CPU is shown per phase.

As benchmarks/run.py does, the servers and their Redis run on the first half of the CPUs and the
client processes and the publisher on the other half (--no-pin: all of them share every CPU).
Unpinned, the clients' reading (about as much CPU per delivery as the fastest server's writing)
competes with the servers for the same cores, so a message's latency counts it twice, once in
each server's figure: a common share that narrows every ratio and moves with where the scheduler
happens to put the processes, run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import fanout_peers as peers
from fanout_client import client_process, connect
from fanout_report import CPU, SERVERS, percentile, report, settle, show, slowest

# The coordinator.


class Link(NamedTuple):
    """The coordinator's ends of a client process's two pipes."""

    commands: Connection
    results: Connection


def progress(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def publish_and_measure(
    port: int, pipes: list[Link], clients: int, pids: tuple[list[int], list[int], list[int]],
    args: Any,
) -> dict[str, Any]:
    """The phases, through a publisher on ``port``; ``pids``: the servers', Redis', the client
    processes'."""
    loop = asyncio.get_running_loop()
    publisher = await connect("127.0.0.1", port, lambda payload: None)  # a member too: it drains

    async def from_all(kind: str, timeout: float) -> list[Any]:
        replies: list[Any] = []
        deadline = loop.time() + timeout
        for pipe in pipes:
            while not pipe.results.poll(0):
                if loop.time() > deadline:
                    raise TimeoutError(kind)
                await asyncio.sleep(0.01)
            reply = pipe.results.recv()
            assert reply[0] == kind, reply
            replies.append(reply)
        return replies

    # Warm-up: until every member has received one (the peers subscribe after accepting).
    warm = asyncio.ensure_future(from_all("warm", 120))
    while not warm.done():
        publisher.send(b"w")
        await asyncio.sleep(0.1 if clients <= 1000 else 1)
    await warm
    progress("every member has joined")
    await settle(pids[0])  # the last warm-up messages delivered before measuring

    rate = args.rate or 10_000 / clients
    results: dict[str, Any] = {}
    phases = [("burst", args.burst, 0.0)]
    if rate > 0 and args.seconds > 0:
        phases.append(("paced", max(10, round(rate * args.seconds)), 1 / rate))
    for phase, messages, interval in phases:
        if publisher.transport is None or publisher.transport.is_closing():  # a server closed it
            progress("the publisher's connection was closed: connecting another")
            publisher = await connect("127.0.0.1", port, lambda payload: None)
        for pipe in pipes:
            pipe.commands.send(("expect", phase, messages))
        cpu = CPU(*pids)
        start = time.monotonic_ns()
        next_send = loop.time()
        for seq in range(messages):
            publisher.send(f"m {phase} {seq} {time.monotonic_ns()}".encode())
            if interval:
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - loop.time()))
            elif seq % 10 == 9:
                await asyncio.sleep(0)  # let the transport write
        progress(f"{phase}: {messages} messages sent")
        try:
            replies = await from_all("done", args.timeout)
        except TimeoutError:
            for pipe in pipes:
                pipe.commands.send(("report", phase))
            replies = await from_all("done", 60)
        used = cpu.stop()
        ordered = sorted(latency for reply in replies for latency in reply[2])
        end = max(reply[3] for reply in replies)
        delivered = len(ordered)
        results[phase] = {
            "messages": messages,
            "delivered": delivered,
            "expected": messages * clients,
            "per_second": delivered / ((end - start) / 1e9) if end > start else float("nan"),
            "p50": percentile(ordered, 0.50),
            "p99": percentile(ordered, 0.99),
            "max": percentile(ordered, 1.0),
            "slowest": slowest(replies),
            "server_us": 1e6 * used["servers"] / delivered if delivered else float("nan"),
            "client_us": 1e6 * used["clients"] / delivered if delivered else float("nan"),
            "redis_s": used["redis"],
            "others": used["others"],
        }
        await settle(pids[0])
    if publisher.transport is not None:
        publisher.transport.close()
    return results


def run_one(name: str, redis: peers.Redis, clients: int, args: Any) -> dict[str, Any]:
    ports = [peers.free_port() for _ in range(args.instances)]
    instances = []
    context = multiprocessing.get_context("fork")
    pipes: list[Link] = []
    processes = []
    try:
        for index, port in enumerate(ports):
            url = redis.url(name, index)
            instances.append(peers.start_instance(name, port, args.workers, args.backlog, url,
                                                  args.channels_layer, args.ours_tree))  # fmt: skip
        time.sleep(1)
        rss_before = peers.workers_rss([instance.pid for instance in instances])
        procs = args.client_procs or max(2, math.ceil(clients / 2500))
        shares = [clients // procs] * procs
        shares[0] += clients - sum(shares)
        for number, share in enumerate(shares):
            command_reader, command_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            process = context.Process(
                target=client_process,
                args=(ports, share, number, command_reader, result_writer, args.client_cpus),
            )
            process.start()
            pipes.append(Link(command_writer, result_reader))
            processes.append(process)
        progress(f"{name}: serving on ports {ports} (Redis {redis.url(name, 0)}); "
                 f"connecting {clients} members from {procs} processes")  # fmt: skip
        connect_start = time.monotonic()
        for pipe in pipes:
            if not pipe.results.poll(
                max(0.0, 60 + clients / 50 - (time.monotonic() - connect_start))
            ):
                raise SystemExit(f"{name}: the members did not connect in {60 + clients / 50} s")
            reply = pipe.results.recv()
            assert reply == ("connected",), reply
        connect_seconds = time.monotonic() - connect_start
        time.sleep(2)  # idle: the joins done, no message yet
        rss_after = peers.workers_rss([instance.pid for instance in instances])
        pids = ([instance.pid for instance in instances], [p.pid for p in redis.processes],
                [process.pid for process in processes if process.pid is not None])
        with on_cpus(args.client_cpus):  # the publisher is a client
            result = asyncio.run(publish_and_measure(ports[0], pipes, clients, pids, args))
        per_member = (rss_after - rss_before) / clients
        result["memory"] = {"per_member": per_member, "connect_seconds": connect_seconds}
        return result
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.commands.send(("exit",))
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
        for instance in instances:
            peers.stop(instance)


def split_cpus(cpus: set[int]) -> tuple[set[int] | None, set[int] | None]:
    """The servers' and Redis' CPUs (the first half), the clients' (the rest); (None, None) on
    one CPU."""
    ordered = sorted(cpus)
    if len(ordered) < 2:
        return None, None
    return set(ordered[: len(ordered) // 2]), set(ordered[len(ordered) // 2 :])


@contextlib.contextmanager
def on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """This process on ``cpus`` (None: where it was) for the block; what it starts inherits it."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def csv(kind: Any) -> Any:
    return lambda text: [kind(item) for item in text.split(",") if item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=csv(int), default=[1000, 10000], help="e.g. 1000,10000")
    parser.add_argument("--redis", type=csv(str), default=["single", "cluster"])
    parser.add_argument("--servers", type=csv(str), default=SERVERS)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="per instance")
    parser.add_argument("--backlog", type=int, default=4096, help="every server's listen backlog")
    parser.add_argument("--client-procs", type=int, default=0, help="0: 1 per 2,500 members, >= 2")
    parser.add_argument("--burst", type=int, default=100, help="messages sent back to back")
    parser.add_argument("--rate", type=float, default=0, help="paced messages/s; 0: 10,000/clients")
    parser.add_argument("--seconds", type=float, default=5, help="how long the paced phase lasts")
    parser.add_argument("--timeout", type=float, default=300, help="per phase, in seconds")
    parser.add_argument("--channels-layer", choices=["pubsub", "core"], default="pubsub")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="servers, Redis and clients share every CPU (default: the servers"
                        " and Redis on the first half of the CPUs, the clients on the rest)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers; medians")
    parser.add_argument("--ours", metavar="COMMIT", help="serve ours from this commit's uvicorn/")
    parser.add_argument(
        "--pure", action="store_true", help="the commit's package pure (default: compiled)"
    )
    args = parser.parse_args()
    unknown = set(args.servers) - set(SERVERS) or set(args.redis) - {"single", "cluster"}
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is it?
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what it started (finally:)
    peers.raise_open_files_limit(max(args.clients) + 1024)
    for name in args.servers:
        if name != "ours":
            peers.peer_python(name)
    args.ours_tree, args.ours_label = peers.ours_tree(args.ours, compiled=not args.pure)

    args.cpus = split_cpus(os.sched_getaffinity(0)) if args.pin else (None, None)
    server_cpus, args.client_cpus = args.cpus
    if args.pin and server_cpus is None:
        progress("one CPU: nothing is pinned")

    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    with on_cpus(server_cpus):  # Redis and the servers inherit it
        run_all(args, runs)
    report(runs, args)


def run_all(args: Any, runs: dict[tuple[str, int, str], list[dict[str, Any]]]) -> None:
    for kind in args.redis:
        redis = peers.Redis(kind)
        try:
            for clients in args.clients:
                for number in range(1, args.rounds + 1):
                    for name in args.servers:  # alternated: a busy moment favours none
                        result = run_one(name, redis, clients, args)
                        runs.setdefault((kind, clients, name), []).append(result)
                        show(f"{kind}, {clients} members, round {number}: {name}", result)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
