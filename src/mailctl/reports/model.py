"""One normalised model for every report format, so storage and classification never
care whether a report came as RFC 7489 XML, RFC 9990 (DMARCbis) XML or RFC 8460 JSON.

Plain slotted dataclasses: a 10,000-report import builds ~200,000 records, and
slots keep that flat in memory. Every parser either returns one of these or
raises `Rejected` with a reason a person can act on; nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Kind(StrEnum):
    DMARC = "dmarc"  # aggregate report (rua)
    TLSRPT = "tlsrpt"  # SMTP TLS report (RFC 8460)
    FAILURE = "failure"  # DMARC failure report (ruf, RFC 6591 / RFC 9991)


class Rejected(Exception):
    """A report that cannot be read. `code` is stable (it reaches JSON and metrics);
    `reason` says what is wrong and never quotes the report's content."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class NotAReport(Exception):
    """Mail in a report mailbox that is not a report at all: it is left alone."""


class AuthResult(NamedTuple):
    """One DKIM or SPF result from a record's auth_results. A tuple, not a frozen
    dataclass: a large import makes one per result, and a frozen dataclass's __init__
    (object.__setattr__ per field) measured 3x the cost."""

    domain: str
    result: str  # pass, fail, softfail, neutral, none, temperror, permerror, policy
    selector: str = ""  # DKIM only
    scope: str = ""  # SPF only: mfrom or helo

    def compact(self) -> str:
        extra = f" s={self.selector}" if self.selector else (f" {self.scope}" if self.scope else "")
        return f"d={self.domain}{extra} {self.result}"


@dataclass(slots=True)
class DmarcRecord:
    source_ip: str
    count: int
    disposition: str  # none, quarantine, reject (RFC 9990 adds pass)
    dkim: str  # policy_evaluated: aligned DKIM pass/fail
    spf: str  # policy_evaluated: aligned SPF pass/fail
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    dkim_results: tuple[AuthResult, ...] = ()
    spf_results: tuple[AuthResult, ...] = ()
    reasons: tuple[str, ...] = ()  # policy override reasons, "type" or "type: comment"

    @property
    def dmarc_pass(self) -> bool:
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(slots=True)
class DmarcReport:
    reporter: str  # org_name as sent (e.g. "google.com", "Outlook.com")
    email: str
    report_id: str
    begin: int  # unix time
    end: int
    domain: str  # policy_published domain
    policy: dict[str, str] = field(default_factory=dict)  # p, sp, np, adkim, aspf, pct, ...
    records: list[DmarcRecord] = field(default_factory=list)
    version: str = ""  # "1.0", "2.0" (dmarc-2.0 namespace) or "" (draft reports)
    notes: list[str] = field(default_factory=list)  # repaired deviations, reporter errors
    kind: Kind = Kind.DMARC

    @property
    def messages(self) -> int:
        return sum(r.count for r in self.records)


@dataclass(slots=True, frozen=True)
class TlsFailure:
    result_type: str  # e.g. certificate-expired, starttls-not-supported, sts-policy-fetch-error
    sessions: int
    sending_mta_ip: str = ""
    receiving_mx: str = ""  # receiving-mx-hostname
    receiving_ip: str = ""
    receiving_helo: str = ""
    reason_code: str = ""  # failure-reason-code (free text from the reporter)


@dataclass(slots=True)
class TlsPolicy:
    policy_type: str  # sts, tlsa, no-policy-found
    domain: str
    successful: int
    failed: int
    mx_patterns: tuple[str, ...] = ()
    failures: list[TlsFailure] = field(default_factory=list)


@dataclass(slots=True)
class TlsReport:
    reporter: str  # organization-name
    email: str  # contact-info
    report_id: str
    begin: int
    end: int
    policies: list[TlsPolicy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: Kind = Kind.TLSRPT

    @property
    def domain(self) -> str:
        return self.policies[0].domain if self.policies else ""


@dataclass(slots=True)
class FailureReport:
    """Only what classification needs: the sample message a failure report carries
    (other people's mail) is never kept."""

    reporter: str
    email: str
    report_id: str
    arrival: int
    domain: str  # Reported-Domain
    source_ip: str
    auth_failure: str  # dmarc, dkim, spf, ...
    delivery_result: str = ""
    header_from: str = ""
    envelope_from: str = ""
    dkim_domain: str = ""
    dkim_selector: str = ""
    notes: list[str] = field(default_factory=list)
    kind: Kind = Kind.FAILURE

    @property
    def begin(self) -> int:
        return self.arrival

    @property
    def end(self) -> int:
        return self.arrival


Report = DmarcReport | TlsReport | FailureReport
MAX_TIME = 2**31 - 1  # stored as 32-bit integers (PostgreSQL INTEGER)


def clean(value: object, limit: int) -> str:
    """Text from JSON or mail headers made storable: no NUL (PostgreSQL refuses it), no
    lone surrogates (neither database encodes them), at most `limit` characters."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if not text.isascii() or "\x00" in text:
        text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return text[:limit]


def unix_time(value: float, what: str) -> int:
    """A report time as stored; milliseconds (some reporters) are read as such."""
    t = int(value)
    if t > 100_000_000_000:
        t //= 1000
    if not 0 <= t <= MAX_TIME:
        raise Rejected("schema", f"{what} is not a plausible time")
    return t


def reporter_key(report: Report) -> str:
    """Who sent it, as the uniqueness key uses it: the organisation name as the
    reporter spells it, lower-cased (a reporter never changes it between resends),
    else its e-mail domain."""
    name = report.reporter.strip().lower()
    if not name and "@" in report.email:
        name = report.email.rsplit("@", 1)[1].strip().lower()
    return name[:255]
