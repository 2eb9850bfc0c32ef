"""SIGTERM and Ctrl-C for the daemons (`fetch --daemon`, `reports watch`): finish the
batch in hand, then stop, and do not sleep through the signal.

A handler that only sets a flag leaves a daemon asleep in select() until its next
poll, which can be minutes; the wake-up fd makes a socket readable the moment a
signal arrives, so the wait ends at once.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Handler = Callable[[int, Any], None]


@contextmanager
def stop_signals(handler: Handler) -> Iterator[socket.socket | None]:
    """SIGTERM and SIGINT call `handler` inside the block; the socket it yields becomes
    readable when one arrives (None outside the main thread, which cannot take
    signals). The previous handlers and wake-up fd are restored after."""
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    try:
        old_fd: int | None = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        old_fd = None
    try:
        yield wake_r if old_fd is not None else None
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)
        wake_r.close()
        wake_w.close()
        for s, h in old.items():
            signal.signal(s, h)
