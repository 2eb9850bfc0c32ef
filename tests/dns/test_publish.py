"""`mailctl dns plan/apply` against a real Knot that takes TSIG-signed RFC 2136 updates.

Every test runs the real command; the assertions are what a user sees (exit
codes, stderr lines, the plan) and what the DNS server then serves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.dns.conftest import KEY_2048, rsa_public_b64
from tests.fixtures.cli import Result, run_cli, write_config
from tests.fixtures.dnsserver import DnsLab

FOREIGN = """
www A 192.0.2.80
@ TXT "google-site-verification=abc123"
mail.other MX 10 mx.elsewhere.test.
blog CNAME hosting.elsewhere.test.
long TXT "{a}" "{b}"
""".format(a="x" * 200, b="y" * 150)
FOREIGN_NAMES = [("www", "A"), ("@", "TXT"), ("mail.other", "MX"), ("blog", "CNAME"),
                 ("long", "TXT")]
KEY_MAILGUN = KEY_2048
KEY_BREVO = rsa_public_b64(2049)  # another valid key


def config(tmp: Path, lab: DnsLab, domain: str, *, relays: str = "[mailgun]",
           secret_ref: str = "${env:TSIG_SECRET}", port: int | None = None,
           extra: str = "", host_extra: str = "") -> Path:
    return write_config(tmp, f"""
        providers:
          hosted: {{type: migadu, user: admin@{domain}, api_key: "${{env:MIGADU_KEY}}"}}
        dns:
          hosts:
            knot:
              class: octodns_bind.Rfc2136Provider
              host: 127.0.0.1
              port: {port or lab.auth_port}
              timeout: 2
              key_name: {lab.tsig_name}
              key_secret: "{secret_ref}"
              key_algorithm: hmac-sha256
        {host_extra}
        domains:
          {domain}:
            provider: hosted
            dns:
              host: knot
              params: {{verify: abc}}
              relays: {relays}
              relay_params:
                mailgun: {{dkim_key: "{KEY_MAILGUN}"}}
                brevo: {{dkim_key: "{KEY_BREVO}", verify: brevo123}}
              dmarc: {{rua: [dmarc@{domain}]}}
        {extra}
    """)


def env(lab: DnsLab, **more: str) -> dict[str, str]:
    return {"TSIG_SECRET": lab.tsig_secret, "MIGADU_KEY": "k" * 16, **more}


def dns(tmp: Path, lab: DnsLab, *args: str, **env_more: str) -> Result:
    return run_cli("dns", *args, cwd=tmp, env=env(lab, **env_more))


def apply(tmp: Path, lab: DnsLab, *args: str) -> Result:
    return dns(tmp, lab, "apply", "--resolver", lab.resolver, "--ns-port", str(lab.auth_port),
               "--wait", "10", *args)


def plan_json(tmp: Path, lab: DnsLab, *args: str) -> dict:  # type: ignore[type-arg]
    r = dns(tmp, lab, "plan", "--json", *args)
    assert r.code == 0, r.all
    return json.loads(r.out)  # type: ignore[no-any-return]


def foreign_state(lab: DnsLab, zone: str) -> dict[tuple[str, str], list[str]]:
    out = {}
    for name, rtype in FOREIGN_NAMES:
        fqdn = zone if name == "@" else f"{name}.{zone}"
        values = lab.rrset(fqdn, rtype)
        if (name, rtype) == ("@", "TXT"):
            values = [v for v in values if "google" in v]
        out[(name, rtype)] = values
    return out


@pytest.fixture
def relay_world(world: DnsLab) -> DnsLab:
    world.publish("mailgun.org", 'mailgun.org. TXT "v=spf1 ip4:203.0.113.200/29 -all"')
    return world


def test_empty_zone_plan_apply_check_clean_replan_nothing(tmp_path: Path,
                                                          relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub1.test"
    lab.publish(domain, FOREIGN, updatable=True)
    before = foreign_state(lab, domain)
    config(tmp_path, lab, domain)
    plan = dns(tmp_path, lab, "plan", "--detailed-exitcode")
    assert plan.code == 2, plan.all
    assert "kept: google-site-verification=abc123" in plan.out
    data = plan_json(tmp_path, lab)
    assert data["version"] == 1 and data["has_changes"]
    changes = {(c["name"], c["type"]): c for c in data["zones"][0]["changes"]}
    assert ("www.pub1.test", "A") not in changes and ("blog.pub1.test", "CNAME") not in changes
    apex = changes[(domain, "TXT")]
    assert apex["action"] == "update" and apex["kept"] == ["google-site-verification=abc123"]
    assert all(c["action"] != "delete" for c in changes.values())
    done = apply(tmp_path, lab)
    assert done.code == 0, done.all
    assert "answers with the new data" in done.err
    assert foreign_state(lab, domain) == before  # byte for byte
    assert lab.rrset(f"smtp._domainkey.{domain}", "TXT")  # the relay's DKIM, declared
    check = dns(tmp_path, lab, "check", domain, "--resolver", lab.resolver, "--json")
    assert check.code == 0, check.all
    findings = json.loads(check.out)["domains"][0]["findings"]
    assert not [f for f in findings if f["severity"] in ("error", "warning")], findings
    again = dns(tmp_path, lab, "plan", "--detailed-exitcode")
    assert again.code == 0, again.all
    assert "No changes" in again.out


def test_split_txt_is_not_a_change_and_foreign_records_survive(tmp_path: Path,
                                                               relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub2.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    assert apply(tmp_path, lab).code == 0
    # the host re-splits every TXT differently (as some DNS hosts do): same records
    spf = "v=spf1 include:spf.migadu.com include:mailgun.org -all"
    dkim = f"k=rsa; p={KEY_MAILGUN}"
    mail = [
        f'@ TXT "{spf[:10]}" "{spf[10:]}"',
        '@ TXT "hosted-email-verify=abc"',
        f'smtp._domainkey TXT "{dkim[:100]}" "{dkim[100:300]}" "{dkim[300:]}"',
        f'_dmarc TXT "v=DMARC1; p=quarantine; " "rua=mailto:dmarc@{domain}"',
        "@ MX 10 aspmx1.migadu.com.", "@ MX 20 aspmx2.migadu.com.",
        *(f"key{i}._domainkey CNAME key{i}.{domain}._domainkey.migadu.com." for i in (1, 2, 3)),
        "autoconfig CNAME autoconfig.migadu.com.",
        "_autodiscover._tcp SRV 0 1 443 autodiscover.migadu.com.",
        "_submissions._tcp SRV 0 1 465 smtp.migadu.com.",
        "_imaps._tcp SRV 0 1 993 imap.migadu.com.",
        "_pop3s._tcp SRV 0 1 995 pop.migadu.com.",
    ]
    foreign = FOREIGN.replace('@ TXT "google', '@ 3600 TXT "google')  # one TTL per rrset
    lab.publish(domain, foreign + "\n".join(
        f"{line.split()[0]} 3600 {line.split(' ', 1)[1]}" for line in mail), updatable=True)
    assert len(lab.rrset(f"smtp._domainkey.{domain}", "TXT")[0].split('" "')) == 3
    r = dns(tmp_path, lab, "plan", "--detailed-exitcode")
    assert r.code == 0, r.all


def test_relay_switch_end_to_end(tmp_path: Path, relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub3.test"
    lab.publish(domain, FOREIGN, updatable=True)
    before = foreign_state(lab, domain)
    config(tmp_path, lab, domain, relays="[mailgun]")
    assert apply(tmp_path, lab).code == 0
    config(tmp_path, lab, domain, relays="[brevo]")  # the one-line change
    data = plan_json(tmp_path, lab)
    changes = sorted((c["action"], c["name"], c["type"]) for c in data["zones"][0]["changes"])
    assert changes == [("create", f"mail._domainkey.{domain}", "TXT"),
                       ("delete", f"smtp._domainkey.{domain}", "TXT"),
                       ("update", domain, "TXT")]
    apex = next(c for c in data["zones"][0]["changes"] if c["name"] == domain)
    old_spf = [v for v in apex["old"] if v.startswith("v=spf1")]
    new_spf = [v for v in apex["new"] if v.startswith("v=spf1")]
    assert old_spf == ["v=spf1 include:spf.migadu.com include:mailgun.org -all"]
    assert new_spf == ["v=spf1 include:spf.migadu.com include:spf.brevo.com -all"]
    assert "brevo-code:brevo123" in apex["new"]
    assert apex["kept"] == ["google-site-verification=abc123"]
    delete = next(c for c in data["zones"][0]["changes"] if c["action"] == "delete")
    assert "mailgun" in delete["why"]
    refused = apply(tmp_path, lab)  # not a terminal, no --yes: the delete is not confirmed
    assert refused.code == 4, refused.all
    assert "--yes" in refused.err and lab.rrset(f"smtp._domainkey.{domain}", "TXT")
    done = apply(tmp_path, lab, "--yes")
    assert done.code == 0, done.all
    assert lab.rrset(f"smtp._domainkey.{domain}", "TXT") == []
    assert foreign_state(lab, domain) == before
    check = dns(tmp_path, lab, "check", domain, "--resolver", lab.resolver, "--json")
    assert check.code == 0, check.all
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 0


def test_ttl_lowering_is_a_planned_update(tmp_path: Path, relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub4.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    assert apply(tmp_path, lab).code == 0
    data = plan_json(tmp_path, lab, "--ttl", "300")
    changes = data["zones"][0]["changes"]
    assert changes and all(c["action"] == "update" and c["old_ttl"] == 3600
                           and c["new_ttl"] == 300 for c in changes)
    mx = next(c for c in changes if c["type"] == "MX")
    assert mx["old"] == mx["new"]  # a TTL-only change
    assert apply(tmp_path, lab, "--ttl", "300", "--force").code == 0
    assert lab.ttl(domain, "MX") == 300 and lab.ttl(f"key1._domainkey.{domain}", "CNAME") == 300
    assert lab.ttl(f"www.{domain}", "A") == 300 or lab.rrset(f"www.{domain}", "A")
    assert dns(tmp_path, lab, "plan", "--ttl", "300", "--detailed-exitcode").code == 0
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 2  # back to 3600 later


def test_wrong_tsig_key_is_one_line_naming_domain_host_and_reference(
        tmp_path: Path, dns_lab: DnsLab) -> None:
    lab, domain = dns_lab, "pub5.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    wrong = "c2VjcmV0LXRoYXQtaXMtd3Jvbmctc2VjcmV0LXRoYXQtaXMtd3Jvbmc="
    for command in ("plan", "apply"):
        r = run_cli("dns", command, cwd=tmp_path, env=env(lab, TSIG_SECRET=wrong))
        assert r.code == 3, r.all
        lines = r.err.strip().splitlines()
        assert len(lines) == 1, r.err
        assert domain in lines[0] and "'knot'" in lines[0] and "${env:TSIG_SECRET}" in lines[0]
        assert "signature" in lines[0] and wrong not in r.all and lab.tsig_secret not in r.all
        assert "Traceback" not in r.all


def test_zone_missing_and_server_down(tmp_path: Path, dns_lab: DnsLab) -> None:
    from tests.fixtures.dnsserver import free_port

    lab = dns_lab
    config(tmp_path, lab, "nozone.test")
    r = dns(tmp_path, lab, "plan")
    assert r.code == 3 and "nozone.test" in r.err and "not served there" in r.err, r.all
    config(tmp_path, lab, "nozone.test", port=free_port())
    r = dns(tmp_path, lab, "plan")
    assert r.code == 3 and "connection refused" in r.err, r.all
    assert len(r.err.strip().splitlines()) == 1


def test_safety_limit_refuses_unless_force_and_checksum_pins_the_plan(
        tmp_path: Path, relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub6.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    assert apply(tmp_path, lab).code == 0
    reviewed = plan_json(tmp_path, lab, "--ttl", "600")["checksum"]
    r = apply(tmp_path, lab, "--ttl", "600")  # 13 of 13 records updated
    assert r.code == 4 and "exceed the limit of 30%" in r.err and "--force" in r.err, r.all
    assert lab.ttl(domain, "MX") == 3600
    r = apply(tmp_path, lab, "--ttl", "900", "--force", "--checksum", reviewed)
    assert r.code == 4 and "not the one reviewed" in r.err, r.all
    assert lab.ttl(domain, "MX") == 3600
    r = apply(tmp_path, lab, "--ttl", "600", "--force", "--checksum", reviewed)
    assert r.code == 0, r.all
    assert lab.ttl(domain, "MX") == 600


def test_markdown_and_usage_errors(tmp_path: Path, relay_world: DnsLab) -> None:
    lab, domain = relay_world, "pub7.test"
    lab.publish(domain, "", updatable=True)
    config(tmp_path, lab, domain)
    md = dns(tmp_path, lab, "plan", "--markdown")
    assert md.code == 0 and md.out.startswith("## mailctl dns plan") and "| + |" in md.out
    for args, message in [(["plan", "--json", "--markdown"], "exclude each other"),
                          (["plan", "--ttl", "5"], "--ttl"),
                          (["apply", "--checksum", "abc"], "not a plan checksum"),
                          (["plan", "-f", "missing.yaml"], "no such file")]:
        r = dns(tmp_path, lab, *args)
        assert r.code == 64, (args, r.all)
        assert message in r.err and "Traceback" not in r.err


def test_undeclared_domain_and_unknown_host_are_config_errors(tmp_path: Path,
                                                              dns_lab: DnsLab) -> None:
    config(tmp_path, dns_lab, "pub8.test")
    r = dns(tmp_path, dns_lab, "plan", "other.test")
    assert r.code == 1 and "other.test is not declared" in r.err
    text = (tmp_path / "mailctl.yaml").read_text().replace("host: knot", "host: nosuch")
    (tmp_path / "mailctl.yaml").write_text(text)
    r = dns(tmp_path, dns_lab, "plan")
    assert r.code == 1 and "unknown DNS host 'nosuch'" in r.err, r.all


def test_clean_zone_cache_never_hides_a_change(tmp_path: Path, relay_world: DnsLab) -> None:
    """A no-change plan remembers the zone's SOA serial; an edit at the host or in the
    config is still seen (and the file holds no secret, 0600 in a 0700 directory)."""
    lab, domain = relay_world, "pub9.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    assert apply(tmp_path, lab).code == 0
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 0  # full read, remembered
    cache = tmp_path / ".mailctl" / "dns-clean-zones.json"
    assert os.stat(cache).st_mode & 0o777 == 0o600
    assert os.stat(cache.parent).st_mode & 0o777 == 0o700
    assert lab.tsig_secret not in cache.read_text()
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 0  # from the serial
    # someone deletes the DKIM key at the host: the serial moves, the plan sees it
    records = [line for line in _served_zone(lab, domain) if "smtp._domainkey" not in line]
    lab.publish(domain, "\n".join(records), updatable=True)
    r = dns(tmp_path, lab, "plan", "--json")
    changes = json.loads(r.out)["zones"][0]["changes"]
    assert [(c["action"], c["name"]) for c in changes] == [
        ("create", f"smtp._domainkey.{domain}")]
    assert apply(tmp_path, lab).code == 0
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 0
    # a config change under the same serial is seen too
    config(tmp_path, lab, domain, relays="[]")
    assert dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 2


def _served_zone(lab: DnsLab, zone: str) -> list[str]:
    """The zone as Knot serves it now (AXFR with the lab's key), SOA and NS left out."""
    import dns.query
    import dns.tsigkeyring
    import dns.zone

    keyring = dns.tsigkeyring.from_text({lab.tsig_name: lab.tsig_secret})
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone, port=lab.auth_port, keyring=keyring,
                                        keyalgorithm="hmac-sha256"))
    return [f"{name} {ttl} {rdata.rdtype.name} {rdata.to_text()}"
            for name, ttl, rdata in z.iterate_rdatas()
            if rdata.rdtype.name not in ("SOA", "NS")]


def test_a_silent_no_op_is_an_error_and_other_zones_still_apply(
        tmp_path: Path, relay_world: DnsLab) -> None:
    """Knot answers NOERROR but adds no CNAME beside other data: re-read, reported, exit 3;
    the other zone of the same apply is applied and says so."""
    lab = relay_world
    lab.publish("pub10.test", FOREIGN, updatable=True)
    lab.publish("pub11.test", FOREIGN + '\nautoconfig TXT "someone else\'s"', updatable=True)
    cfg = config(tmp_path, lab, "pub10.test")
    text = cfg.read_text()
    block = text[text.index("  pub10.test:"):]
    cfg.write_text(text + block.replace("pub10.test", "pub11.test"))
    r = apply(tmp_path, lab)
    assert r.code == 3, r.all
    assert "pub10.test: 12 change(s) applied at knot" in r.err
    assert "pub11.test" in r.err and "did not take effect" in r.err and "autoconfig" in r.err
    assert lab.rrset("autoconfig.pub10.test", "CNAME") == ["autoconfig.migadu.com."]
    assert lab.rrset("autoconfig.pub11.test", "TXT") == ['"someone else\'s"']


def test_at_a_terminal_apply_asks_before_deleting(tmp_path: Path, relay_world: DnsLab) -> None:
    import pty
    import subprocess
    import sys

    lab, domain = relay_world, "pub12.test"
    lab.publish(domain, FOREIGN, updatable=True)
    config(tmp_path, lab, domain)
    assert apply(tmp_path, lab).code == 0
    config(tmp_path, lab, domain, relays="[brevo]")  # the mailgun DKIM key is to be deleted

    def at_terminal(answer: str) -> subprocess.CompletedProcess[str]:
        master, slave = pty.openpty()
        os.write(master, answer.encode())
        try:
            return subprocess.run(
                [sys.executable, "-m", "mailctl", "dns", "apply", "--wait", "0"],
                cwd=tmp_path, stdin=slave, capture_output=True, text=True, timeout=120,
                env={**os.environ, **env(lab), "NO_COLOR": "1"})
        finally:
            os.close(master)
            os.close(slave)

    no = at_terminal("n\n")
    assert no.returncode == 4 and "not confirmed" in no.stderr, no.stderr
    assert lab.rrset(f"smtp._domainkey.{domain}", "TXT")
    yes = at_terminal("y\n")
    assert yes.returncode == 0, yes.stderr
    assert lab.rrset(f"smtp._domainkey.{domain}", "TXT") == []
