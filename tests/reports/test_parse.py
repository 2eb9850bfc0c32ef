"""Every reporter shape parses to the same model; each known deviation is repaired and noted."""

from __future__ import annotations

import random

import pytest

from mailctl.reports.dmarc import parse_dmarc
from mailctl.reports.ingest import read_file, read_message, split_mbox
from mailctl.reports.model import DmarcReport, FailureReport, Rejected, TlsReport
from mailctl.reports.tlsrpt import parse_tlsrpt
from tests.reports import gen

DOMAIN = "acme.test"


def _rows() -> list[gen.Row]:
    return [gen.Row("198.51.100.7", 120, "pass", "pass", dkim_auth=[(DOMAIN, "key1", "pass")]),
            gen.Row("203.0.113.140", 30, "fail", "pass", envelope_from=f"bounces.{DOMAIN}",
                    dkim_auth=[(DOMAIN, "mail", "pass")],
                    spf_auth=[(f"bounces.{DOMAIN}", "fail")]),
            gen.Row("192.0.2.9", 4, "fail", "fail")]


@pytest.mark.parametrize("style", gen.STYLES)
def test_each_reporter_style_reads_the_same(style: str) -> None:
    xml = gen.aggregate_xml(style, DOMAIN, _rows(), report_id="r-1", begin=1_000_000,
                            end=1_086_399)
    r = parse_dmarc(xml)
    assert (r.reporter, r.report_id, r.domain) == (gen.REPORTERS[style][0], "r-1", DOMAIN)
    assert (r.begin, r.end) == (1_000_000, 1_086_399)
    assert [(x.source_ip, x.count, x.spf, x.dkim) for x in r.records] == [
        ("198.51.100.7", 120, "pass", "pass"), ("203.0.113.140", 30, "fail", "pass"),
        ("192.0.2.9", 4, "fail", "fail")]
    assert r.records[1].envelope_from == f"bounces.{DOMAIN}"  # yahoo: from the SPF result
    assert r.records[0].dkim_results[0].domain == DOMAIN
    assert r.messages == 154
    if style == "dmarcbis":
        assert r.version == "2.0"
        assert r.policy["np"] == "reject" and r.policy["discovery_method"] == "treewalk"
        assert r.records[0].disposition == "pass"


@pytest.mark.parametrize("style", gen.STYLES)
def test_each_reporter_mail_carries_one_report(style: str) -> None:
    xml = gen.aggregate_xml(style, DOMAIN, _rows(), report_id="r-2", begin=1000, end=2000)
    name, ctype, data = gen.packed(style, DOMAIN, 1000, 2000, xml, "r-2")
    mail = gen.report_mail(style, DOMAIN, "dmarc@acme.test", name, ctype, data,
                           report_id="r-2", when=3000)
    out = read_message(mail)
    assert out.status == "report", out.reason()
    assert len(out.reports) == 1 and isinstance(out.reports[0], DmarcReport)
    assert len(out.reports[0].records) == 3


@pytest.mark.parametrize("style", ["google", "microsoft"])
def test_tls_reports_google_and_microsoft_shapes(style: str) -> None:
    js = gen.tls_json(style, DOMAIN, "mx1.acme.test", report_id="t-1", begin=86400,
                      end=2 * 86400 - 1, ok=500, failures=[("certificate-expired", 7)])
    mail = gen.report_mail(style, DOMAIN, "tls@acme.test",
                           f"{style}!{DOMAIN}!86400!172799.json.gz", "application/tlsrpt+gzip",
                           gen.gz(js), report_id="t-1", when=3 * 86400, tls=True)
    out = read_message(mail)
    assert out.status == "report", out.reason()
    r = out.reports[0]
    assert isinstance(r, TlsReport) and r.domain == DOMAIN and r.report_id == "t-1"
    p = r.policies[0]
    assert (p.policy_type, p.successful, p.failed, p.mx_patterns) == (
        "sts", 500, 7, ("mx1.acme.test",))
    assert p.failures[0].result_type == "certificate-expired" and p.failures[0].sessions == 7
    if style == "microsoft":
        assert p.failures[0].sending_mta_ip == "" and "no sending-mta-ip" in r.notes
    else:
        assert p.failures[0].receiving_mx == "mx1.acme.test"


def test_failure_report_keeps_fields_not_the_sample() -> None:
    out = read_message(gen.failure_mail(DOMAIN, "ruf@acme.test", "192.0.2.66", 5000, 1))
    r = out.reports[0]
    assert isinstance(r, FailureReport)
    assert (r.source_ip, r.domain, r.auth_failure, r.header_from, r.arrival) == (
        "192.0.2.66", DOMAIN, "dmarc", DOMAIN, 5000)
    assert "wire transfer" not in repr(r) and "invoice" not in repr(r)


def test_mail_that_is_not_a_report_is_not_one() -> None:
    assert read_message(gen.plain_mail("lunch?", "dmarc@acme.test")).status == "not_report"
    assert read_message(gen.plain_mail("DMARC question", "dmarc@acme.test")).status == \
        "not_report"


def test_report_subject_without_attachment_is_rejected_not_ignored() -> None:
    out = read_message(gen.plain_mail(f"Report Domain: {DOMAIN} Submitter: x Report-ID: 1",
                                      "dmarc@acme.test"))
    assert out.status == "rejected"
    assert out.rejections[0].code == "no_report"


def _xml(body: str, head: str = '<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    return (head + "<feedback><report_metadata><org_name>Org</org_name><email>r@org.example"
            "</email><report_id>id1</report_id><date_range><begin>100</begin><end>200</end>"
            "</date_range></report_metadata><policy_published><domain>acme.test</domain>"
            "<p>none</p></policy_published>" + body + "</feedback>").encode()


REC = ("<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated>"
       "<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>"
       "</row><identifiers><header_from>acme.test</header_from></identifiers><auth_results>"
       "<spf><domain>acme.test</domain><result>fail</result></spf></auth_results></record>")


@pytest.mark.parametrize(("data", "note"), [
    pytest.param(_xml(REC).replace(b"Org", "Org \u2019s".encode("cp1252")),
                 "not valid UTF-8: read as Windows-1252", id="cp1252-declared-utf8"),
    pytest.param(b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">' + _xml(REC, ""),
                 "unclosed <xs:schema> tag removed", id="ikea-xs-schema"),
    pytest.param(b"\n\n  " + _xml(REC), "", id="leading-whitespace"),  # read as it is
    pytest.param(_xml(REC).replace(b"<org_name>Org", b"<org_name>AT&T"), "bare '&' escaped",
                 id="bare-ampersand"),
    pytest.param(_xml(REC).replace(b"<email>r@org.example", b"<email><r@org.example>"),
                 "<email> in angle brackets unwrapped", id="bracketed-email"),
    pytest.param(_xml(REC, '<?xml version="1.0" encoding="UTF-16"?>'),
                 "declared utf-16 but the bytes are UTF-8", id="declared-utf16-is-utf8"),
])
def test_deviations_are_repaired_and_noted(data: bytes, note: str) -> None:
    r = parse_dmarc(data)
    assert note in r.notes if note else not r.notes
    assert r.records[0].source_ip == "192.0.2.1" and r.records[0].count == 3


def test_lenient_fields() -> None:
    body = (REC.replace("<dkim>pass</dkim>", "<dkim>Pass</dkim>").replace("identifiers",
                                                                          "identities"))
    data = _xml(body).replace(b"<begin>100</begin>", b"<begin>300.0</begin>").replace(
        b"<report_id>id1</report_id>", b"<report_id>&lt;id1@org.example&gt;</report_id>")
    data = data.replace(b"<org_name>Org</org_name>", b"")
    data = data.replace(b"</policy_published>", b"</policy_published><policy_published>"
                        b"<domain>other.test</domain></policy_published>", 1)
    r = parse_dmarc(data)
    assert r.reporter == "org.example" and r.report_id == "id1@org.example"
    assert (r.begin, r.end) == (200, 300)
    assert r.domain == "acme.test" and r.records[0].dkim == "pass"
    assert r.records[0].header_from == "acme.test"
    assert r.records[0].envelope_from == "acme.test"  # from the SPF result
    assert any("swapped" in n for n in r.notes) and any("policy_published" in n
                                                        for n in r.notes)


def test_yahoo_unused_is_named() -> None:
    out = read_file("yahoo.com!acme.test!1!2.xml.gz", gen.gz(b"unused"))[0]
    assert not out.reports
    assert out.rejections[0].code == "unused" and "Yahoo" in out.reason()


def test_zero_records_and_bad_records() -> None:
    r = parse_dmarc(_xml(""))
    assert r.records == []
    bad = REC.replace("<count>3</count>", "<count>many</count>")
    r = parse_dmarc(_xml(REC + bad))
    assert len(r.records) == 1 and any("skipped" in n for n in r.notes)


def test_big_report_streams_with_every_record() -> None:
    rows = gen.sample_rows(DOMAIN, random.Random(5), 30_000)
    xml = gen.aggregate_xml("google", DOMAIN, rows, report_id="big", begin=1, end=2)
    assert len(xml) > 2 << 20  # past the one-call limit: the streaming path
    r = parse_dmarc(xml)
    assert len(r.records) == 30_000 and r.messages == sum(x.count for x in rows)


def test_tls_report_validation() -> None:
    with pytest.raises(Rejected, match="no organization-name"):
        parse_tlsrpt(b'{"policies": [], "report-id": "x"}')
    with pytest.raises(Rejected, match="not valid JSON"):
        parse_tlsrpt(b'{"policies": [')
    r = parse_tlsrpt(b'{"organization-name": "O", "report-id": "x", "date-range": '
                     b'{"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": '
                     b'"2026-01-01T23:59:59Z"}, "policies": [{"policy": {"policy-type": '
                     b'"no-policy-found", "policy-domain": "acme.test", "mx-host-pattern": '
                     b'"*.acme.test"}, "summary": {"total-successful-session-count": "3", '
                     b'"total-failure-session-count": 0}}]}')
    assert r.policies[0].mx_patterns == ("*.acme.test",) and r.policies[0].successful == 3


def test_mbox_with_several_mails() -> None:
    mails = []
    for i, style in enumerate(("google", "microsoft")):
        xml = gen.aggregate_xml(style, DOMAIN, _rows(), report_id=f"m{i}", begin=1, end=2)
        name, ctype, data = gen.packed(style, DOMAIN, 1, 2, xml, f"m{i}")
        mails.append(gen.report_mail(style, DOMAIN, "d@acme.test", name, ctype, data,
                                     report_id=f"m{i}", when=5))
    mbox = b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + m.replace(b"\r\n", b"\n")
                    + b"\n" for m in mails)
    assert len(split_mbox(mbox)) == 2
    outs = read_file("reports.mbox", mbox)
    assert [o.reports[0].report_id for o in outs] == ["m0", "m1"]
