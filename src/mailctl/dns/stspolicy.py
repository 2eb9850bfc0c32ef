"""The MTA-STS policy text (RFC 8461) and the TLS-RPT value (RFC 8460), as pure functions.

A leaf module: `records` needs the policy id to compute the `_mta-sts` TXT and
`mtasts` needs it to check the published one, so it lives below both and
imports nothing of mailctl at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailctl.dns.records import DomainDnsSpec

MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2


def render_policy(mode: str, mx: list[str], max_age: int) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {h}" for h in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def policy_id(policy: str) -> str:
    """24 hex digits of the policy's SHA-256 (line endings normalised)."""
    canon = "\n".join(line.strip() for line in policy.strip().splitlines())
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


def tls_rpt_value(spec: DomainDnsSpec) -> str:
    rua = spec.tls_rpt_rua or (f"postmaster@{spec.domain}",)
    uris = ",".join(a if ":" in a else f"mailto:{a}" for a in rua)
    return f"v=TLSRPTv1; rua={uris}"


@dataclass
class Policy:
    version: str | None = None
    mode: str | None = None
    max_age: int | None = None
    mx: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_policy(text: str) -> Policy:
    policy = Policy()
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            policy.errors.append(f"line {line!r} is not key: value")
        elif key == "version":
            policy.version = value
        elif key == "mode":
            policy.mode = value
        elif key == "mx":
            policy.mx.append(value.lower().rstrip("."))
        elif key == "max_age":
            policy.max_age = int(value) if value.isdigit() else None
            if policy.max_age is None:
                policy.errors.append(f"max_age {value!r} is not a number")
    if policy.version != "STSv1":
        policy.errors.append("version: STSv1 is missing")
    if policy.mode not in ("enforce", "testing", "none"):
        policy.errors.append(f"mode {policy.mode!r} is not enforce, testing or none")
    if policy.max_age is None and not any("max_age" in e for e in policy.errors):
        policy.errors.append("max_age is missing")
    if policy.mode != "none" and not policy.mx:
        policy.errors.append("no mx: lines")
    return policy
