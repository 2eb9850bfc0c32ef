"""The DNS world the classification tests see: provider and relay zones in the shared lab.

Zone contents that tests/dns also publishes (migadu.com, brevo.com, sendinblue.com) are
the same here byte for byte, so the two folders can share one lab in any order.
"""

from __future__ import annotations

import pytest

from tests.dns.conftest import WORLD
from tests.fixtures.dnsserver import DnsLab

REPORTS_WORLD = {
    "migadu.com": WORLD["migadu.com"],  # spf.migadu.com: 198.51.100.0/24
    "brevo.com": WORLD["brevo.com"],  # spf.brevo.com: 203.0.113.128/26
    "sendinblue.com": WORLD["sendinblue.com"],  # spf.sendinblue.com: 203.0.113.64/26
    "mailgun.org": '@ TXT "v=spf1 ip4:192.0.2.128/27 -all"',
}


@pytest.fixture(scope="session")
def reports_world(dns_lab: DnsLab) -> DnsLab:
    for zone, records in REPORTS_WORLD.items():
        dns_lab.publish(zone, records)
    return dns_lab
