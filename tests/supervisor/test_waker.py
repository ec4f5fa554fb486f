"""The master's signal queue: nothing is ever dropped, each kind is counted."""

from __future__ import annotations

import signal

from uvicorn.supervisor.waker import Waker


def test_signals_are_counted_in_the_order_they_first_came_and_never_dropped() -> None:
    waker = Waker()
    waker.install([signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2])
    try:
        for _ in range(20):
            signal.raise_signal(signal.SIGTTIN)
        signal.raise_signal(signal.SIGUSR2)  # stands for a TERM among a flood of others
        for _ in range(20):
            signal.raise_signal(signal.SIGTTOU)
        assert waker.take_signals() == [
            (signal.SIGTTIN, 20),
            (signal.SIGUSR2, 1),
            (signal.SIGTTOU, 20),
        ]
        assert waker.take_signals() == []
        assert waker.wait(0) == []  # the wake-up pipe was written, and is drained
    finally:
        waker.close()
    assert signal.getsignal(signal.SIGTTIN) is signal.SIG_DFL
