"""`mailctl dns records` reads the domain's provider and `dns:` block from mailctl.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.dnsserver import DnsLab


def test_records_follow_the_yaml_provider_and_relay(tmp_path: Path) -> None:
    write_config(tmp_path, """
        providers:
          local: {type: dms, path: ./dms}
        domains:
          shop.test:
            provider: local
            dns:
              relays: [brevo]
              mx_hosts: [mx1.shop.test]
    """)
    r = run_cli("dns", "records", "shop.test", "--format", "json", cwd=tmp_path)
    assert r.code == 0, r.all
    records = json.loads(r.out)
    rows = records["records"] if isinstance(records, dict) else records
    text = json.dumps(rows)
    assert "mx1.shop.test" in text  # self-hosted MX from the dns block
    assert "include:spf.brevo.com" in text  # the relay's SPF include
    r = run_cli("dns", "records", "other.test", cwd=tmp_path)
    assert r.code == 1
    assert "other.test is not declared" in r.err


def test_dns_check_needs_no_provider_secret(tmp_path: Path, world: DnsLab) -> None:
    """A DNS monitor must not hold admin credentials: `dns check -f` reads DNS only."""
    from tests.dns.conftest import migadu_zone

    world.publish("nosecret.test", migadu_zone("nosecret.test"))
    write_config(tmp_path, """
        providers:
          hosted: {type: migadu, user: admin@nosecret.test, api_key: "${env:MIGADU_ADMIN_KEY}"}
        domains:
          nosecret.test:
            provider: hosted
            dns: {params: {verify: abc}, dmarc: {rua: [dmarc@nosecret.test]}}
    """)
    r = run_cli("dns", "check", "nosecret.test", "-f", "mailctl.yaml", "--resolver",
                world.resolver, "--fail-on", "error", cwd=tmp_path)
    assert r.code == 0, r.all
    assert "MIGADU_ADMIN_KEY" not in r.err
    # the commands that do talk to the provider still require it, with the reason
    r = run_cli("plan", "-f", "mailctl.yaml", cwd=tmp_path)
    assert r.code == 1 and "MIGADU_ADMIN_KEY is not set" in r.err, r.all
    # and a literal secret is still a config error for every command
    text = (tmp_path / "mailctl.yaml").read_text().replace('"${env:MIGADU_ADMIN_KEY}"',
                                                            "hunter2-literal")
    (tmp_path / "mailctl.yaml").write_text(text)
    r = run_cli("dns", "check", "nosecret.test", "-f", "mailctl.yaml", "--resolver",
                world.resolver, cwd=tmp_path)
    assert r.code == 1 and "must be a reference" in r.err and "hunter2" not in r.all
