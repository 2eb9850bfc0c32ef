"""MX set, MX host sanity, PTR/FCrDNS, apex CNAME, provider records."""

from __future__ import annotations

from mailctl.dns.findings import Severity, Status
from mailctl.dns.records import DomainDnsSpec
from tests.dns.conftest import check, codes, finding, migadu_spec, migadu_zone, self_hosted_zone
from tests.fixtures.dnsserver import DnsLab


def test_mx_at_the_old_provider(world: DnsLab) -> None:
    d = "mxold.test"
    world.publish(d, migadu_zone(d, mx1="@ MX 10 mx.oldrelay.test.", mx2=None))
    f = finding(check(world, migadu_spec(d)), "mx.mismatch")
    assert "missing aspmx1.migadu.com, aspmx2.migadu.com" in f.message
    assert "not in the profile: mx.oldrelay.test" in f.message
    assert f.found == "10 mx.oldrelay.test"


def test_missing_mx_null_mx_and_mixed_null(world: DnsLab) -> None:
    d = "mxnull.test"
    world.publish(d, migadu_zone(d, mx1=None, mx2=None))
    assert "mx.missing" in codes(check(world, migadu_spec(d)))
    world.publish(d, migadu_zone(d, mx1="@ MX 0 .", mx2=None))
    assert "mx.null" in codes(check(world, migadu_spec(d)))
    world.publish(d, migadu_zone(d, mx1="@ MX 0 ."))
    assert "mx.null_mixed" in codes(check(world, migadu_spec(d)))


def test_mx_host_is_cname_or_has_no_address(world: DnsLab) -> None:
    d = "mxhost.test"
    world.publish(d, self_hosted_zone(d, a="mail CNAME box.oldrelay.test.\nbox2 A 198.51.100.9"))
    report = check(world, DomainDnsSpec(d, profile="dms"))
    assert finding(report, "mx.cname").severity is Severity.ERROR
    assert "mx.no_address" in codes(report)  # box.oldrelay.test does not exist


def test_fcrdns_for_self_hosted_mx(world: DnsLab) -> None:
    d = "ptr.test"
    world.publish(d, self_hosted_zone(d, a="mail A 198.51.100.40\nwrong A 198.51.100.99"))
    world.publish("100.51.198.in-addr.arpa", f"40 PTR mail.{d}.")
    report = check(world, DomainDnsSpec(d, profile="dms"))
    assert not codes(report) & {"ptr.missing", "ptr.fcrdns"}, report.codes()
    world.publish("100.51.198.in-addr.arpa", f"40 PTR wrong.{d}.")
    f = finding(check(world, DomainDnsSpec(d, profile="dms")), "ptr.fcrdns")
    assert f.name == "40.100.51.198.in-addr.arpa" and "198.51.100.40" in f.message
    world.publish("100.51.198.in-addr.arpa", "")
    assert "ptr.missing" in codes(check(world, DomainDnsSpec(d, profile="dms")))
    # hosted providers own their IPs: no PTR check
    world.publish(d + "2", migadu_zone(d + "2"))


def test_verification_and_optional_records(world: DnsLab) -> None:
    d = "extras.test"
    world.publish(d, migadu_zone(d, verify=None, autoconfig=None))
    report = check(world, migadu_spec(d))
    missing = {f.name: f.severity for f in report.findings if f.code == "record.missing"}
    assert missing == {d: Severity.ERROR, f"autoconfig.{d}": Severity.INFO}
    world.publish(d, migadu_zone(d, verify='@ TXT "hosted-email-verify=zzz"'))
    f = finding(check(world, migadu_spec(d)), "record.mismatch")
    assert f.expected == '"hosted-email-verify=abc"'


def test_mail_domain_that_is_a_cname(world: DnsLab) -> None:
    # Knot loads CNAME-beside-other-data with soft semantic checks, as a sloppy server would
    world.publish("cnameside.test", "mx CNAME good.test.\nmx MX 10 aspmx1.migadu.com.")
    report = check(world, migadu_spec("mx.cnameside.test"))
    f = finding(report, "cname.conflict")
    assert f.severity is Severity.ERROR and f.found == "CNAME good.test."
    world.publish("good.test", migadu_zone("good.test"))
    assert "cname.conflict" not in codes(check(world, migadu_spec("good.test")))


def test_zone_nobody_serves_is_unknown(world: DnsLab) -> None:
    report = check(world, migadu_spec("nowhere.example"))
    assert report.status is Status.UNKNOWN
    assert {f.severity for f in report.findings} == {Severity.UNKNOWN}
