"""`mailctl probe serve`: probe on an interval, serve the results at /metrics.

Probes run in the main thread and the HTTP server in a daemon thread, so a
slow roundtrip (up to its timeout) never blocks a scrape; a scrape sees the
last completed run. Runs start on a fixed schedule, not interval-after-end,
so `for:` durations in the alert rules map to a known number of runs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from mailctl.probe.engine import ProbeResult, run_route
from mailctl.probe.metrics import ProbeMetrics
from mailctl.probe.resolve import Plan

log = logging.getLogger("mailctl.probe")


def make_server(host: str, port: int, metrics: ProbeMetrics) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                body, ctype, code = metrics.render(), CONTENT_TYPE_LATEST, 200
            elif path in ("/", "/-/healthy"):
                body = b"mailctl probe: metrics at /metrics\n"
                ctype, code = "text/plain; charset=utf-8", 200
            else:
                body, ctype, code = b"not found\n", "text/plain; charset=utf-8", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every 15 s would drown the probe's own log lines

    server = ThreadingHTTPServer((host or "0.0.0.0", port), Handler)
    server.daemon_threads = True
    return server


def serve(plan: Plan, host: str, port: int, interval: float,
          on_result: Callable[[ProbeResult], None] | None = None,
          on_ready: Callable[[int], None] | None = None) -> None:
    """Until SIGTERM/SIGINT: run every route each `interval` seconds."""
    metrics = ProbeMetrics()
    metrics.prepare(r.name for r in plan.routes)
    server = make_server(host, port, metrics)
    threading.Thread(target=server.serve_forever, name="probe-http", daemon=True).start()
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    if on_ready:
        on_ready(server.server_address[1])
    try:
        next_run = time.monotonic()
        while not stop.is_set():
            for route in plan.routes:
                res = run_route(route, plan.settings.sweep_after)
                metrics.record(res)
                log.info("route %s: %s", res.route, res.summary())
                if on_result:
                    on_result(res)
                if stop.is_set():
                    break
            next_run += interval
            now = time.monotonic()
            if next_run < now:  # a run overran the interval: skip, do not pile up
                next_run = now + interval - (now - next_run) % interval
            stop.wait(next_run - now)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        server.shutdown()
        server.server_close()
