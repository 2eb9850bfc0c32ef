"""DMARC failure reports (RFC 6591 ARF with RFC 9991's fields): who failed, from where.

A failure report carries a copy (or the headers) of someone's message. Only the
machine fields of the `message/feedback-report` part are kept, plus the domain
of the sample's From header; the sample itself is never stored or logged.
"""

from __future__ import annotations

import email.utils
import hashlib
from email.message import Message

from mailctl.reports.model import FailureReport, Rejected, clean, unix_time

REFERENCES = ("https://www.rfc-editor.org/rfc/rfc6591", "https://www.rfc-editor.org/rfc/rfc9991")


def _domain(addr: str) -> str:
    _, parsed = email.utils.parseaddr(addr)
    return clean(parsed.rpartition("@")[2].lower().rstrip(">"), 253)


def parse_failure(msg: Message, feedback: bytes, sample_from: str) -> FailureReport:
    """From the mail that carries it (for reporter and id) and its feedback part."""
    from email.parser import BytesHeaderParser

    fields = BytesHeaderParser().parsebytes(feedback.lstrip())
    ftype = str(fields.get("Feedback-Type", "")).strip().lower()
    if ftype != "auth-failure":
        raise Rejected("not_failure", f"feedback type {ftype[:32]!r} is not auth-failure")
    ip = str(fields.get("Source-IP", "")).strip()
    if not ip:
        raise Rejected("schema", "the failure report has no Source-IP")
    domain = str(fields.get("Reported-Domain", "")).strip().lower().rstrip(".")
    if not domain:
        domain = _domain(sample_from)
    if not domain:
        raise Rejected("schema", "the failure report names no Reported-Domain")
    arrival = 0
    raw_date = fields.get("Arrival-Date") or msg.get("Date")
    if raw_date:
        try:
            arrival = unix_time(email.utils.parsedate_to_datetime(str(raw_date)).timestamp(),
                                "Arrival-Date")
        except (TypeError, ValueError, IndexError, OverflowError, Rejected):
            arrival = 0
    if not arrival:
        raise Rejected("schema", "the failure report has no readable Arrival-Date or Date")
    sender = str(msg.get("From", ""))
    reporter = _domain(sender) or str(fields.get("Reporting-MTA", "")).split(";")[-1].strip()
    rid = str(msg.get("Message-ID", "")).strip().strip("<>")
    if not rid:
        rid = "sha256:" + hashlib.sha256(feedback).hexdigest()[:40]
    return FailureReport(
        reporter=clean(reporter, 255) or "unknown",
        email=clean(email.utils.parseaddr(sender)[1], 320),
        report_id=clean(rid, 255), arrival=arrival, domain=clean(domain, 253),
        source_ip=clean(ip, 45),
        auth_failure=clean(str(fields.get("Auth-Failure", "")).lower(), 32) or "dmarc",
        delivery_result=clean(str(fields.get("Delivery-Result", "")).lower(), 32),
        header_from=_domain(sample_from),
        envelope_from=_domain(str(fields.get("Original-Mail-From", ""))),
        dkim_domain=clean(str(fields.get("DKIM-Domain", "")).lower(), 253),
        dkim_selector=clean(str(fields.get("DKIM-Selector", "")), 63),
    )
