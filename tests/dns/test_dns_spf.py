"""SPF checks against real zones: limits, loops, the all policy, and relay drift."""

from __future__ import annotations

from mailctl.dns.findings import Severity, Status
from tests.dns.conftest import check, codes, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab


def test_correct_migadu_domain_has_no_findings(world: DnsLab) -> None:
    world.publish("good.test", migadu_zone("good.test"))
    report = check(world, migadu_spec("good.test"))
    assert report.codes() == ["dnssec.not_validated"]  # info only: the lab does not sign zones
    assert report.status is Status.OK
    assert report.queries > 5


def test_relay_drift_mx_moved_spf_still_names_old_relay(world: DnsLab) -> None:
    d = "drift.test"
    world.publish(d, migadu_zone(
        d, spf='@ TXT "v=spf1 include:spf.migadu.com include:spf.sendinblue.com -all"'))
    report = check(world, migadu_spec(d))
    stale = finding(report, "spf.stale_relay")
    assert stale.severity is Severity.WARNING
    assert "spf.sendinblue.com" in stale.message and "Brevo" in stale.message
    assert stale.expected == "v=spf1 include:spf.migadu.com -all"
    assert "remove include:spf.sendinblue.com" in (stale.fix or "")
    assert "mx.mismatch" not in codes(report)
    # configuring the relay makes the same include expected, not stale
    ok = check(world, migadu_spec(d, relays=("brevo",)))
    assert "spf.stale_relay" not in codes(ok)
    assert "spf.missing_include" in codes(ok)  # brevo's current include is spf.brevo.com


def test_missing_include_for_configured_relay(world: DnsLab) -> None:
    d = "norelay.test"
    world.publish(d, migadu_zone(d))
    report = check(world, migadu_spec(d, relays=("brevo",)))
    f = finding(report, "spf.missing_include")
    assert f.severity is Severity.ERROR
    assert "include:spf.brevo.com" in f.message
    assert f.expected == "v=spf1 include:spf.migadu.com include:spf.brevo.com -all"


def test_multiple_spf_records(world: DnsLab) -> None:
    d = "multispf.test"
    world.publish(d, migadu_zone(d, extra='@ TXT "v=spf1 include:oldrelay.test ~all"'))
    f = finding(check(world, migadu_spec(d)), "spf.multiple")
    assert f.severity is Severity.ERROR and " | " in (f.found or "")


def test_missing_spf(world: DnsLab) -> None:
    d = "nospf.test"
    world.publish(d, migadu_zone(d, spf=None))
    f = finding(check(world, migadu_spec(d)), "spf.missing")
    assert f.severity is Severity.ERROR
    assert f.expected == "v=spf1 include:spf.migadu.com -all"


def test_syntax_errors(world: DnsLab) -> None:
    d = "spfsyntax.test"
    world.publish(d, migadu_zone(
        d, spf='@ TXT "v=spf1 ip4:300.1.1.1 foo:bar include:spf.migadu.com-all"'))
    report = check(world, migadu_spec(d))
    messages = " ".join(f.message for f in report.findings if f.code == "spf.syntax")
    assert "300.1.1.1" in messages
    assert "foo:bar" in messages
    assert "-all" in messages  # all glued to the previous term


def test_too_many_lookups_names_the_culprit(world: DnsLab) -> None:
    d = "toomany.test"
    chain = "\n".join(f'inc{i} TXT "v=spf1 a:a{i}.{d} mx:{d} -all"' for i in range(5))
    hosts = "\n".join(f"a{i} A 198.51.100.{i + 20}" for i in range(5))
    includes = " ".join(f"include:inc{i}.{d}" for i in range(5))
    world.publish(d, migadu_zone(d, spf=f'@ TXT "v=spf1 include:spf.migadu.com {includes} -all"',
                                 extra=chain + "\n" + hosts))
    report = check(world, migadu_spec(d))
    f = finding(report, "spf.lookups")
    assert f.severity is Severity.ERROR
    assert "16 DNS lookups" in f.message  # 1 + 5 * (1 + 2)
    assert f"include:inc0.{d} (3)" in (f.found or "")
    # under the limit: no finding
    spf = f'@ TXT "v=spf1 include:inc0.{d} include:spf.migadu.com -all"'
    world.publish(d, migadu_zone(d, spf=spf, extra=chain + "\n" + hosts))
    assert "spf.lookups" not in codes(check(world, migadu_spec(d)))


def test_void_lookups(world: DnsLab) -> None:
    d = "voids.test"
    world.publish(d, migadu_zone(
        d, spf=f'@ TXT "v=spf1 include:spf.migadu.com a:x1.{d} a:x2.{d} include:x3.{d} -all"'))
    f = finding(check(world, migadu_spec(d)), "spf.void_lookups")
    assert f.severity is Severity.ERROR and "3 lookups return nothing" in f.message
    world.publish(d, migadu_zone(d, spf=f'@ TXT "v=spf1 include:spf.migadu.com a:x1.{d} -all"'))
    report = check(world, migadu_spec(d))
    assert "spf.void_lookups" not in codes(report)
    assert "spf.void_lookup" in codes(report, Severity.WARNING)


def test_include_loop(world: DnsLab) -> None:
    d = "loop.test"
    world.publish(d, migadu_zone(
        d, spf=f'@ TXT "v=spf1 include:spf.migadu.com include:a.{d} -all"',
        extra=f'a TXT "v=spf1 include:b.{d} -all"\nb TXT "v=spf1 include:a.{d} -all"'))
    f = finding(check(world, migadu_spec(d)), "spf.loop")
    assert f"a.{d} -> b.{d} -> a.{d}" in f.message


def test_all_qualifier(world: DnsLab) -> None:
    d = "allq.test"
    world.publish(d, migadu_zone(d, spf='@ TXT "v=spf1 include:spf.migadu.com +all"'))
    assert finding(check(world, migadu_spec(d)), "spf.all_permissive").severity is Severity.ERROR
    world.publish(d, migadu_zone(d, spf='@ TXT "v=spf1 include:spf.migadu.com"'))
    assert "spf.all_missing" in codes(check(world, migadu_spec(d)), Severity.WARNING)
    world.publish(d, migadu_zone(d, spf='@ TXT "v=spf1 include:spf.migadu.com ~all"'))
    report = check(world, migadu_spec(d))
    assert codes(report) - {"dnssec.not_validated"} == {"spf.all_differs"}
    assert report.status is Status.OK


def test_spf_split_into_two_records(world: DnsLab) -> None:
    d = "spfsplit.test"
    world.publish(d, migadu_zone(d, spf='@ TXT "v=spf1 include:spf.migadu.com"',
                                 extra='@ TXT "include:spf.brevo.com -all"'))
    f = finding(check(world, migadu_spec(d)), "spf.split_records")
    assert f.severity is Severity.ERROR


def test_unresolvable_include_is_unknown_not_missing(world: DnsLab) -> None:
    d = "spfservfail.test"  # unreachable.example is served by nobody: SERVFAIL
    world.publish(d, migadu_zone(
        d, spf='@ TXT "v=spf1 include:spf.migadu.com include:spf.unreachable.example -all"'))
    report = check(world, migadu_spec(d))
    f = finding(report, "spf.unknown")
    assert f.severity is Severity.UNKNOWN and "servfail" in f.message
    assert "spf.void_lookup" not in codes(report) and "spf.missing" not in codes(report)
