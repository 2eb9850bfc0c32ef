"""Correct domains, set up exactly as a provider and a relay document them, check clean.

Each test is one false alarm found on domains nobody here wrote; the real
problem next to it must still be reported, at the right severity.
"""

from __future__ import annotations

import dataclasses

import pytest

from mailctl.dns.context import HttpsOptions
from mailctl.dns.findings import Severity, Status
from tests.dns.conftest import KEY_2048, check, codes, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab, free_port

RELAY_SPF = {"brevo": "spf.brevo.com", "mailgun": "mailgun.org", "postmark": "spf.mtasv.net",
             "sendgrid": "sendgrid.net", "ses": "amazonses.com", "migadu": "spf.migadu.com"}


@pytest.fixture(scope="module")
def relays_world(world: DnsLab) -> DnsLab:
    for zone, name in (("mailgun.org", "@"), ("mtasv.net", "spf"), ("sendgrid.net", "@"),
                       ("amazonses.com", "@")):
        world.publish(zone, f'{name} TXT "v=spf1 ip4:203.0.113.{len(zone)}/32 -all"')
    return world


@pytest.mark.parametrize("relay", sorted(RELAY_SPF))
def test_a_relay_used_for_spf_alone_is_clean(relays_world: DnsLab, relay: str) -> None:
    """Every relay profile: its DKIM and verification records are optional (info) unless
    the config declares them, and never take the hosting provider's `verify` code."""
    d = f"relay-{relay}.test"
    include = "" if relay == "migadu" else f" include:{RELAY_SPF[relay]}"
    relays_world.publish(d, migadu_zone(
        d, spf=f'@ TXT "v=spf1 include:spf.migadu.com{include} -all"'))
    report = check(relays_world, migadu_spec(d, relays=(relay,)))
    assert report.status is Status.OK, [f.to_dict() for f in report.findings
                                        if f.severity is not Severity.INFO]
    for f in report.findings:
        assert "brevo-code:abc" not in (f.expected or "")  # the provider's code, not brevo's


def test_declared_relay_records_are_required_with_the_relays_own_params(
        relays_world: DnsLab) -> None:
    d = "relay-declared.test"
    relays_world.publish(d, migadu_zone(
        d, spf='@ TXT "v=spf1 include:spf.migadu.com include:spf.brevo.com -all"'))
    spec = migadu_spec(d, relays=("brevo",),
                       relay_params={"brevo": {"verify": "b-42", "dkim_key": KEY_2048}})
    report = check(relays_world, spec)
    missing = [f for f in report.findings if f.severity is Severity.ERROR]
    assert {f.code for f in missing} == {"dkim.missing", "record.missing"}, missing
    assert finding(report, "record.missing").expected == '"brevo-code:b-42"'
    relays_world.publish(d, migadu_zone(
        d, spf='@ TXT "v=spf1 include:spf.migadu.com include:spf.brevo.com -all"',
        extra=f'@ TXT "brevo-code:b-42"\nmail._domainkey TXT "k=rsa;p={KEY_2048}"'))
    assert check(relays_world, spec).status is Status.OK


def test_two_spf_records_report_the_permerror_and_consequences_as_consequences(
        relays_world: DnsLab) -> None:
    d = "twospf-conseq.test"
    relays_world.publish(d, migadu_zone(
        d, extra='@ TXT "v=spf1 include:spf.brevo.com -all"'))
    report = check(relays_world, migadu_spec(d, relays=("brevo",)))
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    assert [f.code for f in errors] == ["spf.multiple"], [f.to_dict() for f in errors]
    consequence = finding(report, "spf.missing_include")
    assert consequence.severity is Severity.INFO and "one of the 2 SPF records" in \
        consequence.message


def test_an_include_without_spf_is_a_permerror_error(relays_world: DnsLab) -> None:
    d = "voidinclude.test"
    relays_world.publish(d, migadu_zone(
        d, spf=f'@ TXT "v=spf1 include:spf.migadu.com include:gone.{d} -all"'))
    report = check(relays_world, migadu_spec(d))
    f = finding(report, "spf.include_void")
    assert f.severity is Severity.ERROR and "permerror" in f.message
    assert f"include:gone.{d}" in f.message
    assert "spf.void_lookup" not in codes(report)  # not downplayed as a warning


def test_nested_includes_are_not_blamed_on_the_domain(relays_world: DnsLab) -> None:
    d = "nested.test"
    relays_world.publish(d, migadu_zone(
        d, spf=f'@ TXT "v=spf1 include:spf.migadu.com include:_spf.{d} -all"',
        extra='_spf TXT "v=spf1 include:spf.brevo.com include:mailgun.org -all"'))
    report = check(relays_world, migadu_spec(d))
    about = [f for f in report.findings if f.code.startswith("spf.")
             and ("brevo" in f.message or "mailgun" in f.message)]
    assert about == []  # the user publishes include:_spf.nested.test, not those
    assert [f.message for f in report.findings if f.code == "spf.unexpected_include"] == [
        f"include:_spf.{d} is not part of the profile"]


def test_unreachable_mta_sts_policy_host_is_unknown_not_an_error(
        relays_world: DnsLab) -> None:
    from mailctl.dns.stspolicy import policy_id, render_policy

    d = "stsdown.test"
    policy = render_policy("enforce", ["aspmx1.migadu.com", "aspmx2.migadu.com"], 604800)
    relays_world.publish(d, migadu_zone(d, extra=(
        f'mta-sts A 127.0.0.1\n_mta-sts TXT "v=STSv1; id={policy_id(policy)}"\n'
        f'_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@{d}"')))
    https = HttpsOptions(port=free_port(), timeout=1.0)  # nothing listens there
    report = check(relays_world, dataclasses.replace(migadu_spec(d), mta_sts_mode="enforce"),
                   https)
    f = finding(report, "mta_sts.fetch_unknown")
    assert f.severity is Severity.UNKNOWN and "mta_sts.fetch_failed" not in codes(report)
    assert report.status is Status.UNKNOWN  # exit 3, as for a DNS timeout
