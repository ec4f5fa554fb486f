"""Start the command line the way systemd's socket activation does: a listening socket as
descriptor 3, ``LISTEN_FDS=1`` and ``LISTEN_PID`` naming the process, which then execs
``python -m uvicorn ARGS`` (same pid)."""

import os
import socket
import sys

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "uvicorn", *sys.argv[1:]])
