"""DMARC for sub-domains: the organisational domain's record applies (RFC 7489 §6.6.3)."""

from __future__ import annotations

import pytest

from mailctl.dns.findings import Severity, Status
from mailctl.dns.psl import organisational_domain, same_organisation
from tests.dns.conftest import check, codes, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab


@pytest.mark.parametrize(
    ("name", "org"),
    [("a.b.example.co.uk", "example.co.uk"), ("example.com", "example.com"),
     ("mail.shop.example.com.", "example.com"), ("someone.github.io", "someone.github.io"),
     ("x.someone.github.io", "someone.github.io"), ("co.uk", "co.uk"),
     ("shop.example.test", "example.test")],
)
def test_organisational_domain_uses_the_bundled_public_suffix_list(name: str, org: str) -> None:
    assert organisational_domain(name) == org


def test_same_organisation() -> None:
    assert same_organisation("a.example.co.uk", "b.example.co.uk")
    assert not same_organisation("example.co.uk", "other.co.uk")
    assert not same_organisation("alice.github.io", "bob.github.io")


def publish_pair(lab: DnsLab, org: str, org_dmarc: str | None) -> str:
    """`org` with `org_dmarc` at _dmarc, and shop.`org` (its own zone) without any."""
    lab.publish(org, migadu_zone(org, dmarc=org_dmarc and f"_dmarc TXT {org_dmarc}"))
    sub = f"shop.{org}"
    lab.publish(sub, migadu_zone(sub, dmarc=None))
    return sub


def test_subdomain_inherits_the_organisational_sp(world: DnsLab) -> None:
    sub = publish_pair(world, "orgsp.test", '"v=DMARC1; p=reject; sp=quarantine"')
    report = check(world, migadu_spec(sub))
    assert report.status is Status.OK, report.codes()
    inherited = finding(report, "dmarc.inherited")
    assert inherited.severity is Severity.INFO and "(sp=quarantine)" in inherited.message
    assert inherited.found == "v=DMARC1; p=reject; sp=quarantine"


def test_subdomain_inherits_p_when_there_is_no_sp(world: DnsLab) -> None:
    sub = publish_pair(world, "orgp.test", '"v=DMARC1; p=reject"')
    report = check(world, migadu_spec(sub))
    assert "dmarc.missing" not in codes(report)
    assert "(p=reject)" in finding(report, "dmarc.inherited").message


def test_inherited_sp_none_is_a_weak_policy_for_the_subdomain(world: DnsLab) -> None:
    sub = publish_pair(world, "orgnone.test", '"v=DMARC1; p=reject; sp=none"')
    report = check(world, migadu_spec(sub))
    weak = finding(report, "dmarc.policy_none")
    assert weak.severity is Severity.WARNING and weak.name == "_dmarc.orgnone.test"
    assert "inherits sp=none from orgnone.test" in weak.message
    weaker = finding(check(world, migadu_spec(sub, dmarc_policy="reject")), "dmarc.inherited")
    assert weaker.expected == "v=DMARC1; p=reject"


def test_inherited_policy_weaker_than_configured(world: DnsLab) -> None:
    sub = publish_pair(world, "orgweak.test", '"v=DMARC1; p=reject; sp=quarantine"')
    f = finding(check(world, migadu_spec(sub, dmarc_policy="reject")), "dmarc.policy_weaker")
    assert f.message == "sp=quarantine is weaker than the configured p=reject"


def test_no_record_at_subdomain_nor_organisation_is_missing(world: DnsLab) -> None:
    sub = publish_pair(world, "orgmissing.test", None)
    f = finding(check(world, migadu_spec(sub)), "dmarc.missing")
    assert f.name == f"_dmarc.{sub}" and "organisational domain orgmissing.test" in f.message


def test_organisational_lookup_failing_is_unknown(world: DnsLab) -> None:
    sub = publish_pair(world, "orgfail.test", None)
    world.publish("orgfail.test", migadu_zone(
        "orgfail.test", dmarc="_dmarc CNAME _dmarc.unreachable.example."))
    report = check(world, migadu_spec(sub))
    assert finding(report, "dmarc.unknown").name == "_dmarc.orgfail.test"
    assert "dmarc.missing" not in codes(report)


def test_inherited_rua_is_authorised_for_the_organisational_domain(world: DnsLab) -> None:
    sub = publish_pair(world, "orgrua.test", '"v=DMARC1; p=reject; rua=mailto:r@noauth.test"')
    f = finding(check(world, migadu_spec(sub)), "dmarc.report_unauthorised")
    assert f.expected == 'TXT at orgrua.test._report._dmarc.noauth.test: "v=DMARC1"'


def test_report_destination_in_a_sibling_domain_needs_no_authorisation(world: DnsLab) -> None:
    d = "shop.orgsib.test"
    world.publish("orgsib.test", '_dmarc TXT "v=DMARC1; p=reject"')
    world.publish(d, migadu_zone(d, dmarc='_dmarc TXT "v=DMARC1; p=quarantine; '
                                          'rua=mailto:dmarc@reports.orgsib.test"'))
    report = check(world, migadu_spec(d))
    assert "dmarc.report_unauthorised" not in codes(report), report.codes()
    assert report.status is Status.OK
