"""Prometheus metrics for probe results (prometheus_client, own registry).

Labels are the route name and the failure stage only: never hosts, users or
server replies, so nothing a user typed as a secret can reach a scrape or a
Pushgateway. Every route's series exist from the first run on, with every
stage at 0, so alerts that compare (`== 1`) see a value rather than nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailctl.probe.engine import STAGES, ProbeResult

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

PREFIX = "mailctl_probe"
# Local delivery is milliseconds, a relay minutes; mail taking longer than
# the default 60 s timeout is a failure, not a bucket.
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ProbeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry or CollectorRegistry()
        r, p = self.registry, PREFIX
        self.success = Gauge(f"{p}_success", "1 if the last roundtrip reached the watched "
                             "mailbox, else 0", ["route"], registry=r)
        self.failed_stage = Gauge(f"{p}_failed_stage", "1 for the stage the last run failed "
                                  "at (spam: delivered into a spam folder), 0 for the others",
                                  ["route", "stage"], registry=r)
        self.failures = Counter(f"{p}_failures", "failed runs by stage", ["route", "stage"],
                                registry=r)
        self.smtp_code = Gauge(f"{p}_last_smtp_code", "SMTP reply code of the last send "
                               "failure (0: none)", ["route"], registry=r)
        self.send = Histogram(f"{p}_send_duration_seconds", "SMTP connect to message "
                              "accepted", ["route"], buckets=BUCKETS, registry=r)
        self.delivery = Histogram(f"{p}_delivery_duration_seconds", "message accepted to "
                                  "visible over IMAP", ["route"], buckets=BUCKETS, registry=r)
        self.roundtrip = Gauge(f"{p}_roundtrip_seconds", "last successful send-to-mailbox "
                               "time", ["route"], registry=r)
        self.last_success = Gauge(f"{p}_last_success_timestamp_seconds", "unix time of the "
                                  "last successful roundtrip", ["route"], registry=r)
        self.last_run = Gauge(f"{p}_last_run_timestamp_seconds", "unix time the last run "
                              "finished", ["route"], registry=r)
        self.leftovers = Gauge(f"{p}_leftover_messages", "probe messages of earlier runs "
                               "found in the watched folders", ["route"], registry=r)
        self.swept = Counter(f"{p}_swept_messages", "leftover probe messages deleted",
                             ["route"], registry=r)

    def prepare(self, routes: Iterable[str]) -> None:
        """Create each route's series before the first result arrives."""
        for route in routes:
            for st in STAGES:
                self.failed_stage.labels(route, st)
                self.failures.labels(route, st)
            for m in (self.success, self.smtp_code, self.leftovers, self.roundtrip):
                m.labels(route)
            self.swept.labels(route)
            self.send.labels(route)
            self.delivery.labels(route)

    def record(self, res: ProbeResult) -> None:
        route = res.route
        self.prepare([route])
        self.success.labels(route).set(1 if res.ok else 0)
        for st in STAGES:
            self.failed_stage.labels(route, st).set(1 if res.stage == st else 0)
        if res.stage:
            self.failures.labels(route, res.stage).inc()
        self.smtp_code.labels(route).set(res.smtp_code or 0)
        if res.send_seconds is not None:
            self.send.labels(route).observe(res.send_seconds)
        if res.delivery_seconds is not None:
            self.delivery.labels(route).observe(res.delivery_seconds)
        if res.ok and res.roundtrip_seconds is not None:
            self.roundtrip.labels(route).set(res.roundtrip_seconds)
            self.last_success.labels(route).set(res.started_at + res.total_seconds)
        self.leftovers.labels(route).set(res.leftovers)
        if res.swept:
            self.swept.labels(route).inc(res.swept)
        self.last_run.labels(route).set(time.time())

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
