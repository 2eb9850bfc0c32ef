"""Real-shaped DMARC aggregate, TLS-RPT and failure reports, and the mails that carry them.

Each reporter style follows what that reporter actually sends (as seen in public
samples and parser bug reports): Google zips its XML and names it
`google.com!domain!begin!end.zip`; Microsoft gzips, declares stray xmlns:xsd /
xmlns:xsi, adds envelope_to and an HTML "preview" body; Yahoo gzips with no
`<version>`; the Mail.ru style carries the deviations parsers trip on (report id
in angle brackets, decimal timestamps, upper-case result words); DMARCbis uses
the dmarc-2.0 namespace with np/testing/discovery_method/generator. TLS-RPT
comes in Google's shape (sending-mta-ip present) and Microsoft's (absent).
Broken and hostile inputs are here too, so tests and the benchmark share them.
Deterministic: everything derives from the seed passed in.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

STYLES = ("google", "microsoft", "yahoo", "mailru", "dmarcbis")
REPORTERS = {
    "google": ("google.com", "noreply-dmarc-support@google.com"),
    "microsoft": ("Enterprise Outlook", "dmarcreport@microsoft.com"),
    "yahoo": ("Yahoo", "dmarchelp@yahooinc.com"),
    "mailru": ("Mail.Ru", "dmarc_support@corp.mail.ru"),
    "dmarcbis": ("Example Reporter", "dmarc-reports@reporter.example"),
}
FILE_HOST = {"google": "google.com", "microsoft": "protection.outlook.com",
             "yahoo": "yahoo.com", "mailru": "mail.ru", "dmarcbis": "reporter.example"}


@dataclass
class Row:
    ip: str
    count: int
    spf: str = "pass"  # policy_evaluated (aligned) result
    dkim: str = "pass"
    header_from: str = ""
    envelope_from: str = ""
    dkim_auth: list[tuple[str, str, str]] = field(default_factory=list)  # (d, selector, result)
    spf_auth: list[tuple[str, str]] = field(default_factory=list)  # (domain, result)
    disposition: str = "none"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def aggregate_xml(style: str, domain: str, rows: list[Row], *, report_id: str, begin: int,
                  end: int, policy: str = "none") -> bytes:
    org, email = REPORTERS[style]
    upper = style == "mailru"
    rid = f"&lt;{report_id}&gt;" if style == "mailru" else _esc(report_id)
    b, e = (f"{begin}.0", f"{end}.0") if style == "mailru" else (str(begin), str(end))
    out = []
    if style == "microsoft":
        out.append('<?xml version="1.0"?>\n<feedback xmlns:xsd="http://www.w3.org/2001/'
                   'XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
                   "  <version>1.0</version>\n")
    elif style == "dmarcbis":
        out.append('<?xml version="1.0" encoding="UTF-8"?>\n'
                   '<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">\n'
                   "  <version>1.0</version>\n")
    elif style == "yahoo":
        out.append("<?xml version=\"1.0\"?>\n<feedback>\n")
    else:
        out.append('<?xml version="1.0" encoding="UTF-8" ?>\n<feedback>\n')
        if style == "mailru":
            out.append("  <version>1.0</version>\n")
    out.append(f"  <report_metadata>\n    <org_name>{_esc(org)}</org_name>\n"
               f"    <email>{email}</email>\n")
    if style == "google":
        out.append("    <extra_contact_info>https://support.google.com/a/answer/2466580"
                   "</extra_contact_info>\n")
    out.append(f"    <report_id>{rid}</report_id>\n    <date_range>\n"
               f"      <begin>{b}</begin>\n      <end>{e}</end>\n    </date_range>\n")
    if style == "dmarcbis":
        out.append("    <generator>mailctl test generator 1.0</generator>\n")
    out.append(f"  </report_metadata>\n  <policy_published>\n    <domain>{domain}</domain>\n"
               f"    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>{policy}</p>\n")
    if style == "dmarcbis":
        out.append(f"    <sp>{policy}</sp>\n    <np>reject</np>\n    <testing>n</testing>\n"
                   "    <discovery_method>treewalk</discovery_method>\n")
    else:
        out.append(f"    <sp>{policy}</sp>\n    <pct>100</pct>\n")
        if style in ("microsoft", "google"):
            out.append("    <fo>0</fo>\n" if style == "microsoft" else "    <np>none</np>\n")
    out.append("  </policy_published>\n")
    for r in rows:
        hf = r.header_from or domain
        ef = r.envelope_from or hf
        disp = r.disposition
        if style == "dmarcbis" and disp == "none" and (r.spf == "pass" or r.dkim == "pass"):
            disp = "pass"
        spf_w, dkim_w = (r.spf.upper(), r.dkim.capitalize()) if upper else (r.spf, r.dkim)
        out.append(f"  <record>\n    <row>\n      <source_ip>{r.ip}</source_ip>\n"
                   f"      <count>{r.count}</count>\n      <policy_evaluated>\n"
                   f"        <disposition>{disp}</disposition>\n"
                   f"        <dkim>{dkim_w}</dkim>\n        <spf>{spf_w}</spf>\n"
                   "      </policy_evaluated>\n    </row>\n    <identifiers>\n")
        if style == "microsoft":
            out.append("      <envelope_to>hotmail.com</envelope_to>\n")
        if style != "yahoo":
            out.append(f"      <envelope_from>{ef}</envelope_from>\n")
        out.append(f"      <header_from>{hf}</header_from>\n    </identifiers>\n"
                   "    <auth_results>\n")
        for d, sel, res in r.dkim_auth:
            out.append(f"      <dkim>\n        <domain>{d}</domain>\n"
                       + (f"        <selector>{sel}</selector>\n" if sel else "")
                       + f"        <result>{res}</result>\n"
                       + ("        <human_result>ok</human_result>\n"
                          if style == "dmarcbis" else "") + "      </dkim>\n")
        for d, res in r.spf_auth or [(ef, r.spf)]:
            out.append(f"      <spf>\n        <domain>{d}</domain>\n"
                       + ("" if style == "dmarcbis" else "        <scope>mfrom</scope>\n")
                       + f"        <result>{res}</result>\n      </spf>\n")
        out.append("    </auth_results>\n  </record>\n")
    out.append("</feedback>\n")
    return "".join(out).encode("utf-8")


def tls_json(style: str, domain: str, mx: str, *, report_id: str, begin: int, end: int,
             ok: int, failures: list[tuple[str, int]]) -> bytes:
    """Google's shape (sending-mta-ip, receiving-ip) or Microsoft's (neither)."""
    day = datetime.fromtimestamp(begin, UTC)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    details = []
    for rtype, n in failures:
        d: dict[str, object] = {"result-type": rtype, "failed-session-count": n}
        if style == "google":
            d.update({"sending-mta-ip": "209.85.222.201", "receiving-ip": "198.51.100.25",
                      "receiving-mx-hostname": mx})
        details.append(d)
    doc = {
        "organization-name": "Google Inc." if style == "google" else "Microsoft Corporation",
        "date-range": {"start-datetime": day.strftime(fmt),
                       "end-datetime": datetime.fromtimestamp(end, UTC).strftime(fmt)},
        "contact-info": ("smtp-tls-reporting@google.com" if style == "google"
                         else "tlsrpt-noreply@microsoft.com"),
        "report-id": report_id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-domain": domain,
                       "policy-string": ["version: STSv1", "mode: enforce", f"mx: {mx}",
                                         "max_age: 604800"],
                       "mx-host": [mx]},
            "summary": {"total-successful-session-count": ok,
                        "total-failure-session-count": sum(n for _, n in failures)},
            **({"failure-details": details} if details else {}),
        }],
    }
    return json.dumps(doc, indent=None if style == "microsoft" else 2).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def packed(style: str, domain: str, begin: int, end: int, xml: bytes, report_id: str
           ) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) as the reporter attaches it."""
    base = f"{FILE_HOST[style]}!{domain}!{begin}!{end}"
    if style == "google":
        return f"{base}.zip", "application/zip", zipped(f"{base}.xml", xml)
    if style == "dmarcbis":
        return f"{base}!{report_id}.xml", "text/xml", xml
    return f"{base}.xml.gz", "application/gzip", gz(xml)


def report_mail(style: str, domain: str, to: str, filename: str, ctype: str, data: bytes, *,
                report_id: str, when: int, tls: bool = False) -> bytes:
    """The mail a reporter sends, headers and MIME structure as they do."""
    msg = EmailMessage()
    host = FILE_HOST.get(style, "google.com")
    sender = ("noreply-smtp-tls-reporting@google.com" if tls and style == "google" else
              "tlsrpt-noreply@microsoft.com" if tls else REPORTERS[style][1])
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
    msg["Message-ID"] = f"<{report_id.strip('<>').replace('@', '.')}.{when}@{host}>"
    submitter = "google.com" if style == "google" else host
    msg["Subject"] = f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>"
    if tls:
        msg["TLS-Report-Domain"] = domain
        msg["TLS-Report-Submitter"] = submitter
        msg.set_content(f"This is an aggregate TLS report from {submitter}")
        msg.make_mixed()
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        msg.replace_header("Content-Type", msg["Content-Type"] + '; report-type="tlsrpt"')
        return msg.as_bytes()
    if style == "microsoft":
        msg.set_content("<div>This is a DMARC aggregate report from Microsoft Corporation.</div>",
                        subtype="html")
    elif style != "yahoo":
        msg.set_content(f"This is an aggregate report from {submitter}.")
    maintype, subtype = ctype.split("/", 1)
    if style == "yahoo":  # the whole mail is the attachment, as Yahoo and Mimecast send it
        msg.set_content(data, maintype=maintype, subtype=subtype, filename=filename)
    else:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def failure_mail(domain: str, to: str, ip: str, when: int, n: int) -> bytes:
    """An RFC 6591 auth-failure report with the sample's headers only."""
    msg = EmailMessage()
    msg["From"] = "dmarc-failures@reporter.example"
    msg["To"] = to
    msg["Subject"] = f"DMARC Failure Report for {domain}"
    msg["Message-ID"] = f"<failure-{n}-{when}@reporter.example>"
    msg["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
    msg.set_content("This is an authentication failure report.")
    msg.make_mixed()
    fields = (f"Feedback-Type: auth-failure\nUser-Agent: test/1.0\nVersion: 1\n"
              f"Original-Mail-From: <bounce@{domain}>\n"
              f"Arrival-Date: {format_datetime(datetime.fromtimestamp(when, UTC))}\n"
              f"Source-IP: {ip}\nReported-Domain: {domain}\nAuth-Failure: dmarc\n"
              f"Delivery-Result: reject\n")
    part = EmailMessage()
    part.set_content(fields)
    part.replace_header("Content-Type", "message/feedback-report")
    msg.attach(part)
    sample = EmailMessage()
    sample["From"] = f"ceo@{domain}"
    sample["To"] = "victim@elsewhere.example"
    sample["Subject"] = "urgent wire transfer"
    sample.set_content("please pay the invoice")
    msg.add_attachment(sample)
    return msg.as_bytes()


def plain_mail(subject: str, to: str, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = "colleague@example.net"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{random.Random(subject).getrandbits(64)}@example.net>"
    msg.set_content(body)
    return msg.as_bytes()


# -- hostile and broken inputs --------------------------------------------------------

BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
                  + b"".join(b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1
                                                             else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b"]>\n<feedback><report_metadata><org_name>&lol9;</org_name>"
                  b"</report_metadata></feedback>\n")
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b"\n<feedback><report_metadata><org_name>&xxe;</org_name></report_metadata></feedback>\n")
EXTERNAL_DTD = (b'<?xml version="1.0"?>\n<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/x.dtd">'
                b"\n<feedback/>\n")


def zip_bomb(unpacked_mib: int = 100) -> bytes:
    buf = io.BytesIO()
    with (zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
          z.open("report.xml", "w", force_zip64=True) as fh):
        block = b"\0" * (1 << 20)
        for _ in range(unpacked_mib):
            fh.write(block)
    return buf.getvalue()


def gzip_bomb(unpacked_mib: int = 100) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as fh:
        block = b"<" + b" " * ((1 << 20) - 1)
        for _ in range(unpacked_mib):
            fh.write(block)
    return buf.getvalue()


def nested_zip(inner: bytes) -> bytes:
    return zipped("report.zip", zipped("report.xml", inner))


def sample_rows(domain: str, rng: random.Random, n: int) -> list[Row]:
    """Mixed sources: the provider's and a relay's networks, and strangers."""
    rows = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.6:
            ip = f"198.51.100.{rng.randint(1, 254)}"
            rows.append(Row(ip, rng.randint(1, 500), "pass", "pass",
                            dkim_auth=[(domain, "key1", "pass")]))
        elif kind < 0.85:
            ip = f"203.0.113.{rng.randint(129, 190)}"
            rows.append(Row(ip, rng.randint(1, 200), "fail", "pass",
                            envelope_from=f"bounces.{domain}",
                            dkim_auth=[(domain, "mail", "pass")],
                            spf_auth=[(f"bounces.{domain}", "fail")]))
        else:
            ip = f"192.0.2.{rng.randint(1, 254)}"
            rows.append(Row(ip, rng.randint(1, 20), "fail", "fail",
                            dkim_auth=[("spoofer.example", "s1", "fail")] if i % 2 else []))
    return rows


def corpus(n: int, seed: int = 1, domain: str = "bench.test", min_rows: int = 1,
           max_rows: int = 60, big_every: int = 50, big_rows: int = 2000
           ) -> list[tuple[str, bytes, int, int]]:
    """n aggregate report files of mixed styles and sizes: (name, bytes, records, messages)."""
    rng = random.Random(seed)
    out = []
    t0 = 1_767_225_600  # 2026-01-01
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        rows = sample_rows(domain, rng, big_rows if big_every and i % big_every == 7
                           else rng.randint(min_rows, max_rows))
        begin = t0 + (i // len(STYLES)) * 86400
        end = begin + 86399
        rid = f"{style}-{seed}-{i}-{rng.getrandbits(32):08x}"
        xml = aggregate_xml(style, domain, rows, report_id=rid, begin=begin, end=end)
        name, _, data = packed(style, domain, begin, end, xml, rid)
        if name.endswith(".xml"):  # a plain attachment: ship it gzipped or zipped on disk
            name, data = (name + ".gz", gz(data)) if i % 2 else (name + ".zip",
                                                               zipped(name, data))
        out.append((f"{i:05d}-{name}", data, len(rows), sum(r.count for r in rows)))
    return out
