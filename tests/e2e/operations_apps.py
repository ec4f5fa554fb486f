"""Apps the operations tests (tests/e2e/test_operations.py) serve through the command line."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qsl


async def environment(message: dict[str, Any], channels: dict[str, Any]) -> None:
    """Answers with the worker's pid and the environment variables named in the query."""
    names = [name for name, _ in parse_qsl(message["query_string"].decode(), True)]
    values = {name: os.environ.get(name) for name in names}
    text = json.dumps({"pid": os.getpid(), "values": values})
    await channels["reply"].send({"status": 200, "content": text.encode()})
