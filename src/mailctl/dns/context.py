"""State shared by the checks of one domain.

One object instead of long argument lists: every check needs the spec, the
profiles, the expected records, the DNS client and the report to add to.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from mailctl.dns.findings import DomainReport, Finding, Severity
from mailctl.dns.profiles import Profile
from mailctl.dns.records import DomainDnsSpec, Record
from mailctl.dns.resolver import Answer, DnsClient


@dataclass
class HttpsOptions:
    """How MTA-STS policies are fetched; tests point this at a local server."""

    ssl_context: ssl.SSLContext | None = None  # None: system CA store
    port: int = 443
    timeout: float = 5.0


@dataclass
class Context:
    spec: DomainDnsSpec
    client: DnsClient
    provider: Profile
    relays: list[Profile]
    expected: list[Record]
    report: DomainReport
    https: HttpsOptions

    @property
    def domain(self) -> str:
        return self.spec.domain

    def add(self, code: str, severity: Severity, name: str, message: str, *,
            found: str | None = None, expected: str | None = None,
            fix: str | None = None) -> None:
        self.report.add(Finding(code, severity, name, message, found, expected, fix))

    def unknown(self, code: str, answer: Answer) -> None:
        """Record that `answer` could not tell; never turned into "missing"."""
        self.add(code, Severity.UNKNOWN, answer.qname,
                 f"could not tell: {answer.describe()}",
                 fix="retry later or with another --resolver; this is not a missing record")

    def expected_of(self, purpose: str) -> list[Record]:
        return [r for r in self.expected if r.purpose == purpose]
