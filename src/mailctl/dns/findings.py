"""What a check reports: findings a user can act on, and a per-domain verdict.

A finding always says what was found, what was expected and how to fix it,
because "SPF invalid" alone sends users to a search engine. `UNKNOWN` exists so
that a resolver failure can never be mistaken for a missing record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"  # mail is or will be rejected, lost or spoofable
    WARNING = "warning"  # works today, weaker than it should be, or drifting
    INFO = "info"  # worth knowing, nothing to fix
    UNKNOWN = "unknown"  # the resolver could not tell (SERVFAIL, timeout, refused)


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.INFO: 3}
# which severities make a domain "problems" for each --fail-on level
_FAILING = {
    Severity.ERROR: {Severity.ERROR},
    Severity.WARNING: {Severity.ERROR, Severity.WARNING},
}


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # stable, dotted: "spf.stale_relay"; scripts match on it
    severity: Severity
    name: str  # the DNS name the finding is about
    message: str
    found: str | None = None
    expected: str | None = None
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class Status(StrEnum):
    OK = "ok"
    PROBLEMS = "problems"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        return {Status.OK: 0, Status.PROBLEMS: 1, Status.UNKNOWN: 3}[self]


@dataclass(slots=True)
class DomainReport:
    domain: str
    findings: list[Finding] = field(default_factory=list)
    queries: int = 0  # DNS queries this domain cost (after de-duplication)
    seconds: float = 0.0

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    @property
    def status(self) -> Status:
        return self.status_for(Severity.WARNING)

    def status_for(self, fail_on: Severity) -> Status:
        """The verdict when findings of `fail_on` or worse count as problems.

        Problems outrank unknowns: a known error is worth acting on even if
        another lookup failed; only when nothing wrong was seen does "could not
        tell" decide. With `fail_on=ERROR`, warnings (e.g. `p=none` during a
        DMARC rollout) are shown but do not fail a script."""
        severities = {f.severity for f in self.findings}
        if severities & _FAILING[fail_on]:
            return Status.PROBLEMS
        if Severity.UNKNOWN in severities:
            return Status.UNKNOWN
        return Status.OK

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (_RANK[f.severity], f.code, f.name))

    def to_dict(self, fail_on: Severity = Severity.WARNING) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "status": self.status_for(fail_on).value,
            "queries": self.queries,
            "seconds": round(self.seconds, 4),
            "findings": [f.to_dict() for f in self.sorted_findings()],
        }


def overall_exit_code(reports: list[DomainReport], fail_on: Severity = Severity.WARNING) -> int:
    """0 all good, 1 problems (findings of `fail_on` or worse), 3 could not tell."""
    statuses = {r.status_for(fail_on) for r in reports}
    if Status.PROBLEMS in statuses:
        return 1
    if Status.UNKNOWN in statuses:
        return 3
    return 0
