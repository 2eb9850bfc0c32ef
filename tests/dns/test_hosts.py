"""Cloud DNS hosts: configuration only (docs/dns.md says so).

Each supported octoDNS provider class is built from a `dns.hosts` entry as a
user writes it, credentials through secret references, with every socket
connect refused: the config is understood and nothing touches the network.
Publishing through them is octoDNS's own code and is not exercised here.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from mailctl.config.refs import Resolver
from mailctl.dns.hosts import HostConfigError, open_host, references
from mailctl.dns.settings import DnsHost, DnsHostsSettings

TOKEN = "tok-" + "x" * 28

HOSTS: dict[str, dict[str, Any]] = {
    "cloudflare": {"class": "octodns_cloudflare.CloudflareProvider",
                   "token": "${env:DNS_TOKEN}"},
    "route53": {"class": "octodns_route53.Route53Provider", "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "${env:DNS_TOKEN}"},
    "hetzner": {"class": "octodns_hetzner.HetznerProvider", "token": "${env:DNS_TOKEN}"},
    "ovh": {"class": "octodns_ovh.OvhProvider", "endpoint": "ovh-eu",
            "application_key": "${env:DNS_TOKEN}", "application_secret": "${env:DNS_TOKEN}",
            "consumer_key": "${env:DNS_TOKEN}"},
    "gandi": {"class": "octodns_gandi.GandiProvider", "token": "${env:DNS_TOKEN}"},
    "desec": {"class": "octodns_desec.DesecProvider", "token": "${env:DNS_TOKEN}"},
    "powerdns": {"class": "octodns_powerdns.PowerDnsProvider", "host": "pdns.example",
                 "api_key": "${env:DNS_TOKEN}"},
    "rfc2136": {"class": "octodns_bind.Rfc2136Provider", "host": "192.0.2.53",
                "key_name": "mailctl", "key_secret": "${env:DNS_TOKEN}",
                "key_algorithm": "hmac-sha256"},
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DNS host class touched the network while being configured")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_provider_class_is_configured_from_yaml_without_network(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    monkeypatch.setenv("DNS_TOKEN", TOKEN)
    settings = DnsHostsSettings.model_validate({"hosts": {name: HOSTS[name]}})
    provider = open_host(name, settings.hosts[name], Resolver(tmp_path))
    assert type(provider).__name__ == HOSTS[name]["class"].rsplit(".", 1)[1]
    assert provider.id == name
    assert "${env:DNS_TOKEN}" in references(settings.hosts[name])
    assert TOKEN not in references(settings.hosts[name])


@pytest.mark.parametrize(("entry", "message"), [
    ({"class": "octodns_cloudflare.CloudflareProvider", "token": "literal-token"},
     "must be a secret reference"),
    ({"class": "octodns_nosuch.NoProvider", "token": "${env:DNS_TOKEN}"},
     "pip install octodns-nosuch"),
    ({"class": "octodns_bind.NoSuchClass", "host": "x"}, "has no class NoSuchClass"),
    ({"class": "octodns_hetzner.HetznerProvider", "token": "${env:DNS_UNSET_TOKEN}"},
     "DNS_UNSET_TOKEN is not set"),
    ({"class": "octodns_bind.Rfc2136Provider", "host": "192.0.2.1", "no_such_arg": 1},
     "no_such_arg"),
])
def test_bad_host_settings_are_one_clear_error(entry: dict[str, Any], message: str,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               no_network: None) -> None:
    monkeypatch.setenv("DNS_TOKEN", TOKEN)
    host = DnsHost.model_validate(entry)
    with pytest.raises(HostConfigError) as info:
        open_host("h", host, Resolver(tmp_path))
    assert message in str(info.value) and TOKEN not in str(info.value)
    assert "literal-token" not in str(info.value)


def test_class_must_be_module_dot_class() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        DnsHost.model_validate({"class": "Rfc2136Provider"})
