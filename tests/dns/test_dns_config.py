"""`mailctl dns records` reads the domain's provider and `dns:` block from mailctl.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.cli import run_cli, write_config


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
