"""Shared DNS test world: fake provider/relay zones served by the real lab servers."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from mailctl.dns.check import check_domains
from mailctl.dns.context import HttpsOptions
from mailctl.dns.findings import DomainReport, Severity
from mailctl.dns.records import DomainDnsSpec
from tests.fixtures.dnsserver import DnsLab


def rsa_public_b64(bits: int) -> str:
    """A DKIM p= value of `bits` bits (any odd modulus parses as a public key,
    which is how keys below cryptography's 1024-bit generation floor are made)."""
    import random

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rng = random.Random(bits)
    n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


KEY_2048 = rsa_public_b64(2048)
KEY_1024 = rsa_public_b64(1024)
KEY_768 = rsa_public_b64(768)


def txt(value: str) -> str:
    """Zone-file TXT rdata: one record, split into 255-byte strings."""
    from mailctl.dns.records import txt_chunks

    return " ".join(f'"{c}"' for c in txt_chunks(value))


WORLD = {
    # a fake Migadu: MX hosts, SPF include, and a DKIM key behind every CNAME
    "migadu.com": f"""
        aspmx1 A 198.51.100.1
        aspmx2 A 198.51.100.2
        autoconfig A 198.51.100.3
        spf TXT "v=spf1 ip4:198.51.100.0/24 -all"
        *._domainkey TXT {txt("v=DKIM1; k=rsa; p=" + KEY_2048)}
    """,
    # the relay a domain used before (drift) and the one it uses now
    "oldrelay.test": """
        _spf TXT "v=spf1 ip4:203.0.113.0/24 -all"
    """,
    "sendinblue.com": 'spf TXT "v=spf1 ip4:203.0.113.64/26 -all"',
    "brevo.com": 'spf TXT "v=spf1 ip4:203.0.113.128/26 -all"',
    # a report mailbox provider that authorises everyone, and one that authorises no one
    "reports.test": """
        @ MX 10 aspmx1.migadu.com.
        *._report._dmarc TXT "v=DMARC1"
    """,
    "noauth.test": "@ MX 10 aspmx1.migadu.com.",
}


@pytest.fixture(scope="session")
def world(dns_lab: DnsLab) -> DnsLab:
    for zone, records in WORLD.items():
        dns_lab.publish(zone, records)
    return dns_lab


def migadu_zone(domain: str, **replace: str | None) -> str:
    """A zone that is exactly right for the Migadu profile; `replace` swaps lines by key."""
    lines: dict[str, str | None] = {
        "mx1": "@ MX 10 aspmx1.migadu.com.",
        "mx2": "@ MX 20 aspmx2.migadu.com.",
        "spf": '@ TXT "v=spf1 include:spf.migadu.com -all"',
        "verify": '@ TXT "hosted-email-verify=abc"',
        "key1": f"key1._domainkey CNAME key1.{domain}._domainkey.migadu.com.",
        "key2": f"key2._domainkey CNAME key2.{domain}._domainkey.migadu.com.",
        "key3": f"key3._domainkey CNAME key3.{domain}._domainkey.migadu.com.",
        "dmarc": f'_dmarc TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"',
        "autoconfig": "autoconfig CNAME autoconfig.migadu.com.",
        "autodiscover": "_autodiscover._tcp SRV 0 1 443 autodiscover.migadu.com.",
        "submissions": "_submissions._tcp SRV 0 1 465 smtp.migadu.com.",
        "imaps": "_imaps._tcp SRV 0 1 993 imap.migadu.com.",
        "pop3s": "_pop3s._tcp SRV 0 1 995 pop.migadu.com.",
    }
    extra = replace.pop("extra", None)
    lines.update(replace)
    body = [v for v in lines.values() if v]
    if extra:
        body.append(extra)
    return "\n".join(body)


def self_hosted_zone(domain: str, **replace: str | None) -> str:
    """Right for the dms profile with MX mail.<domain> at 198.51.100.10."""
    lines: dict[str, str | None] = {
        "mx": f"@ MX 10 mail.{domain}.",
        "a": "mail A 198.51.100.10",
        "spf": '@ TXT "v=spf1 mx ~all"',
        "dkim": f"mail._domainkey TXT {txt('v=DKIM1; k=rsa; p=' + KEY_2048)}",
        "dmarc": '_dmarc TXT "v=DMARC1; p=quarantine"',
        "submissions": f"_submissions._tcp SRV 0 1 465 mail.{domain}.",
        "imaps": f"_imaps._tcp SRV 0 1 993 mail.{domain}.",
    }
    extra = replace.pop("extra", None)
    lines.update(replace)
    body = [v for v in lines.values() if v]
    if extra:
        body.append(extra)
    return "\n".join(body)


def check(lab: DnsLab, spec: DomainDnsSpec, https: HttpsOptions | None = None, *,
          ns_check: bool = False) -> DomainReport:
    return asyncio.run(check_domains([spec], lab.resolver, timeout=1.0, https=https,
                                     ns_check=ns_check, ns_port=lab.auth_port))[0]


def migadu_spec(domain: str, **kw: Any) -> DomainDnsSpec:
    return DomainDnsSpec(domain, profile="migadu", params={"verify": "abc"}, **kw)


def codes(report: DomainReport, severity: Severity | None = None) -> set[str]:
    return {f.code for f in report.findings if severity is None or f.severity is severity}


def finding(report: DomainReport, code: str) -> Any:
    matches = [f for f in report.findings if f.code == code]
    assert matches, f"no {code} in {report.codes()}"
    return matches[0]
