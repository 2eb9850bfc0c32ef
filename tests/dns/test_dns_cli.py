"""The commands as a user runs them: formats, exit codes, key generation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.dns import app, dkim_app
from mailctl.dns.dkim import inspect_key
from mailctl.dns.profiles import all_profiles
from mailctl.dns.records import DomainDnsSpec, expected_records, lint_records, txt_chunks
from mailctl.dns.settings import DnsSettings, spec_from_settings
from tests.dns.conftest import migadu_zone
from tests.fixtures.dnsserver import DnsLab

runner = CliRunner()


def test_check_exit_codes_and_json(world: DnsLab) -> None:
    world.publish("cliok.test", migadu_zone("cliok.test"))
    world.publish("clibad.test", migadu_zone("clibad.test", key3=None))
    base = ["check", "--json", "--resolver", world.resolver, "--ns-check",
            "--ns-port", str(world.auth_port), "--profile", "migadu", "--param", "verify=abc"]
    ok = runner.invoke(app, [*base, "cliok.test"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["domains"][0]["status"] == "ok"
    bad = runner.invoke(app, [*base, "cliok.test", "clibad.test"])
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    finding = data["domains"][1]["findings"][0]
    assert finding["code"] == "dkim.missing"
    assert set(finding) == {"code", "severity", "name", "message", "found", "expected", "fix"}
    unknown = runner.invoke(app, [*base, "--timeout", "0.3", "nowhere.example"])
    assert unknown.exit_code == 3
    table = runner.invoke(app, ["check", "--resolver", world.resolver, "--profile", "migadu",
                                "clibad.test"])
    assert table.exit_code == 1 and "dkim.missing" in table.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [(["check", "--resolver", "dns.example", "a.test"], "not an IP address", 64),
     (["check", "--profile", "nosuch", "a.test"], "unknown provider profile 'nosuch'", 1),
     (["records", "--relay", "nosuch", "a.test"], "unknown relay profile 'nosuch'", 1),
     (["records", "--format", "xml", "a.test"], "(expected one of table, json", 64),
     (["records", "--param", "novalue", "a.test"], "(expected KEY=VALUE", 64),
     (["records", "not a domain"], "not a fully qualified domain name", 64)],
)
def test_user_mistakes_are_one_line(args: list[str], message: str, code: int) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_zone_output_is_accepted_by_knot_and_reads_back(dns_lab: DnsLab) -> None:
    key = "A" * 400  # longer than one TXT string
    result = runner.invoke(app, ["records", "--format", "zone", "--mta-sts", "enforce",
                                 "--profile", "dms", "zoneout.test"])
    assert result.exit_code == 0, result.output
    zone = result.stdout.replace("$ORIGIN zoneout.test.\n", "")
    zone += f'\nlong TXT "v=DKIM1; k=rsa; p={key[:250]}" "{key[250:]}"'
    dns_lab.publish("zoneout.test", zone)  # Knot refuses zones with >255-byte strings
    import dns.resolver

    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = ["127.0.0.1"], dns_lab.auth_port
    spf = [b"".join(r.strings).decode() for r in res.resolve("zoneout.test", "TXT")]
    assert spf == ["v=spf1 mx ~all"]
    assert str(res.resolve("zoneout.test", "MX")[0]) == "10 mail.zoneout.test."


def test_txt_chunks_split_at_255_bytes_without_adding_anything() -> None:
    value = "v=DKIM1; k=rsa; p=" + "B" * 600 + "é"
    chunks = txt_chunks(value)
    assert [len(c.encode()) for c in chunks] == [255, 255, 110]
    assert "".join(chunks) == value
    assert txt_chunks('say "hi"') == ['say \\"hi\\"']


def test_octodns_and_json_formats() -> None:
    out = runner.invoke(app, ["records", "--format", "octodns", "--profile", "migadu",
                              "--param", "verify=abc", "o.test"])
    import yaml

    data = yaml.safe_load(out.stdout)
    assert data[""][0]["type"] == "MX"
    assert {"preference": 10, "exchange": "aspmx1.migadu.com."} in data[""][0]["values"]
    txt = next(e for e in data[""] if e["type"] == "TXT")
    assert "v=spf1 include:spf.migadu.com -all" in txt["values"]
    assert data["_dmarc"]["values"] == ["v=DMARC1\\; p=quarantine"]
    assert data["key1._domainkey"] == {"type": "CNAME", "ttl": 3600,
                                       "value": "key1.o.test._domainkey.migadu.com."}
    js = json.loads(runner.invoke(app, ["records", "--format", "json", "--profile", "migadu",
                                        "o.test"]).stdout)
    verify = next(r for r in js if r["purpose"] == "verification")
    assert verify["value"] is None  # no --param verify: account-specific, presence only


def test_dkim_generate_writes_private_key_and_prints_split_record(tmp_path: Path) -> None:
    key_file = tmp_path / "mail.key"
    result = runner.invoke(dkim_app, ["generate", "example.org", "--selector", "mail",
                                      "--key-file", str(key_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert inspect_key(data["value"]).bits == 2048
    assert data["zone"].count('"') == 4  # one RR, two character-strings
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in key_file.read_text()
    again = runner.invoke(dkim_app, ["generate", "example.org", "--selector", "mail",
                                     "--key-file", str(key_file)])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_mta_sts_command_prints_policy_and_matching_id() -> None:
    from mailctl.dns.stspolicy import policy_id

    out = runner.invoke(app, ["mta-sts", "--json", "--mode", "enforce", "--profile", "migadu",
                              "x.test"])
    data = json.loads(out.stdout)
    assert "mx: aspmx1.migadu.com" in data["policy"]
    assert data["txt"] == f"v=STSv1; id={policy_id(data['policy'])}"


def test_every_packaged_profile_parses_and_yields_a_valid_record_set() -> None:
    providers, relays = all_profiles("providers"), all_profiles("relays")
    assert {"migadu", "dms", "mailcow", "mailu", "stalwart"} <= set(providers)
    assert {"migadu", "brevo", "mailgun", "ses", "sendgrid", "postmark", "generic"} <= set(relays)
    for name in providers:
        spec = DomainDnsSpec("p.test", profile=name, relays=tuple(relays), mta_sts_mode="enforce")
        records = expected_records(spec)
        assert lint_records(records) == [], name
        assert sum(r.purpose == "spf" for r in records) == 1


def test_settings_block_defaults_profile_to_provider_type() -> None:
    from pydantic import ValidationError

    spec = spec_from_settings("Ex.ORG", "mailcow", DnsSettings(relays=["brevo"]))
    assert (spec.domain, spec.profile, spec.relays) == ("ex.org", "mailcow", ("brevo",))
    with pytest.raises(ValidationError):
        DnsSettings.model_validate({"relay": ["brevo"]})
    assert spec_from_settings("a.org", "migadu", DnsSettings.model_validate(
        {"mta_sts": {"mode": "enforce"}})).mta_sts_mode == "enforce"


def test_fail_on_error_lets_warnings_pass(world: DnsLab) -> None:
    world.publish("cliwarn.test", migadu_zone(
        "cliwarn.test", dmarc='_dmarc TXT "v=DMARC1; p=none; rua=mailto:d@cliwarn.test"'))
    world.publish("clierr.test", migadu_zone("clierr.test", key1=None))
    base = ["check", "--json", "--resolver", world.resolver, "--profile", "migadu",
            "--param", "verify=abc"]
    default = runner.invoke(app, [*base, "cliwarn.test"])
    assert default.exit_code == 1, default.output  # p=none is a warning: fails by default
    assert json.loads(default.stdout)["domains"][0]["status"] == "problems"
    lenient = runner.invoke(app, [*base, "--fail-on", "error", "cliwarn.test"])
    assert lenient.exit_code == 0, lenient.output
    data = json.loads(lenient.stdout)
    assert data["exit_code"] == 0 and data["domains"][0]["status"] == "ok"
    assert "dmarc.policy_none" in [f["code"] for f in data["domains"][0]["findings"]]
    both = runner.invoke(app, [*base, "--fail-on", "error", "cliwarn.test", "clierr.test"])
    assert both.exit_code == 1
    warn_and_unknown = runner.invoke(app, [*base, "--fail-on", "error", "--timeout", "0.3",
                                           "cliwarn.test", "nowhere.example"])
    assert warn_and_unknown.exit_code == 3
    bad = runner.invoke(app, [*base, "--fail-on", "info", "cliwarn.test"])
    assert bad.exit_code == 64 and "(expected error or warning)" in bad.stderr


def test_octodns_output_loads_in_octodns_and_drops_nothing_silently(tmp_path: Path) -> None:
    """octoDNS's own YamlProvider (order enforced) reads what `--format octodns` prints,
    and every record of the zone output is there or named in a comment."""
    from octodns.provider.yaml import YamlProvider
    from octodns.record import Record
    from octodns.zone import Zone

    args = ["records", "--profile", "migadu", "--relay", "brevo", "--mta-sts", "enforce",
            "--param", "verify=abc", "oct.test"]
    out = runner.invoke(app, [*args, "--format", "octodns"])
    assert out.exit_code == 0, out.output
    (tmp_path / "oct.test.yaml").write_text(out.stdout)
    Record.enable_validators(("legacy",))
    source = YamlProvider("config", directory=str(tmp_path), enforce_order=True,
                          escaped_semicolons=True)
    zone = Zone("oct.test.", [])
    source.populate(zone)
    loaded = {(r.name or "@", r._type) for r in zone.records}
    zone_out = runner.invoke(app, [*args, "--format", "zone"]).stdout
    for line in zone_out.splitlines()[2:]:
        parts = line.lstrip("; ").split()
        name, rtype = parts[0], parts[3]
        assert (name, rtype) in loaded or f"not included, value unknown: {name} {rtype}" in \
            out.stdout, line
    assert ("@", "MX") in loaded and ("_mta-sts", "TXT") in loaded
    assert "# not included, value unknown: mail._domainkey TXT" in out.stdout
    assert zone_out.splitlines()[1] == "; mail records for oct.test, generated by mailctl"
