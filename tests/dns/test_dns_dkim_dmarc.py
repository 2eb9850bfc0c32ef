"""DKIM (selectors from the profile, key parsing and size) and DMARC checks."""

from __future__ import annotations

import pytest

from mailctl.dns.findings import Severity, Status
from mailctl.dns.records import DomainDnsSpec
from tests.dns.conftest import (
    KEY_768,
    KEY_1024,
    KEY_2048,
    check,
    codes,
    finding,
    migadu_spec,
    migadu_zone,
    self_hosted_zone,
    txt,
)
from tests.fixtures.dnsserver import DnsLab


def dms(domain: str, **kw: object) -> DomainDnsSpec:
    return DomainDnsSpec(domain, profile="dms", **kw)  # type: ignore[arg-type]


def test_self_hosted_domain_with_2048_key_is_clean(world: DnsLab) -> None:
    d = "selfok.test"
    world.publish(d, self_hosted_zone(d))
    report = check(world, dms(d))
    assert [f.code for f in report.findings if f.severity is not Severity.INFO] == [
        "ptr.missing"]  # the reverse zone has no PTR for it (checked in test_dns_mx)


def test_missing_selector_from_profile(world: DnsLab) -> None:
    d = "nokey3.test"
    world.publish(d, migadu_zone(d, key3=None))
    f = finding(check(world, migadu_spec(d)), "dkim.missing")
    assert f.name == f"key3._domainkey.{d}" and f.severity is Severity.ERROR
    assert f"key3.{d}._domainkey.migadu.com." in (f.expected or "")


def test_cname_to_wrong_target_and_broken_cname(world: DnsLab) -> None:
    d = "dkimcname.test"
    world.publish(d, migadu_zone(
        d, key1="key1._domainkey CNAME key1.other.test._domainkey.migadu.com.",
        key2=f"key2._domainkey CNAME key2.{d}._domainkey.gone.test."))
    report = check(world, migadu_spec(d))
    mismatched = {f.name for f in report.findings if f.code == "dkim.cname_mismatch"}
    assert mismatched == {f"key1._domainkey.{d}", f"key2._domainkey.{d}"}
    broken = finding(report, "dkim.cname_broken")
    assert broken.name == f"key2._domainkey.{d}" and "nxdomain" in broken.message


@pytest.mark.parametrize(
    ("key", "code", "severity"),
    [(KEY_768, "dkim.key_weak", Severity.ERROR), (KEY_1024, "dkim.key_small", Severity.WARNING)],
)
def test_rsa_key_size(world: DnsLab, key: str, code: str, severity: Severity) -> None:
    d = f"dkim{len(key)}.test"
    record = txt("v=DKIM1; k=rsa; p=" + key)
    world.publish(d, self_hosted_zone(d, dkim=f"mail._domainkey TXT {record}"))
    f = finding(check(world, dms(d)), code)
    assert f.severity is severity


def test_revoked_corrupt_and_split_keys(world: DnsLab) -> None:
    d = "dkimbad.test"
    world.publish(d, self_hosted_zone(d, dkim='mail._domainkey TXT "v=DKIM1; k=rsa; p="'))
    assert "dkim.revoked" in codes(check(world, dms(d)))
    # DKIM ignores a space added at a string joint, but not a stray quote
    bad = KEY_2048[:200] + '\\"' + KEY_2048[200:]
    world.publish(d, self_hosted_zone(
        d, dkim=f'mail._domainkey TXT "v=DKIM1; k=rsa; p={bad[:150]}" "{bad[150:]}"'))
    assert "dkim.key_invalid" in codes(check(world, dms(d)))
    half = len(KEY_2048) // 2
    world.publish(d, self_hosted_zone(
        d, dkim=f'mail._domainkey TXT "v=DKIM1; k=rsa; p={KEY_2048[:half]}"\n'
                f'mail._domainkey TXT "{KEY_2048[half:]}"'))
    assert "dkim.split_records" in codes(check(world, dms(d)))


def test_published_key_differs_from_configured(world: DnsLab) -> None:
    d = "dkimdiff.test"
    world.publish(d, self_hosted_zone(d))
    assert "dkim.key_mismatch" not in codes(check(world, dms(d, dkim_keys={"mail": KEY_2048})))
    f = finding(check(world, dms(d, dkim_keys={"mail": KEY_1024})), "dkim.key_mismatch")
    assert f.severity is Severity.ERROR


def test_dmarc_missing_multiple_and_none(world: DnsLab) -> None:
    d = "dmarc.test"
    world.publish(d, migadu_zone(d, dmarc=None))
    missing = finding(check(world, migadu_spec(d)), "dmarc.missing")
    assert missing.expected == "v=DMARC1; p=quarantine"
    world.publish(d, migadu_zone(d, extra='_dmarc TXT "v=DMARC1; p=reject"'))
    assert "dmarc.multiple" in codes(check(world, migadu_spec(d)))
    world.publish(d, migadu_zone(d, dmarc='_dmarc TXT "v=DMARC1; p=none; pct=50"'))
    report = check(world, migadu_spec(d))
    assert finding(report, "dmarc.policy_none").severity is Severity.WARNING
    assert finding(report, "dmarc.deprecated_tag").severity is Severity.INFO


def test_dmarc_syntax(world: DnsLab) -> None:
    d = "dmarcsyn.test"
    world.publish(d, migadu_zone(d, dmarc='_dmarc TXT "v=DMARC1; p=block; rua=dmarc@x.test"'))
    report = check(world, migadu_spec(d))
    messages = [f.message for f in report.findings if f.code == "dmarc.syntax"]
    assert any("p=block" in m for m in messages)
    assert any("dmarc@x.test" in m for m in messages)


def test_external_report_destination_authorisation(world: DnsLab) -> None:
    d = "dmarcext.test"
    rua = '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:r@{}"'
    world.publish(d, migadu_zone(d, dmarc=rua.format("reports.test")))
    report = check(world, migadu_spec(d, dmarc_policy="reject"))
    assert report.status is Status.OK, report.codes()
    world.publish(d, migadu_zone(d, dmarc=rua.format("noauth.test")))
    report = check(world, migadu_spec(d, dmarc_policy="reject"))
    f = finding(report, "dmarc.report_unauthorised")
    assert f.expected == f'TXT at {d}._report._dmarc.noauth.test: "v=DMARC1"'


def test_dmarc_servfail_is_unknown(world: DnsLab) -> None:
    d = "dmarcfail.test"
    world.publish(d, migadu_zone(d, dmarc='_dmarc CNAME _dmarc.unreachable.example.'))
    report = check(world, migadu_spec(d))
    assert finding(report, "dmarc.unknown").severity is Severity.UNKNOWN
    assert "dmarc.missing" not in codes(report)
    assert report.status is Status.UNKNOWN
