"""Prometheus metrics of the reports store, computed at scrape time (cached).

Labels are domain, source class, sender name (a profile name; every unknown
source is `unknown`, never its address, so cardinality stays bounded), the
aligned SPF and DKIM results, and for TLS the MX and result type. Values are
message counts over the last `reports.window_days` days of reports, so an
alert clears by itself once fixed mail replaces the failing reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from mailctl.reports.classify import DomainSummary

PREFIX = "mailctl_reports"


class ReportsCollector:
    """A prometheus_client collector; `summaries()` is the expensive call (DNS, SQL), made
    at most once per `refresh` seconds and never twice at once."""

    def __init__(self, summaries: Callable[[], tuple[list[DomainSummary], list[tuple[str, int]]]],
                 window_days: int, refresh: float = 300.0) -> None:
        self._summaries = summaries
        self.window = window_days
        self.refresh = refresh
        self._lock = threading.Lock()
        self._at = 0.0
        self._cached: tuple[list[DomainSummary], list[tuple[str, int]]] = ([], [])
        self.fetch: dict[tuple[str, str], tuple[bool, float]] = {}  # (mailbox, folder)
        self.errors = 0

    def invalidate(self) -> None:
        self._at = 0.0

    def _get(self) -> tuple[list[DomainSummary], list[tuple[str, int]]]:
        with self._lock:
            if time.monotonic() - self._at > self.refresh:
                try:
                    self._cached = self._summaries()
                except Exception:  # a broken store must not break the scrape of the rest
                    self.errors += 1
                self._at = time.monotonic()
            return self._cached

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        summaries, rejected = self._get()
        msgs = GaugeMetricFamily(f"{PREFIX}_messages", "messages in DMARC aggregate reports "
                                 "of the window, by source and aligned results",
                                 labels=["domain", "source_class", "source", "spf", "dkim"])
        tls = GaugeMetricFamily(f"{PREFIX}_tls_sessions", "TLS sessions in SMTP TLS reports "
                                "of the window (result: success or the failure type)",
                                labels=["domain", "mx", "result"])
        last = GaugeMetricFamily(f"{PREFIX}_last_report_timestamp_seconds", "end of the "
                                 "newest report window", labels=["domain", "kind"])
        rej = GaugeMetricFamily(f"{PREFIX}_rejected", "inputs rejected in the window, by "
                                "reason code", labels=["code"])
        for s in summaries:
            totals: dict[tuple[str, str, str, str], int] = {}
            for src in s.sources:
                name = src.name if src.cls != "unknown" else "unknown"
                for (spf, dkim), n in src.results.items():
                    key = (src.cls, name, spf, dkim)
                    totals[key] = totals.get(key, 0) + n
            for (cls, name, spf, dkim), n in sorted(totals.items()):
                msgs.add_metric([s.domain, cls, name, spf, dkim], n)
            for e in s.tls:
                tls.add_metric([s.domain, e["mx"], e["result"]], e["sessions"])
            for kind, info in s.reports.items():
                last.add_metric([s.domain, kind], info["end"])
        for code, n in rejected:
            rej.add_metric([code], n)
        yield msgs
        yield tls
        yield last
        yield rej
        win = GaugeMetricFamily(f"{PREFIX}_window_seconds", "the span the gauges cover")
        win.add_metric([], self.window * 86400)
        yield win
        ok = GaugeMetricFamily(f"{PREFIX}_fetch_success", "1 if the last pass over the "
                               "folder worked", labels=["mailbox", "folder"])
        at = GaugeMetricFamily(f"{PREFIX}_fetch_last_success_timestamp_seconds",
                               "unix time of the last successful pass",
                               labels=["mailbox", "folder"])
        for (mb, folder), (good, when) in sorted(self.fetch.items()):
            ok.add_metric([mb, folder], 1 if good else 0)
            if when:
                at.add_metric([mb, folder], when)
        yield ok
        yield at
        errs = GaugeMetricFamily(f"{PREFIX}_collect_errors", "scrapes whose store read failed")
        errs.add_metric([], self.errors)
        yield errs
