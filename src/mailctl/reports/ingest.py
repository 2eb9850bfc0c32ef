"""Bytes in, reports out: files (.xml, .xml.gz, .zip, .json(.gz)), mails and mboxes.

Every input ends as exactly one of three outcomes, never an exception:
reports (possibly several: a mail may carry one per attachment), a rejection
with a reason (the input looks like a report but cannot be read: it must stay
where it is and be marked), or "not a report" (other mail in a report mailbox,
left alone). Whether a mail that fails to parse counts as a broken report or
as unrelated mail is decided by how it presents itself: a report-shaped
subject, TLS-Report-Domain header, `report-type=` or an attachment named
`reporter!domain!begin!end`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from mailctl.reports.dmarc import parse_dmarc
from mailctl.reports.model import NotAReport, Rejected, Report
from mailctl.reports.tlsrpt import parse_tlsrpt
from mailctl.reports.unpack import DEFAULT_LIMITS, Limits, sniff, unpack

REPORT_TYPES = frozenset((
    "application/gzip", "application/x-gzip", "application/zip", "application/x-zip",
    "application/x-zip-compressed", "application/xml", "text/xml", "application/json",
    "application/tlsrpt+gzip", "application/tlsrpt+json", "application/octet-stream",
))
REPORT_SUFFIXES = (".xml", ".gz", ".zip", ".json", ".xml.gz", ".json.gz")
_SUBJECT = re.compile(r"report[ -]?domain:|report-id:|submitter:", re.I)
_FILENAME = re.compile(r"^[^!/\\]+![^!/\\]+!\d+!\d+")


@dataclass
class Outcome:
    """What one mail or file held."""

    reports: list[Report] = field(default_factory=list)
    rejections: list[Rejected] = field(default_factory=list)
    not_report: str = ""  # why it is not a report (then nothing else is set)

    @property
    def status(self) -> str:
        if self.reports:
            return "report"
        return "rejected" if self.rejections else "not_report"

    def reason(self) -> str:
        return "; ".join(r.reason for r in self.rejections) or self.not_report


def read_document(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Report:
    """One uncompressed report: aggregate XML or TLS JSON."""
    kind = sniff(data)
    if kind == "xml":
        return parse_dmarc(data, limits)
    if kind == "json":
        return parse_tlsrpt(data)
    if data.strip().lower() == b"unused":
        return parse_dmarc(data, limits)  # rejected with Yahoo's name for it
    if not data.strip():
        raise Rejected("empty", "the report is empty")
    raise Rejected("format", "neither XML nor JSON (nor gzip/zip of them)")


def read_payload(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[Report]:
    """A report attachment or file: decompressed (bounded), then parsed."""
    if len(data) > limits.max_message:
        raise Rejected("too_large", f"{len(data) >> 20} MiB exceeds the "
                       f"{limits.max_message >> 20} MiB limit (reports.limits.max_message)")
    return [read_document(doc, limits) for _, doc in unpack(name, data, limits)]


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except (TypeError, ValueError, LookupError):
        return ""
    return str(name)[:200] if not isinstance(name, tuple) else str(name[2])[:200]


def _reportish(msg: Message) -> bool:
    if msg.get("TLS-Report-Domain") or msg.get("TLS-Report-Submitter"):
        return True
    if str(msg.get_param("report-type", "") or "").lower() in ("tlsrpt", "feedback-report"):
        return True
    return bool(_SUBJECT.search(str(msg.get("Subject", ""))[:300]))


def read_message(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Outcome:
    """One mail as a report mailbox receives it."""
    if len(raw) > limits.max_message:
        return Outcome(rejections=[Rejected(
            "too_large", f"the mail is {len(raw) >> 20} MiB, over the "
            f"{limits.max_message >> 20} MiB limit (reports.limits.max_message)")])
    from email import policy
    from email.parser import BytesParser

    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    except (ValueError, LookupError, TypeError, IndexError) as exc:
        return Outcome(rejections=[Rejected("malformed", f"unreadable mail ({exc})")])
    reportish = _reportish(msg)
    out = Outcome()
    feedback: bytes | None = None
    sample_from = ""
    seen = 0
    named = False
    for part in msg.walk():
        seen += 1
        if seen > limits.max_parts:
            out.rejections.append(Rejected("too_large", f"more than {limits.max_parts} MIME "
                                           "parts (limit reports.limits.max_parts)"))
            break
        ctype = part.get_content_type().lower()
        if ctype == "message/feedback-report":
            feedback = _feedback(part)
            continue
        if ctype in ("message/rfc822", "text/rfc822-headers") and feedback is not None:
            sample_from = _sample_from(part)
            continue
        if part.is_multipart():
            continue
        name = _filename(part)
        if _FILENAME.match(name):
            named = True
        wanted = ctype in REPORT_TYPES or name.lower().endswith(REPORT_SUFFIXES)
        if not wanted or (ctype == "application/octet-stream" and not name and part is not msg
                          and not reportish):
            continue
        data = _payload(part)
        if data is None:
            continue
        if sniff(data) not in ("gzip", "zip", "xml", "json") and data.strip() != b"unused":
            if name or part is msg:
                out.rejections.append(Rejected("format", f"attachment {name[:80]!r} is not "
                                               "XML, JSON, gzip or zip"))
            continue
        try:
            out.reports.extend(read_payload(name or "report", data, limits))
        except Rejected as exc:
            out.rejections.append(exc)
    if feedback is not None:
        from mailctl.reports.failure import parse_failure

        try:
            out.reports.append(parse_failure(msg, feedback, sample_from))
        except Rejected as exc:
            out.rejections.append(exc)
    if out.reports:
        return out
    if not (reportish or named or feedback is not None) and all(
            r.code in ("not_dmarc", "not_tlsrpt", "format") for r in out.rejections):
        return Outcome(not_report="no DMARC or TLS report in this mail")
    if not out.rejections:
        out.rejections.append(Rejected("no_report", "looks like a report mail but carries "
                                       "no report attachment"))
    return out


def _payload(part: Message) -> bytes | None:
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError):
        return None
    return data if isinstance(data, bytes) else None


def _feedback(part: Message) -> bytes | None:
    """The feedback fields: the parser makes a message/* part a nested message."""
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
            import base64
            import binascii

            try:  # the parser took the base64 text for headers: decode what it read
                return base64.b64decode(b"".join(inner[0].as_bytes().split()))
            except (binascii.Error, ValueError):
                return None
        return "".join(f"{k}: {v}\n" for k, v in inner[0].items()).encode("utf-8", "replace")
    return _payload(part) or (inner.encode("utf-8", "replace") if isinstance(inner, str)
                              else None)


def _sample_from(part: Message) -> str:
    from email.parser import BytesHeaderParser

    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return str(inner[0].get("From", ""))
    data = _payload(part) or b""
    return str(BytesHeaderParser().parsebytes(data[:65536]).get("From", ""))


def split_mbox(data: bytes) -> list[bytes]:
    """The mails of an mbox (`From ` separated; `>From ` unquoted)."""
    msgs: list[bytes] = []
    cur: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From ") and (cur or not msgs):
            if cur:
                msgs.append(b"".join(cur))
            cur = []
            continue
        if line.startswith(b">From "):
            line = line[1:]
        cur.append(line)
    if cur:
        msgs.append(b"".join(cur))
    return msgs


def read_file(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[Outcome]:
    """A file given to `reports import`: one outcome per mail it holds (one for a plain
    report file, which is never "not a report": a file named on the command line is
    meant to be one)."""
    kind = sniff(data)
    if kind == "mbox":
        return [read_message(m, limits) for m in split_mbox(data)]
    lower = name.lower()
    if kind == "mail" or lower.endswith((".eml", ".msg")):
        return [read_message(data, limits)]
    try:
        return [Outcome(reports=read_payload(name, data, limits))]
    except Rejected as exc:
        return [Outcome(rejections=[exc])]
    except NotAReport as exc:  # pragma: no cover - parsers raise Rejected for files
        return [Outcome(rejections=[Rejected("format", str(exc))])]
