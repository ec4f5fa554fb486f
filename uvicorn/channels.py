"""Channel names (SPEC.md, "Channels"): unique across every process and host of a deployment.

A base module, so that the server (``worker/``) and the adapters (``adapters/``) name their
channels the same way without one importing the other.
"""

from __future__ import annotations

import itertools
import os
import secrets


class ChannelNames:
    """Names unique across processes and hosts: a per-process random prefix and a counter,
    e.g. ``reply!k3f9a2c1.17``. The prefix is drawn again in each forked child."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def new(self, kind: str) -> str:
        return f"{kind}!{self.prefix}.{next(self.counter)}"


channel_names = ChannelNames()
os.register_at_fork(after_in_child=channel_names.reseed)
