"""The one-command demo: ``python -m examples.chat_cluster`` starts a Redis server (none answers
on the port it is given), three instances of the README's chat, prints their addresses; a chat
spans them; Ctrl-C stops everything it started."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess

from tests.broadcast.clients import clients, receive, receive_until, spread
from tests.e2e.process import CLIProcess, free_port


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now."""
    for _ in range(100):
        first = random.randrange(20000, 60000)
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no free consecutive ports")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_the_demo_starts_redis_and_three_instances_and_ctrl_c_stops_them() -> None:
    redis_port, first = free_port(), free_ports(3)
    args = ("--redis-port", str(redis_port), "--first-port", str(first))
    with CLIProcess(*args, module="examples.chat_cluster") as demo:
        demo.wait_for_line(f"Started a Redis server on localhost:{redis_port}")
        ports = [first, first + 1, first + 2]
        for port in ports:
            demo.wait_for_line(rf"^    http://127\.0\.0\.1:{port}/$")  # the addresses it prints
            demo.wait_for_line(rf"Uvicorn running on http://127\.0\.0\.1:{port}")
        async with clients(spread(ports, 6)) as chat:
            for i, client in enumerate(chat):
                await client.send(f"hello {i}")
            expected = sorted(f"hello {i}" for i in range(6))
            for client in chat:
                assert sorted(await receive(client, 6)) == expected
            await chat[0].send("end")
            for client in chat:
                assert await receive_until(client, "end") == ["end"]
        demo.signal(signal.SIGINT)
        try:
            code = demo.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # say which of its processes held it up
            demo.kill()
            raise AssertionError(f"not stopped 20 s after Ctrl-C:\n{demo.output()}") from None
        assert code == 0
        output = demo.output()
    assert not re.search(r"Traceback|ERROR", output), output
    for port in (redis_port, *ports):  # it waited for everything it started
        assert refused(port), port
