"""The read-back after each zone of `dns apply`: a host may answer an update with NOERROR
and change nothing, so the changed sets are asked for directly (one UDP socket, all
queries at once); anything but the new data, or no answer, sends the apply to the
full re-read that names what did not take effect."""

from __future__ import annotations

import socket

from mailctl.dns.propagation import Expect, verify_at
from tests.fixtures.dnsserver import PRIMARY, DnsLab

LONG = "v=DKIM1; k=rsa; p=" + "A" * 700  # more than a 512-byte UDP answer: TC, then TCP


def _expect(name: str, rtype: str, *values: str, ttl: int | None = 3600) -> Expect:
    return Expect(name, rtype, frozenset(values), ttl)


def test_new_data_old_data_wrong_ttl_and_gone(dns_lab: DnsLab) -> None:
    zone = "verify-at.test"
    dns_lab.publish(zone, "\n".join([
        "@ 3600 MX 10 mx1.example.net.",
        "@ 3600 TXT \"v=spf1 include:spf.example.net -all\"",
        "_dmarc 300 TXT \"v=DMARC1; p=reject\"",
        f"big._domainkey 3600 TXT \"{LONG[:250]}\" \"{LONG[250:500]}\" \"{LONG[500:]}\"",
    ]))
    port = dns_lab.auth_port
    good = [_expect(zone, "MX", "10 mx1.example.net"),
            _expect(zone, "TXT", "v=spf1 include:spf.example.net -all"),
            _expect(f"_dmarc.{zone}", "TXT", "v=dmarc1; p=reject", ttl=300),
            _expect(f"big._domainkey.{zone}", "TXT", LONG.lower()),
            _expect(f"old._domainkey.{zone}", "TXT", ttl=None)]  # deleted: must be gone
    assert verify_at(PRIMARY, port, good)
    assert verify_at(PRIMARY, port, [])
    # one set still holding other data is enough to say no
    assert not verify_at(PRIMARY, port, [*good[:3], _expect(zone, "MX", "10 mx2.example.net")])
    # right data, but the TTL the plan set has not been taken
    assert not verify_at(PRIMARY, port, [_expect(f"_dmarc.{zone}", "TXT",
                                                 "v=dmarc1; p=reject", ttl=3600)])
    # a set that should be gone is still there
    assert not verify_at(PRIMARY, port, [_expect(zone, "MX", ttl=None)])


def test_no_answer_is_no_verdict() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        port = silent.getsockname()[1]
        assert not verify_at("127.0.0.1", port, [_expect("x.test", "MX", "10 mx.test")],
                             timeout=0.5)
