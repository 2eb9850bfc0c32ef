"""SMTP TLS reports (RFC 8460): JSON, one model.

Deviations seen from large reporters, accepted and noted:
- Microsoft omits `sending-mta-ip` (and often everything but result-type and
  the count) in failure-details;
- Mail.ru sends `failure-reason-code` without a receiving MX, and pretty-printed
  JSON with its keys in any order;
- `mx-host` (RFC 8460) appears as `mx-host-pattern` in some reports, as a
  string instead of a list in others;
- counts as strings ("3").
A report without organization-name, report-id, date-range or policies is
rejected: it cannot be stored once or placed in time.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from mailctl.reports.model import (
    MAX_TIME,
    Rejected,
    TlsFailure,
    TlsPolicy,
    TlsReport,
    clean,
    unix_time,
)

REFERENCES = ("https://www.rfc-editor.org/rfc/rfc8460#section-4",)
POLICY_TYPES = frozenset(("sts", "tlsa", "no-policy-found"))


def _when(value: Any, what: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return unix_time(value, f"date-range {what}")
        except (ValueError, OverflowError):
            raise Rejected("schema", f"date-range {what} is not a time") from None
    try:
        t = dt.datetime.fromisoformat(str(value).strip().replace("z", "Z")[:64])
    except ValueError:
        raise Rejected("schema", f"date-range {what} is not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return unix_time(t.timestamp(), f"date-range {what}")


def _count(value: Any, what: str) -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_TIME:
        raise Rejected("schema", f"{what} is not a count")
    return n


def _str(value: Any, limit: int = 253) -> str:
    return clean(value, limit)


def parse_tlsrpt(data: bytes) -> TlsReport:
    """A TLS report from its JSON bytes, or `Rejected` with the reason."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise Rejected("encoding", "the JSON is not UTF-8 (RFC 8259 requires it)") from None
    except RecursionError:
        raise Rejected("malformed", "the JSON nests too deeply") from None
    except ValueError as exc:
        raise Rejected("malformed", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected("not_tlsrpt", "the JSON is not an object")
    notes: list[str] = []
    org = _str(doc.get("organization-name"), 255)
    rid = _str(doc.get("report-id"), 255).strip("<>")
    rng = doc.get("date-range")
    policies = doc.get("policies")
    if not isinstance(policies, list):
        raise Rejected("not_tlsrpt", "no policies list: not an SMTP TLS report")
    if not org:
        raise Rejected("schema", "no organization-name")
    if not rid:
        raise Rejected("schema", "no report-id")
    if not isinstance(rng, dict):
        raise Rejected("schema", "no date-range")
    begin = _when(rng.get("start-datetime"), "start-datetime")
    end = _when(rng.get("end-datetime"), "end-datetime")
    out = TlsReport(reporter=org, email=_str(doc.get("contact-info"), 320), report_id=rid,
                    begin=min(begin, end), end=max(begin, end), notes=notes)
    for i, p in enumerate(policies):
        out.policies.append(_policy(p, i, notes))
    return out


def _policy(p: Any, i: int, notes: list[str]) -> TlsPolicy:
    if not isinstance(p, dict) or not isinstance(p.get("policy"), dict):
        raise Rejected("schema", f"policies[{i}] has no policy object")
    pol, summary = p["policy"], p.get("summary")
    ptype = _str(pol.get("policy-type"), 32).lower()
    if ptype not in POLICY_TYPES:
        raise Rejected("schema", f"policies[{i}]: unknown policy-type")
    domain = _str(pol.get("policy-domain")).lower().rstrip(".")
    if not domain:
        raise Rejected("schema", f"policies[{i}] has no policy-domain")
    if not isinstance(summary, dict):
        raise Rejected("schema", f"policies[{i}] has no summary")
    mx = pol.get("mx-host", pol.get("mx-host-pattern", []))
    if isinstance(mx, str):
        mx = [mx]
    patterns = tuple(_str(x).lower() for x in mx if isinstance(x, str)) if isinstance(
        mx, list) else ()
    out = TlsPolicy(ptype, domain,
                    _count(summary.get("total-successful-session-count", 0),
                           f"policies[{i}] total-successful-session-count"),
                    _count(summary.get("total-failure-session-count", 0),
                           f"policies[{i}] total-failure-session-count"),
                    patterns)
    details = p.get("failure-details") or []
    if not isinstance(details, list):
        raise Rejected("schema", f"policies[{i}] failure-details is not a list")
    for j, d in enumerate(details):
        if not isinstance(d, dict) or not _str(d.get("result-type")):
            raise Rejected("schema", f"policies[{i}] failure-details[{j}] has no result-type")
        if "sending-mta-ip" not in d and "no sending-mta-ip" not in notes:
            notes.append("no sending-mta-ip")
        out.failures.append(TlsFailure(
            result_type=_str(d["result-type"], 64).lower(),
            sessions=_count(d.get("failed-session-count", 0),
                            f"policies[{i}] failure-details[{j}] failed-session-count"),
            sending_mta_ip=_str(d.get("sending-mta-ip"), 45),
            receiving_mx=_str(d.get("receiving-mx-hostname")).lower().rstrip("."),
            receiving_ip=_str(d.get("receiving-ip"), 45),
            receiving_helo=_str(d.get("receiving-mx-helo")),
            reason_code=_str(d.get("failure-reason-code"), 200),
        ))
    return out
