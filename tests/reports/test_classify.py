"""Sources classified against the declared configuration, through real DNS (Knot + Unbound):
the incident (a configured relay whose include is missing), a former relay still sending,
unknown sources with reverse DNS, TLS failures per MX."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from mailctl.dns.records import DomainDnsSpec
from mailctl.dns.resolver import DnsClient
from mailctl.reports.classify import classify, tls_verdicts
from mailctl.reports.networks import DomainSenders, resolve_senders
from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.dnsserver import DnsLab
from tests.reports import gen

DAY = 86400


def _zone(domain: str, spf: str) -> str:
    return (f'@ MX 10 aspmx1.migadu.com.\n@ TXT "{spf}"\n'
            f'_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"')


def _client(lab: DnsLab) -> DnsClient:
    """Generous timeouts: on a loaded CI machine a 1-2 s lookup can time out, and then the
    classification rightly withholds what it could not check (that path is tested apart)."""
    return DnsClient.create(lab.resolver, timeout=6.0, tries=3)


def _senders(lab: DnsLab, domain: str, relays: tuple[str, ...] = ("brevo",)) -> DomainSenders:
    spec = DomainDnsSpec(domain, profile="migadu", relays=relays, params={"verify": "abc"})
    return asyncio.run(resolve_senders(spec, _client(lab)))


def _row(day: int, ip: str, n: int, spf: str, dkim: str, env: str = "",
         dkim_auth: str = "") -> tuple[object, ...]:
    return (day, ip, spf, dkim, "none", env, f"d={env} mfrom {spf}" if env else "", dkim_auth, n)


def test_incident_relay_without_include_is_named(reports_world: DnsLab) -> None:
    d = "incident-lib.test"
    reports_world.publish(d, _zone(d, "v=spf1 include:spf.migadu.com -all"))
    senders = _senders(reports_world, d)
    assert senders.published == {"spf.migadu.com"}
    rows = [_row(20000, "198.51.100.20", 800, "pass", "pass", d, f"d={d} s=key1 pass"),
            _row(20000, "203.0.113.140", 704, "fail", "fail", d, f"d={d} s=mail fail"),
            _row(20001, "203.0.113.141", 500, "fail", "fail", d, f"d={d} s=mail fail")]
    s = classify(d, rows, senders)
    by = {(x.cls, x.name): x for x in s.sources}
    assert by["provider", "migadu"].messages == 800
    assert by["relay", "brevo"].messages == 1204
    brevo = next(v for v in s.verdicts if v.source == "brevo")
    assert brevo.text.startswith("relay Brevo: 1,204 messages, SPF fail (not aligned) — SPF "
                                 "lacks include:spf.brevo.com")
    assert brevo.severity == "error" and brevo.code == "sender.spf_missing_include"
    assert f"add include:spf.brevo.com to the SPF record of {d}" in brevo.fix
    migadu = next(v for v in s.verdicts if v.source == "migadu")
    assert migadu.severity == "ok"


def test_with_the_include_published_the_cause_is_alignment(reports_world: DnsLab) -> None:
    d = "aligned-lib.test"
    reports_world.publish(d, _zone(d, "v=spf1 include:spf.migadu.com include:spf.brevo.com "
                                      "-all"))
    rows = [_row(20000, "203.0.113.150", 90, "fail", "pass", "bounces.brevo.example",
                 f"d={d} s=mail pass")]
    v = classify(d, rows, _senders(reports_world, d)).verdicts[0]
    assert v.severity == "warning"  # DKIM carries DMARC
    assert "SPF checks bounces.brevo.example, not aligned with aligned-lib.test" in v.text
    assert "DMARC passes through the other" in v.text


def test_former_relay_and_unknown_source(reports_world: DnsLab) -> None:
    d = "former-lib.test"
    reports_world.publish(d, _zone(d, "v=spf1 include:spf.migadu.com -all"))
    reports_world.publish("113.0.203.in-addr.arpa", "9 PTR mail.forgotten.example.")
    try:
        senders = _senders(reports_world, d, relays=())
        rows = [_row(20000 + i, "192.0.2.140", 14, "fail", "fail", "mailgun.org")
                for i in range(7)]
        rows += [_row(20000 + i, "198.51.100.5", 300, "pass", "pass", d) for i in range(7)]
        rows += [_row(20003, "203.0.113.9", 25, "fail", "fail", d)]
        rows += [_row(20004, "203.0.113.70", 5, "fail", "pass", "list.example",
                      f"d={d} s=key1 pass")]
        from mailctl.reports.networks import reverse_names

        rdns = asyncio.run(reverse_names(_client(reports_world),
                                         ["203.0.113.9", "203.0.113.70"]))
        assert rdns == {"203.0.113.9": "mail.forgotten.example", "203.0.113.70": ""}
        s = classify(d, rows, senders, {k: v or "" for k, v in rdns.items()})
    finally:
        reports_world.publish("113.0.203.in-addr.arpa", "")
    texts = [v.text for v in s.verdicts]
    assert "Mailgun still sends 14 messages/day although it is no longer your relay" in texts
    assert ("unknown source 203.0.113.9 (mail.forgotten.example) sends as you: spoofing or a "
            "forgotten service (25 messages, DMARC fail)") in texts
    # 203.0.113.70 is sendinblue's old range: Brevo was never declared, so it is a former relay
    assert any(v.source == "brevo" and v.code == "former.still_sending" for v in s.verdicts)
    assert s.days[20003] == {"provider": [300, 0], "former": [0, 14], "unknown": [0, 25]}


def test_tls_failures_per_mx() -> None:
    rows = [(1, "Google Inc.", "sts", "mx1.acme.test", "success", 4000, ""),
            (1, "Google Inc.", "sts", "mx2.acme.test", "certificate-expired", 12, ""),
            (2, "Microsoft Corporation", "sts", "", "sts-policy-fetch-error", 3, "404")]
    entries, verdicts = tls_verdicts("acme.test", rows)
    assert [v.text for v in verdicts] == [
        "TLS: 3 failed sessions for acme.test (sts-policy-fetch-error), reported by Microsoft "
        "Corporation",
        "TLS: 12 failed sessions to mx2.acme.test (certificate-expired), reported by Google Inc."]
    assert verdicts[1].fix == "renew the certificate of mx2.acme.test"
    assert "mta-sts.acme.test/.well-known/mta-sts.txt" in verdicts[0].fix
    assert entries[-1]["result"] == "success"


def test_incident_end_to_end_through_the_cli(reports_world: DnsLab, tmp_path: Path) -> None:
    """Configured relay Brevo, SPF without its include, Google and Microsoft reports showing
    Brevo's addresses failing SPF: `reports show` names the missing include."""
    d = "incident.test"
    reports_world.publish(d, _zone(d, "v=spf1 include:spf.migadu.com -all"))
    write_config(tmp_path, f"""
        providers:
          local: {{type: dms, path: {tmp_path / 'dms'}}}
        domains:
          {d}:
            provider: local
            dns: {{profile: migadu, relays: [brevo], params: {{verify: abc}}}}
        reports:
          resolver: "{reports_world.resolver}"
          dns_timeout: 1
    """)
    (tmp_path / "dms").mkdir()
    now = int(time.time())
    files = []
    for i, style in enumerate(("google", "microsoft", "google")):
        begin = (now // DAY - 3 + i) * DAY
        rows = [gen.Row("198.51.100.30", 1000, "pass", "pass",
                        dkim_auth=[(d, "key1", "pass")]),
                gen.Row("203.0.113.131", 400 + i, "fail", "fail", envelope_from=d,
                        dkim_auth=[("brevo.example", "mail", "pass")])]
        xml = gen.aggregate_xml(style, d, rows, report_id=f"inc-{i}", begin=begin,
                                end=begin + DAY - 1, policy="quarantine")
        name, ctype, data = gen.packed(style, d, begin, begin + DAY - 1, xml, f"inc-{i}")
        mail = gen.report_mail(style, d, f"dmarc@{d}", name, ctype, data,
                               report_id=f"inc-{i}", when=begin + DAY + 3600)
        path = tmp_path / f"r{i}.eml"
        path.write_bytes(mail)
        files.append(path)
    res = run_cli("reports", "import", *files, cwd=tmp_path)
    assert res.code == 0, res.all
    res = run_cli("reports", "show", d, "--json", cwd=tmp_path)
    assert res.code == 0, res.all
    doc = json.loads(res.out)
    assert doc["version"] == 1
    verdicts = doc["domains"][0]["verdicts"]
    brevo = next(v for v in verdicts if v["source"] == "brevo")
    assert brevo["text"].startswith("relay Brevo: 1,203 messages, SPF fail (not aligned) — "
                                    "SPF lacks include:spf.brevo.com; DKIM fail — signed as "
                                    "d=brevo.example, not aligned")
    assert brevo["severity"] == "error"
    table = run_cli("reports", "show", d, cwd=tmp_path)
    assert table.code == 0, table.all
    assert "SPF lacks include:spf.brevo.com" in table.out
    assert "relay" in table.out and "Brevo" in table.out and "Migadu" in table.out


def test_a_failed_lookup_is_shown_not_taken_for_absence(reports_world: DnsLab) -> None:
    """docs/reports.md: a DNS lookup that fails is shown as such, never as "not there"."""
    import io

    from rich.console import Console

    from mailctl.reports.render import print_summaries

    d = "servfail-lib.test"
    reports_world.publish(d, _zone(d, "v=spf1 include:spf.migadu.com -all"))
    # the lab serves no zone for some relay profiles' SPF (postmark, sendgrid...): SERVFAIL
    senders = _senders(reports_world, d)
    assert senders.unknown and all("servfail" in u for u in senders.unknown), senders.unknown
    s = classify(d, [_row(20000, "198.51.100.20", 40, "pass", "pass", d)], senders)
    assert s.unknown_dns == senders.unknown
    out = io.StringIO()
    print_summaries([s], 0, Console(file=out, width=200, no_color=True), [])
    assert "DNS lookup failed, classification may be incomplete" in out.getvalue()
    assert senders.unknown[0] in out.getvalue()
