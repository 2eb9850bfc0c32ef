"""Each authoritative nameserver asked directly: stale secondaries, lame and dead servers."""

from __future__ import annotations

import asyncio

from mailctl.dns.check import check_domains
from mailctl.dns.findings import Severity, Status
from tests.dns.conftest import check, codes, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab, free_port

BOTH = ("ns1.lab.test", "ns2.lab.test")


def ns_codes(lab: DnsLab, domain: str) -> set[str]:
    found = codes(check(lab, migadu_spec(domain), ns_check=True))
    return {c for c in found if c.startswith("ns.")}


def test_primary_and_secondary_in_sync_is_clean(world: DnsLab) -> None:
    d = "nsok.test"
    world.publish(d, migadu_zone(d), nameservers=BOTH)
    world.publish_secondary(d, migadu_zone(d))
    report = check(world, migadu_spec(d), ns_check=True)
    assert report.status is Status.OK, report.codes()
    assert not ns_codes(world, d)


def test_stale_secondary_serves_the_old_mx(world: DnsLab) -> None:
    d = "nsstale.test"
    world.publish(d, migadu_zone(d), nameservers=BOTH)
    old = migadu_zone(d, mx1="@ MX 10 mx.oldhost.test.", mx2=None)
    world.publish_secondary(d, old, serial=world.zones[d] - 1)
    report = check(world, migadu_spec(d), ns_check=True)
    serial = finding(report, "ns.serial_mismatch")
    assert serial.severity is Severity.WARNING
    assert "ns2.lab.test (127.0.0.2) is behind" in serial.message
    assert f"serial {world.zones[d]} everywhere" == serial.expected
    differ = [f for f in report.findings if f.code == "ns.answers_differ"]
    assert [(f.name, f.severity) for f in differ] == [(d, Severity.ERROR)]
    assert "mx.oldhost.test" in (differ[0].found or "")
    assert "aspmx1.migadu.com" in (differ[0].found or "")
    # the resolver happens to ask the primary: only the direct queries show the problem
    assert "mx.mismatch" not in codes(report)


def test_lame_and_unreachable_nameservers(world: DnsLab) -> None:
    world.publish_secondary("nsrunning.test", "")  # the secondary is up, without the zone below
    d = "nslame.test"
    world.publish(d, migadu_zone(d), nameservers=(*BOTH, "ns3.lab.test", "ns4.lab.test"))
    report = check(world, migadu_spec(d), ns_check=True)
    lame = finding(report, "ns.lame")
    assert "ns2.lab.test (127.0.0.2)" in lame.message and "refused" in (lame.found or "")
    dead = {f.message.split()[1] for f in report.findings if f.code == "ns.unreachable"}
    assert dead == {"ns3.lab.test", "ns4.lab.test"}  # ns3: no server; ns4: no address
    assert report.status is Status.PROBLEMS


def test_no_nameserver_answering_directly_is_unknown_not_a_problem(world: DnsLab) -> None:
    d = "nsblocked.test"
    world.publish(d, migadu_zone(d))
    report = asyncio.run(check_domains([migadu_spec(d)], world.resolver, timeout=0.3,
                                       ns_check=True, ns_port=free_port()))[0]
    assert finding(report, "ns.unknown").severity is Severity.UNKNOWN
    assert "ns.unreachable" not in codes(report)
    assert report.status is Status.UNKNOWN
    skipped = asyncio.run(check_domains([migadu_spec(d)], world.resolver))[0]
    assert skipped.status is Status.OK, skipped.codes()  # the check is opt-in


def test_domain_below_its_zone_apex_uses_the_zone_servers(world: DnsLab) -> None:
    parent = "nsparent.test"
    sub = f"shop.{parent}"
    lines = [_relative(line, "shop") for line in migadu_zone(sub).splitlines()]
    world.publish(parent, "\n".join(lines), nameservers=BOTH)
    stale = [line.replace("aspmx2", "aspmx9") for line in lines]
    world.publish_secondary(parent, "\n".join(stale), serial=world.zones[parent] - 1)
    report = check(world, migadu_spec(sub), ns_check=True)
    differ = finding(report, "ns.answers_differ")
    assert differ.name == sub and "aspmx9" in (differ.found or "")
    assert finding(report, "ns.serial_mismatch").name == parent


def test_serials_differ_but_mail_records_agree_is_info(world: DnsLab) -> None:
    """Two independent DNS providers number their serials independently."""
    d = "nsmulti.test"
    world.publish(d, migadu_zone(d), nameservers=BOTH)
    world.publish_secondary(d, migadu_zone(d, extra="www A 192.0.2.80"),
                            serial=world.zones[d] + 1000)
    report = check(world, migadu_spec(d), ns_check=True)
    f = finding(report, "ns.serial_mismatch")
    assert f.severity is Severity.INFO and "the mail records agree" in f.message
    assert "ns1.lab.test (127.0.0.1) is behind" in f.message
    assert "ns.answers_differ" not in codes(report)
    assert report.status is Status.OK


def _relative(line: str, label: str) -> str:
    """A zone line of the sub-domain, rewritten relative to its parent zone."""
    name, rest = line.split(" ", 1)
    return f"{label} {rest}" if name == "@" else f"{name}.{label} {rest}"
