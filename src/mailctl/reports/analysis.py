"""From the store and the config to per-domain summaries: the one call `show`, the
metrics and the console make.

DNS work per call: each declared domain's senders are resolved once (bounded,
cached per client), and reverse names of unknown sources come from the store's
cache (7 days) first, then at most `rdns_lookups` live PTR queries; sources
beyond that are shown by address alone.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from mailctl.reports.classify import DomainSummary, Verdict, classify, tls_verdicts
from mailctl.reports.networks import DomainSenders, resolve_senders, reverse_names
from mailctl.reports.settings import ReportsSettings
from mailctl.reports.store import ReportStore

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.dns.records import DomainDnsSpec

RDNS_MAX_AGE = 7 * 86400


def declared_specs(config: Config | None) -> dict[str, DomainDnsSpec]:
    from mailctl.dns.settings import spec_from_settings

    if config is None:
        return {}
    out = {}
    for name in config.desired.domains:
        block = config.file.domains[config.desired.raw_domain[name]]
        ptype = config.providers[block.provider].type_name
        out[name] = spec_from_settings(name, ptype, block.dns)
    return out


def summarize(store: ReportStore, config: Config | None, since: int,
              domains: list[str] | None = None, settings: ReportsSettings | None = None,
              resolve: bool = True) -> list[DomainSummary]:
    settings = settings or ReportsSettings()
    specs = declared_specs(config)
    names = domains if domains else store.domains(since)
    senders: dict[str, DomainSenders] = {}
    rows = {d: store.dmarc_rows(d, since) for d in names}
    if resolve and any(d in specs for d in names):
        senders = asyncio.run(_resolve([specs[d] for d in names if d in specs], settings))
    unknown_ips = sorted({r[1] for d in names for r in rows[d]
                          if d not in senders or senders[d].match(r[1]) is None})
    rdns = _rdns(store, unknown_ips, settings) if resolve else {}
    out = []
    for d in names:
        summary = classify(d, rows[d], senders.get(d) if d in specs else None, rdns)
        if d in specs and d not in senders:  # resolve=False: classified as undeclared
            summary.declared = True
        summary.reports = store.report_summary(d, since)
        summary.tls, tls_v = tls_verdicts(d, store.tls_rows(d, since))
        summary.verdicts.extend(tls_v)
        fails = store.failure_rows(d, since)
        summary.failures = sum(int(r[2]) for r in fails)
        if fails:
            summary.verdicts.append(Verdict(
                "info", "failures.received", f"{summary.failures:,} failure reports from "
                f"{len({r[0] for r in fails}):,} sources", "", "", "", summary.failures))
        out.append(summary)
    return out


async def _resolve(specs: list[DomainDnsSpec], settings: ReportsSettings
                   ) -> dict[str, DomainSenders]:
    from mailctl.dns.profiles import ProfileError
    from mailctl.dns.resolver import DnsClient

    client = DnsClient.create(settings.resolver, timeout=settings.dns_timeout, tries=1)
    out: dict[str, DomainSenders] = {}

    async def one(spec: DomainDnsSpec) -> None:
        try:
            out[spec.domain] = await resolve_senders(spec, client)
        except ProfileError as exc:
            out[spec.domain] = DomainSenders(spec.domain, [], None, [str(exc)])

    await asyncio.gather(*(one(s) for s in specs))
    return out


def _rdns(store: ReportStore, ips: list[str], settings: ReportsSettings) -> dict[str, str]:
    if not ips:
        return {}
    known = store.rdns_get(ips, RDNS_MAX_AGE)
    todo = [ip for ip in ips if ip not in known][:settings.rdns_lookups]
    if todo:
        from mailctl.dns.resolver import DnsClient

        client = DnsClient.create(settings.resolver, timeout=settings.dns_timeout, tries=1,
                                  concurrency=16)
        got = asyncio.run(reverse_names(client, todo))
        answered = {ip: name for ip, name in got.items() if name is not None}
        store.rdns_put(answered)
        known.update(answered)
    return known


def since_epoch(days: float, now: float | None = None) -> int:
    return int((now if now is not None else time.time()) - days * 86400)
