"""A chat that spans three server instances, in one command (from the repository's root):

    python -m examples.chat_cluster

It uses the Redis server on localhost:6379, or starts one if none answers there, then starts the
README's broadcast chat (examples/broadcast_chat) on ports 8000, 8001 and 8002 and prints their
addresses: open each in its own browser window and chat across them. Ctrl-C stops everything it
started. ``--redis-port``, ``--first-port`` and ``--instances`` change the defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "broadcast_chat"


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int) -> subprocess.Popen[bytes]:
    if shutil.which("redis-server") is None:
        sys.exit(
            f"No Redis on localhost:{port} and no redis-server to start: "
            "apt-get install redis-server"
        )
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not redis_answers(port):  # a demo script: a short poll until Redis is up
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--first-port", type=int, default=8000)
    parser.add_argument("--redis-port", type=int, default=6379)
    args = parser.parse_args()
    redis_port = args.redis_port  # 6379: where the README's example looks by default
    # The instances use the Redis checked or started here, whatever $UVICORN_REDIS_URL says.
    env = dict(os.environ, UVICORN_REDIS_URL=f"redis://127.0.0.1:{redis_port}")

    started: list[subprocess.Popen[bytes]] = []
    try:
        if redis_answers(redis_port):
            print(f"Using the Redis server on localhost:{redis_port}")
        else:
            started.append(start_redis(redis_port))
            print(f"Started a Redis server on localhost:{redis_port}")
        ports = range(args.first_port, args.first_port + args.instances)
        for port in ports:
            command = [sys.executable, "-m", "uvicorn", "app:chat_server",
                       "--bind", f"127.0.0.1:{port}", "--no-access-log"]  # fmt: skip
            started.append(subprocess.Popen(command, cwd=HERE, env=env))
        print("Chat instances (open each in its own window; Ctrl-C stops them all):")
        for port in ports:
            print(f"    http://127.0.0.1:{port}/", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Checked every second rather than in signal.pause(): a signal that lands between the
        # check and the pause would leave it waiting for the next one.
        while all(process.poll() is None for process in started):
            time.sleep(1)
        print("A process stopped: stopping the others")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
