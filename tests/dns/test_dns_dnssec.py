"""DNSSEC status from the resolver's AD bit: info only, never a failure."""

from __future__ import annotations

from mailctl.dns.dnssec import AD, verdict
from mailctl.dns.findings import Severity, Status
from mailctl.dns.resolver import Answer, Outcome
from tests.dns.conftest import check, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab


def test_answers_without_ad_bit_are_reported_as_info(world: DnsLab) -> None:
    d = "unsigned.test"
    world.publish(d, migadu_zone(d))
    report = check(world, migadu_spec(d))
    f = finding(report, "dnssec.not_validated")
    assert f.severity is Severity.INFO and "DANE" in f.message
    assert report.status is Status.OK
    assert report.queries == check(world, migadu_spec(d)).queries  # no query of its own


def test_ad_bit_means_validated_and_failures_say_nothing() -> None:
    code, message, fix = verdict(Answer("a.test", "MX", Outcome.OK, flags=AD)) or ("", "", "")
    assert code == "dnssec.validated" and "validated" in message and fix is None
    assert verdict(Answer("a.test", "MX", Outcome.SERVFAIL)) is None
    nodata = verdict(Answer("a.test", "MX", Outcome.NODATA, flags=AD))
    assert nodata is not None and nodata[0] == "dnssec.validated"  # validated denial
