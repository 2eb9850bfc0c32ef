"""DMARC aggregate reports: RFC 7489 appendix C and RFC 9990 (DMARCbis), one model.

Parsed with defusedxml (DTDs, entity declarations and external references are
refused, so billion-laughs and XXE documents are rejected before any expansion)
driving a small streaming target: no element tree is built, and only the fields
mailctl uses are kept. Namespaces are ignored by local name, so the dmarc-2.0
namespace of RFC 9990 (GMX, and others since 2026) and reporters' stray
xmlns:xsd declarations (Microsoft) read the same.

Known deviations of large reporters, each repaired and noted on the report:
- declared UTF-8 but written in Windows-1252 (0x91/0x92 quotes in org names);
- an unclosed `<xs:schema ...>` tag before `<feedback>` (IKEA, parsedmarc #18);
- whitespace or a byte-order mark before the XML declaration;
- a bare `&` in text (org names such as "AT&T"), an `<email>` written as
  `<user@host>` inside the element (unescaped angle brackets);
- upper-case result words (`Pass`), report ids in angle brackets, decimal
  timestamps (`1536105600.0`), `identities` for `identifiers` (the old draft),
  several `policy_published` blocks (the first counts), begin after end (swapped);
- no org_name (the contact e-mail's domain stands in), no envelope_from (the
  last SPF mfrom domain stands in), no header_from (the policy domain).
Yahoo's and AOL's wave of gzipped `unused` bodies (May 2023) is rejected with
that name, not as "invalid XML".
"""

from __future__ import annotations

import re

from mailctl.reports.model import (
    MAX_TIME,
    AuthResult,
    DmarcRecord,
    DmarcReport,
    Rejected,
    unix_time,
)
from mailctl.reports.unpack import DEFAULT_LIMITS, Limits

REFERENCES = (
    "https://www.rfc-editor.org/rfc/rfc7489#appendix-C",
    "https://www.rfc-editor.org/rfc/rfc9990",
)
NS_2 = "urn:ietf:params:xml:ns:dmarc-2.0"
_RESULTS = frozenset(("pass", "fail", "softfail", "neutral", "none", "temperror",
                      "permerror", "policy", "hardfail"))
_XS_SCHEMA = re.compile(rb"<xs:schema\b[^>]*>")
_BARE_AMP = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});)")
_DECL = re.compile(rb"^<\?xml[^>]*\?>")
_BRACKETED_EMAIL = re.compile(rb"<email>\s*<([^<>\s]+@[^<>\s]+)>\s*</email>")


def _local(tag: str) -> str:
    return tag[tag.rfind("}") + 1:] if tag[:1] == "{" else tag


class _Target:
    """ElementTree parser target that fills the model while the document streams by."""

    def __init__(self, max_records: int) -> None:
        self.path: list[str] = []
        self.text: list[str] = []
        self.ns = ""
        self.meta: dict[str, str] = {}
        self.policy: dict[str, str] = {}
        self.policies = 0
        self.records: list[dict[str, object]] = []
        self.rec: dict[str, object] | None = None
        self.auth: dict[str, str] | None = None
        self.reason: dict[str, str] | None = None
        self.skipped = 0
        self.max_records = max_records
        self.errors: list[str] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = _local(tag)
        path = self.path
        path.append(name)
        self.text = []
        depth = len(path)
        if depth == 1:
            if name == "schema":  # IKEA's unclosed <xs:schema> wraps the report
                raise _XmlError("an <xs:schema> element wraps the report")
            if name != "feedback":
                raise Rejected("not_dmarc", f"XML root is <{name[:40]}>, not <feedback>")
            self.ns = tag[1:tag.find("}")] if tag[:1] == "{" else ""
        elif depth == 2:
            if name == "record":
                if len(self.records) >= self.max_records:
                    raise Rejected("too_large", f"more than {self.max_records} records "
                                   "(limit reports.limits.max_records)")
                self.rec = {"dkim_r": [], "spf_r": [], "reasons": []}
            elif name == "policy_published":
                self.policies += 1
        elif self.rec is not None:
            if depth == 4 and path[2] == "auth_results" and name in ("dkim", "spf"):
                self.auth = {}
            elif depth == 5 and path[3] == "policy_evaluated" and name == "reason":
                self.reason = {}

    def data(self, text: str) -> None:
        self.text.append(text)

    def end(self, tag: str) -> None:
        path = self.path
        depth = len(path)
        name = path.pop()
        value = "".join(self.text).strip() if self.text else ""
        self.text = []
        if depth == 2:
            if name == "record" and self.rec is not None:
                self.records.append(self.rec)
                self.rec = None
            elif name == "version":
                self.meta["version"] = value
            return
        if depth < 3:
            return
        top = path[1]
        if top == "record":
            rec = self.rec
            if rec is None:
                return
            if depth == 5 and self.auth is not None:
                self.auth[name] = value
            elif depth == 4 and self.auth is not None and name in ("dkim", "spf"):
                rec["dkim_r" if name == "dkim" else "spf_r"].append(self.auth)  # type: ignore[attr-defined]
                self.auth = None
            elif depth == 6 and self.reason is not None:
                self.reason[name] = value
            elif depth == 5 and name == "reason" and self.reason is not None:
                rec["reasons"].append(self.reason)  # type: ignore[attr-defined]
                self.reason = None
            elif depth == 4:
                rec[name] = value  # row/*, identifiers/* (the keys do not collide)
            elif depth == 5 and path[3] == "policy_evaluated":
                rec["pe_" + name] = value
        elif top == "report_metadata":
            if depth == 3:
                if name == "error" and value:
                    self.errors.append(value[:200])
                else:
                    self.meta[name] = value
            elif depth == 4 and path[2] == "date_range":
                self.meta[name] = value
        elif top == "policy_published" and depth == 3 and self.policies == 1:
            self.policy[name] = value

    def close(self) -> None:
        return None


def _parse_xml(data: bytes, limits: Limits) -> _Target:
    from xml.parsers.expat import ExpatError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, XMLParser

    target = _Target(limits.max_records)
    parser = XMLParser(target=target, forbid_dtd=True)
    try:
        parser.feed(data)
        parser.close()
    except DefusedXmlException as exc:
        raise Rejected("xml_attack", f"refused: the XML {_defused_what(exc)} "
                       "(entity expansion and external references are attacks, "
                       "never part of a report)") from None
    except (ExpatError, ParseError) as exc:
        raise _XmlError(str(exc)) from None
    except (ValueError, LookupError) as exc:  # unsupported or unknown declared encoding
        raise Rejected("encoding", f"unreadable encoding ({exc})") from None
    except RecursionError:
        raise Rejected("malformed", "the XML nests too deeply") from None
    return target


class _XmlError(Exception):
    pass


def _defused_what(exc: Exception) -> str:
    name = type(exc).__name__
    return {"DTDForbidden": "declares a DTD", "EntitiesForbidden": "declares entities",
            "ExternalReferenceForbidden": "references an external resource"}.get(
        name, "uses a forbidden construct")


def _repairs(data: bytes) -> list[tuple[str, bytes]]:
    """Candidate repaired documents, each with the note that says what was repaired."""
    out: list[tuple[str, bytes]] = []
    body = data
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    if body[:1].isspace():
        body = body.lstrip()
        out.append(("whitespace before the XML declaration removed", body))
    if _XS_SCHEMA.search(body[:4096]):
        body = _XS_SCHEMA.sub(b"", body, count=1)
        out.append(("unclosed <xs:schema> tag removed", body))
    decl = _DECL.match(body)
    if decl and b"utf-8" not in decl.group(0).lower():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            body = _DECL.sub(b'<?xml version="1.0" encoding="UTF-8"?>', body, count=1)
            out.append(("declared a wrong encoding; the bytes are UTF-8", body))
    if _BRACKETED_EMAIL.search(body):
        body = _BRACKETED_EMAIL.sub(rb"<email>\1</email>", body)
        out.append(("<email> in angle brackets unwrapped", body))
    if _BARE_AMP.search(body):
        body = _BARE_AMP.sub(b"&amp;", body)
        out.append(("bare '&' escaped", body))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("cp1252", errors="replace")
        fixed = _DECL.sub(b'<?xml version="1.0" encoding="UTF-8"?>', text.encode("utf-8"))
        out.append(("not valid UTF-8: read as Windows-1252", fixed))
    return out


def parse_dmarc(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DmarcReport:
    """An aggregate report from its XML bytes, or `Rejected` with the reason."""
    if data.strip().lower() == b"unused":
        raise Rejected("unused", "the attachment holds only the word 'unused' "
                       "(a known Yahoo/AOL reporter bug, not a report)")
    notes: list[str] = []
    target: _Target | None = None
    try:
        target = _parse_xml(data, limits)
    except _XmlError as first:
        applied: list[str] = []
        for note, fixed in _repairs(data):
            applied.append(note)
            try:
                target = _parse_xml(fixed, limits)
            except _XmlError:
                continue
            notes.extend(applied)
            break
        if target is None:
            raise Rejected("malformed", f"not well-formed XML: {first}") from None
    assert target is not None
    return _build(target, notes)


def _word(value: object, default: str = "") -> str:
    s = str(value or "").strip().lower()
    return s if s else default


def _ts(value: str, what: str) -> int:
    try:
        return unix_time(float(value), f"date_range {what}")
    except (TypeError, ValueError, OverflowError):
        raise Rejected("schema", f"date_range {what} is not a unix time") from None


def _build(t: _Target, notes: list[str]) -> DmarcReport:
    m = t.meta
    org, email = m.get("org_name", ""), m.get("email", "")
    if not org and "@" in email:
        org = email.rsplit("@", 1)[1]
        notes.append("no org_name: the e-mail domain stands in")
    if not org:
        raise Rejected("schema", "report_metadata has neither org_name nor email")
    rid = m.get("report_id", "").strip().strip("<>").strip()
    if not rid:
        raise Rejected("schema", "report_metadata has no report_id")
    if "begin" not in m or "end" not in m:
        raise Rejected("schema", "report_metadata has no date_range")
    begin, end = _ts(m["begin"], "begin"), _ts(m["end"], "end")
    if begin > end:
        begin, end = end, begin
        notes.append("date_range begin after end: swapped")
    pol = t.policy
    domain = pol.get("domain", "").strip().lower().rstrip(".")[:253]
    if not domain:
        raise Rejected("schema", "policy_published has no domain")
    if t.policies > 1:
        notes.append(f"{t.policies} policy_published blocks: the first counts")
    policy = {k[:20]: _word(v)[:20] for k, v in pol.items() if k != "domain" and v}
    records: list[DmarcRecord] = []
    skipped = 0
    for r in t.records:
        rec = _record(r, domain)
        if rec is None:
            skipped += 1
        else:
            records.append(rec)
    if skipped:
        notes.append(f"{skipped} record(s) without source_ip or count skipped")
    version = m.get("version", "")
    if t.ns == NS_2:
        version = "2.0"
    notes.extend(f"reporter error: {e}" for e in t.errors)
    return DmarcReport(reporter=org.strip()[:255], email=email.strip()[:320],
                       report_id=rid[:255], begin=begin, end=end, domain=domain,
                       policy=policy, records=records, version=version, notes=notes)


def _auth(items: object, dkim: bool) -> tuple[AuthResult, ...]:
    out = []
    for a in items:  # type: ignore[attr-defined]
        d = a.get("domain", "").strip().lower().rstrip(".")
        res = _word(a.get("result"), "none")
        out.append(AuthResult(d, res if res in _RESULTS else res[:16],
                              selector=a.get("selector", "")[:63] if dkim else "",
                              scope="" if dkim else _word(a.get("scope"), "mfrom")))
    return tuple(out)


def _record(r: dict[str, object], domain: str) -> DmarcRecord | None:
    ip = str(r.get("source_ip") or "").strip()
    try:
        count = int(str(r.get("count") or "").strip())
    except ValueError:
        return None
    if not ip or not 0 <= count <= MAX_TIME:
        return None
    spf_r = _auth(r["spf_r"], False)
    env_from = _word(r.get("envelope_from"))
    if not env_from:
        mfrom = [a.domain for a in spf_r if a.scope == "mfrom" and a.domain]
        env_from = mfrom[-1] if mfrom else ""
    reasons = tuple(
        (f"{_word(x.get('type'))}: {x.get('comment', '')[:120]}" if x.get("comment")
         else _word(x.get("type")))
        for x in r["reasons"] if x.get("type")  # type: ignore[attr-defined]
    )
    return DmarcRecord(
        source_ip=ip[:45],
        count=count,
        disposition=_word(r.get("pe_disposition"), "none")[:16],
        dkim=_word(r.get("pe_dkim"), "fail")[:8],
        spf=_word(r.get("pe_spf"), "fail")[:8],
        header_from=_word(r.get("header_from"), domain)[:253],
        envelope_from=env_from[:253],
        envelope_to=_word(r.get("envelope_to"))[:253],
        dkim_results=_auth(r["dkim_r"], True),
        spf_results=spf_r,
        reasons=reasons,
    )
