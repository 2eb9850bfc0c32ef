"""DMARC aggregate reports: RFC 7489 appendix C and RFC 9990 (DMARCbis), one model.

The document is decoded and screened in xmlsafe.py (any DTD is refused there
by defusedxml, so billion-laughs and XXE documents never reach a parser that
would expand them), then parsed by the C ElementTree parser; large documents
stream with each record dropped once read. Namespaces are followed from the
root, so the dmarc-2.0 namespace of RFC 9990 (GMX, and others since 2026) and
reporters' stray xmlns:xsd declarations (Microsoft) read the same.

Known deviations of large reporters, each repaired and noted on the report:
- declared UTF-8 but written in Windows-1252 (0x91/0x92 quotes in org names),
  declared UTF-16 but written in UTF-8;
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
from typing import Any

from mailctl.reports.model import (
    MAX_TIME,
    AuthResult,
    DmarcRecord,
    DmarcReport,
    Rejected,
    unix_time,
)
from mailctl.reports.unpack import DEFAULT_LIMITS, Limits
from mailctl.reports.xmlsafe import (
    XML_ERRORS,
    as_utf8,
    decode,
    parse_events,
    screen,
    screen_bytes,
)

Element = Any  # an lxml element (typed loosely: the walk only reads tag, text, children)


class _Malformed(Exception):
    """Not well-formed in a way a repair may fix."""

REFERENCES = (
    "https://www.rfc-editor.org/rfc/rfc7489#appendix-C",
    "https://www.rfc-editor.org/rfc/rfc9990",
)
NS_2 = "urn:ietf:params:xml:ns:dmarc-2.0"
_RESULTS = frozenset(("pass", "fail", "softfail", "neutral", "none", "temperror",
                      "permerror", "policy", "hardfail"))
_XS_SCHEMA = re.compile(r"<xs:schema\b[^>]*>")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});)")
_BRACKETED_EMAIL = re.compile(r"<email>\s*<([^<>\s]+@[^<>\s]+)>\s*</email>")


class _Raw:
    """What the tree walk found, before validation."""

    def __init__(self) -> None:
        self.ns = ""
        self.meta: dict[str, str] = {}
        self.errors: list[str] = []
        self.policy: dict[str, str] = {}
        self.policies = 0
        self.records: list[DmarcRecord] = []
        self.skipped = 0


def _walk(text: str | bytes, limits: Limits) -> _Raw:
    raw = _Raw()
    root: Element | None = None
    for ev, el in parse_events(text):
        if ev in ("start", "root"):
            root = el
            _root_check(el, raw)
            if ev == "root":
                _add_records(raw, el, limits)
        elif el.tag == raw.ns + "record" and root is not None:
            _add_records(raw, el, limits)
            root.remove(el)
    if root is None:
        raise _Malformed("no root element")
    _head(raw, root)
    return raw


def _root_check(root: Element, raw: _Raw) -> None:
    tag = root.tag
    raw.ns = tag[:tag.index("}") + 1] if tag[:1] == "{" else ""
    name = tag[len(raw.ns):]
    if name == "schema":  # IKEA's unclosed <xs:schema> wraps the report
        raise _Malformed("an <xs:schema> element wraps the report")
    if name != "feedback":
        raise Rejected("not_dmarc", f"XML root is <{name[:40]}>, not <feedback>")


def _head(raw: _Raw, root: Element) -> None:
    ns = raw.ns
    raw.meta["version"] = (root.findtext(ns + "version") or "").strip()
    md = root.find(ns + "report_metadata")
    if md is not None:
        for child in md:
            name = child.tag[len(ns):] if child.tag.startswith(ns) else child.tag
            if name == "date_range":
                for part in child:
                    pname = part.tag[len(ns):] if part.tag.startswith(ns) else part.tag
                    raw.meta[pname] = (part.text or "").strip()
            elif name == "error":
                if child.text and child.text.strip():
                    raw.errors.append(child.text.strip()[:200])
            else:
                raw.meta[name] = (child.text or "").strip()
    pols = root.findall(ns + "policy_published")
    raw.policies = len(pols)
    if pols:
        for child in pols[0]:
            name = child.tag[len(ns):] if child.tag.startswith(ns) else child.tag
            raw.policy[name] = (child.text or "").strip()


_FIELDS = ("record", "source_ip", "count", "disposition", "dkim", "spf", "reason", "type",
           "comment", "header_from", "envelope_from", "envelope_to", "auth_results",
           "domain", "result", "selector", "scope")


def _add_records(raw: _Raw, within: Element, limits: Limits) -> None:
    """Every <record> under `within` (the root, or one streamed record), read from one
    flat pass over just the elements that carry a field, in document order.

    Why not a walk over each record's children: lxml makes a Python object for every
    element it hands out, wrappers and indentation included; asking for the field
    elements by name keeps that in C (measured 1.8x faster for the whole walk). The
    order tells the two meanings of <dkim> and <spf> apart: leaves holding the aligned
    result before <auth_results>, containers of one result after it."""
    ns = raw.ns
    n = len(ns)
    tags = [ns + t for t in _FIELDS] if ns else _FIELDS
    cur: list[Any] | None = None  # ip, count, disp, dkim, spf, hfrom, efrom, eto
    auth: list[list[str]] = []  # [kind, domain, result, selector, scope]
    reasons: list[list[str]] = []
    in_auth = False
    max_records = limits.max_records
    for el in within.iter(*tags):
        t = el.tag[n:]
        if t == "record":
            if cur is not None:
                _emit(raw, cur, auth, reasons)
                if len(raw.records) + raw.skipped >= max_records:
                    raise Rejected("too_large", f"more than {max_records} records "
                                   "(limit reports.limits.max_records)")
            cur, auth, reasons, in_auth = ["", "", "", "", "", "", "", ""], [], [], False
        elif cur is None:
            continue
        elif t == "auth_results":
            in_auth = True
        elif in_auth:
            if t == "dkim" or t == "spf":
                auth.append([t, "", "", "", ""])
            elif auth:
                i = _AUTH_SLOT.get(t)
                if i:
                    auth[-1][i] = el.text or ""
        elif t == "reason":
            reasons.append(["", ""])
        elif t == "type" or t == "comment":
            if reasons:
                reasons[-1][0 if t == "type" else 1] = el.text or ""
        else:
            i = _SLOT.get(t, -1)
            if i >= 0:
                cur[i] = el.text or ""
    if cur is not None:
        _emit(raw, cur, auth, reasons)
        if len(raw.records) + raw.skipped > max_records:
            raise Rejected("too_large", f"more than {max_records} records "
                           "(limit reports.limits.max_records)")


_SLOT = {"source_ip": 0, "count": 1, "disposition": 2, "dkim": 3, "spf": 4, "header_from": 5,
         "envelope_from": 6, "envelope_to": 7}
_AUTH_SLOT = {"domain": 1, "result": 2, "selector": 3, "scope": 4}


def _emit(raw: _Raw, cur: list[Any], auth: list[list[str]], reasons: list[list[str]]
          ) -> None:
    ip, count, disp, dkim, spf, hfrom, efrom, eto = cur
    ip = ip.strip()
    try:
        num = int(count)
    except ValueError:
        raw.skipped += 1
        return
    if not ip or not 0 <= num <= MAX_TIME:
        raw.skipped += 1
        return
    dkim_r = []
    spf_r = []
    for kind, domain, result, selector, scope in auth:
        res = result.strip().lower() or "none"
        if res not in _RESULTS:
            res = res[:16]
        d = domain.strip().lower().rstrip(".")[:253]
        if kind == "dkim":
            dkim_r.append(AuthResult(d, res, selector.strip()[:63]))
        else:
            spf_r.append(AuthResult(d, res, "", scope.strip().lower()[:8] or "mfrom"))
    efrom = efrom.strip().lower()
    if not efrom:
        mfrom = [a.domain for a in spf_r if a.scope == "mfrom" and a.domain]
        efrom = mfrom[-1] if mfrom else ""
    why = []
    for kind, comment in reasons:
        k = kind.strip().lower()[:40]
        if k:
            c = comment.strip()[:120]
            why.append(f"{k}: {c}" if c else k)
    raw.records.append(DmarcRecord(
        ip[:45], num, disp.strip().lower()[:16] or "none", dkim.strip().lower()[:8] or "fail",
        spf.strip().lower()[:8] or "fail", hfrom.strip().lower()[:253], efrom[:253],
        eto.strip().lower()[:253], tuple(dkim_r), tuple(spf_r), tuple(why)))


def _repairs(text: str) -> list[tuple[str, str]]:
    """Candidate repaired documents (cumulative), each with the note that says what."""
    out: list[tuple[str, str]] = []
    body = text.lstrip("\ufeff")
    if body[:1].isspace():
        body = body.lstrip()
        out.append(("whitespace before the XML declaration removed", body))
    if _XS_SCHEMA.search(body[:4096]):
        body = _XS_SCHEMA.sub("", body, count=1)
        out.append(("unclosed <xs:schema> tag removed", body))
    if _BRACKETED_EMAIL.search(body):
        body = _BRACKETED_EMAIL.sub(r"<email>\1</email>", body)
        out.append(("<email> in angle brackets unwrapped", body))
    if _BARE_AMP.search(body):
        body = _BARE_AMP.sub("&amp;", body)
        out.append(("bare '&' escaped", body))
    return out


def parse_dmarc(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DmarcReport:
    """An aggregate report from its XML bytes, or `Rejected` with the reason."""
    if len(data) < 64 and data.strip().lower() == b"unused":
        raise Rejected("unused", "the attachment holds only the word 'unused' "
                       "(a known Yahoo/AOL reporter bug, not a report)")
    if as_utf8(data):  # the common case: screened and parsed as the bytes they are
        screen_bytes(data)
        try:
            return _build(_walk(data, limits), [])
        except (*XML_ERRORS, _Malformed, RecursionError):
            pass  # the repairs below work on text
    text, notes = decode(data)
    screen(data, text)
    try:
        raw = _walk(text, limits)
    except (*XML_ERRORS, _Malformed) as first:
        applied: list[str] = []
        for note, fixed in _repairs(text):
            applied.append(note)
            try:
                raw = _walk(fixed, limits)
            except (*XML_ERRORS, _Malformed):
                continue
            notes.extend(applied)
            break
        else:
            raise Rejected("malformed", f"not well-formed XML: {first}") from None
    except RecursionError:
        raise Rejected("malformed", "the XML nests too deeply") from None
    return _build(raw, notes)


def _word(value: object, default: str = "") -> str:
    s = str(value or "").strip().lower()
    return s if s else default


def _ts(value: str, what: str) -> int:
    try:
        return unix_time(float(value), f"date_range {what}")
    except (TypeError, ValueError, OverflowError):
        raise Rejected("schema", f"date_range {what} is not a unix time") from None


def _build(t: _Raw, notes: list[str]) -> DmarcReport:
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
    records = t.records
    for r in records:
        if not r.header_from:
            r.header_from = domain
    if t.skipped:
        notes.append(f"{t.skipped} record(s) without source_ip or count skipped")
    version = m.get("version", "")
    if t.ns == "{" + NS_2 + "}":
        version = "2.0"
    notes.extend(f"reporter error: {e}" for e in t.errors)
    return DmarcReport(reporter=org.strip()[:255], email=email.strip()[:320],
                       report_id=rid[:255], begin=begin, end=end, domain=domain,
                       policy=policy, records=records, version=version, notes=notes)
