"""`mailctl reports serve`: fetch (IDLE or poll) and serve /metrics until stopped.

The HTTP server (prometheus_client's) runs in a daemon thread and the fetch
loop in the main thread, as `probe serve` does, on its own port (:9426 by
default, next to the probe's :9425) so both can run on one host and be
scraped as two jobs. Gauges are computed from the store at scrape time,
cached for five minutes, and refreshed after a pass that stored something.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailctl.reports.fetch import FolderResult
from mailctl.reports.metrics import ReportsCollector

if TYPE_CHECKING:
    from mailctl.reports.watch import Runner


def serve(collector: ReportsCollector, host: str, port: int, runner: Runner | None,
          on_ready: Callable[[int], None] | None = None) -> bool:
    """Until SIGTERM/SIGINT; returns whether the last fetch pass had errors."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
    if on_ready is not None:
        on_ready(int(server.server_address[1]))
    try:
        if runner is None:
            stop = threading.Event()
            old = {s: signal.signal(s, lambda *_: stop.set())
                   for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                while not stop.wait(3600):
                    pass
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
            return False
        from mailctl.reports.watch import run

        return run(runner, once=False)
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(Exception):
            thread.join(timeout=5)


def fetch_recorder(collector: ReportsCollector, emit: Callable[[FolderResult], None]
                   ) -> Callable[[FolderResult], None]:
    """An `emit` that also feeds the fetch gauges and refreshes the report gauges."""

    def record(res: FolderResult) -> None:
        ok = not res.errors
        key = (res.mailbox, res.folder or "*")
        prev = collector.fetch.get(key, (False, 0.0))
        collector.fetch[key] = (ok, time.time() if ok else prev[1])
        if res.stored:
            collector.invalidate()
        emit(res)

    return record
