"""Run every check for many domains concurrently; the entry point the CLI calls.

All domains share one answer cache and one concurrency limit: domains at the
same provider ask the same questions (its SPF include, its MX hosts), and a
hundred domains must not open a thousand sockets at once. Each domain still
counts the queries it actually sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from mailctl.dns.check_spf import check_spf
from mailctl.dns.context import Context, HttpsOptions
from mailctl.dns.dkim import check_dkim
from mailctl.dns.dmarc import check_dmarc
from mailctl.dns.dnssec import check_dnssec
from mailctl.dns.findings import DomainReport, Finding, Severity
from mailctl.dns.mtasts import check_mta_sts, check_tls_rpt
from mailctl.dns.mx import check_mx, check_other_records
from mailctl.dns.nameservers import check_nameservers
from mailctl.dns.profiles import ProfileError
from mailctl.dns.records import DomainDnsSpec, expected_records, load_profiles
from mailctl.dns.resolver import DnsClient, parse_server, system_resolvers


async def check_domain(spec: DomainDnsSpec, client: DnsClient,
                       https: HttpsOptions | None = None,
                       ns_port: int | None = 53) -> DomainReport:
    """All checks of one domain; `ns_port` None skips asking each nameserver directly."""
    report = DomainReport(spec.domain)
    started = time.perf_counter()
    try:
        provider, relays = load_profiles(spec)
        expected = expected_records(spec)
    except ProfileError as exc:
        report.add(Finding("profile.unknown", Severity.ERROR, spec.domain, str(exc),
                           fix="use one of the listed profiles or add a profile file"))
        return report
    ctx = Context(spec, client, provider, relays, expected, report, https or HttpsOptions())

    async def mx_then_sts() -> None:
        live_mx = await check_mx(ctx)
        await check_mta_sts(ctx, live_mx)

    checks = [mx_then_sts(), check_spf(ctx), check_dkim(ctx), check_dmarc(ctx),
              check_tls_rpt(ctx), check_other_records(ctx), check_dnssec(ctx)]
    if ns_port is not None:
        checks.append(check_nameservers(ctx, ns_port))
    await asyncio.gather(*checks)
    report.queries = client.sent
    report.seconds = time.perf_counter() - started
    return report


async def check_domains(
    specs: Sequence[DomainDnsSpec],
    resolver: str | None = None,
    *,
    timeout: float = 2.0,
    tries: int = 2,
    concurrency: int = 64,
    https: HttpsOptions | None = None,
    ns_check: bool = False,
    ns_port: int = 53,
) -> list[DomainReport]:
    """Check every domain; reports come back in the order of `specs`.

    `resolver` is `IP` or `IP:PORT` (None: the system's resolvers). Timeouts
    and SERVFAIL become findings of severity unknown, never "missing".
    `ns_check` also asks each authoritative nameserver directly (on `ns_port`,
    which only tests change) and compares their answers; it is opt-in because
    it adds a third or more to a domain's queries and time.
    """
    servers = [parse_server(resolver)] if resolver else system_resolvers()
    shared = DnsClient(servers=servers, timeout=timeout, tries=tries, concurrency=concurrency)
    shared._sem = asyncio.Semaphore(concurrency)

    def client() -> DnsClient:
        return DnsClient(servers=servers, timeout=timeout, tries=tries, concurrency=concurrency,
                         _cache=shared._cache, _sem=shared._sem)

    port = ns_port if ns_check else None
    return list(await asyncio.gather(*(check_domain(s, client(), https, port) for s in specs)))


def check_domains_sync(specs: Sequence[DomainDnsSpec], resolver: str | None = None,
                       **options: object) -> list[DomainReport]:
    """`check_domains` for callers without an event loop (the CLI)."""
    return asyncio.run(check_domains(specs, resolver, **options))  # type: ignore[arg-type]
