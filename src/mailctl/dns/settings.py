"""The `dns:` block of a domain in mailctl.yaml.

Only pydantic is imported here: the config loader validates every domain at
start-up, and dnspython/cryptography must not load just to read a YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.dns.records import DomainDnsSpec

# Provider types of mailctl.yaml that have a profile of the same name.
PROVIDER_PROFILES = {"dms": "dms", "migadu": "migadu", "mailcow": "mailcow", "mailu": "mailu",
                     "stalwart": "stalwart"}


class DnsConfigError(ValueError):
    """The config cannot give a DNS spec for a domain (not declared, not a domain name).

    A user's mistake, so front ends show the message as one line: the CLI maps
    it to exit 1, the console to a form error.
    """


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DkimSettings(_Model):
    selectors: list[str] = []  # override the provider profile's selectors
    keys: dict[str, str] = {}  # selector -> public key (base64 p=), self-hosted
    relay_selectors: dict[str, list[str]] = {}  # relay name -> selectors (e.g. SES tokens)


class DmarcSettings(_Model):
    policy: Literal["none", "quarantine", "reject"] | None = None
    rua: list[str] = []
    ruf: list[str] = []


class MtaStsSettings(_Model):
    mode: Literal["enforce", "testing", "none"] = "testing"
    max_age: int = Field(default=604800, ge=0, le=31557600)


class RelaySmtp(_Model):
    """How the mail server reaches a relay; host and port default to the relay profile's."""

    host: str | None = Field(None, description="relay host [default: the relay profile's]")
    port: int | None = Field(None, ge=1, le=65535, description="[default: the profile's, 587]")
    username: str | None = None
    password: str | None = Field(None, description="secret reference: ${env:X} or ${file:p}")


class DnsSettings(_Model):
    profile: str | None = None  # provider profile; default: derived from the provider type
    relays: list[str] = []
    # Each relay's own parameters (its DKIM key, its verification code): a relay's
    # values are never taken from `params`, which belong to the hosting provider.
    relay_params: dict[str, dict[str, str]] = {}
    # The mail server's side of `relays` (docker-mailserver's relay files and the
    # sandbox): one declaration for the server and for SPF/DKIM.
    relay_smtp: dict[str, RelaySmtp] = {}
    host: str | None = Field(None, description="DNS host (a name under the top-level dns.hosts) "
                             "that `dns plan/apply` publish this domain's records to")
    zone: str | None = Field(None, description="the zone at the DNS host holding this domain "
                             "[default: the longest matching dns.zones entry, else the domain]")
    mx_hosts: list[str] = []  # self-hosted: the MX host names (default mail.<domain>)
    spf_extra: list[str] = []  # extra SPF terms, e.g. "ip4:192.0.2.1"
    spf_all: Literal["-all", "~all"] | None = None
    dkim: DkimSettings = DkimSettings()
    dmarc: DmarcSettings = DmarcSettings()
    mta_sts: MtaStsSettings | None = None  # absent: MTA-STS not managed
    tls_rpt_rua: list[str] = []
    params: dict[str, str] = {}  # profile parameters, e.g. {verify: <code>}
    ttl: int = Field(default=3600, ge=60, le=604800)
    profile_dirs: list[Path] = []  # extra profile directories, searched first


def spec_from_settings(domain: str, provider_type: str | None,
                       settings: DnsSettings | None) -> DomainDnsSpec:
    """The spec for `domain`: its `dns:` block, defaulting the profile to the provider type."""
    from mailctl.dns.records import DomainDnsSpec

    s = settings or DnsSettings()
    profile = s.profile or PROVIDER_PROFILES.get(provider_type or "", provider_type or "dms")
    return DomainDnsSpec(
        domain=domain.lower().rstrip("."),
        profile=profile,
        relays=tuple(s.relays),
        dkim_selectors=tuple(s.dkim.selectors),
        relay_selectors={k: tuple(v) for k, v in s.dkim.relay_selectors.items()},
        dkim_keys=dict(s.dkim.keys),
        params=dict(s.params),
        relay_params={k: dict(v) for k, v in s.relay_params.items()},
        mx_hosts=tuple(h.lower().rstrip(".") for h in s.mx_hosts),
        spf_extra=tuple(s.spf_extra),
        spf_all=s.spf_all,
        dmarc_policy=s.dmarc.policy,
        dmarc_rua=tuple(s.dmarc.rua),
        dmarc_ruf=tuple(s.dmarc.ruf),
        mta_sts_mode=s.mta_sts.mode if s.mta_sts else None,
        mta_sts_max_age=s.mta_sts.max_age if s.mta_sts else 604800,
        tls_rpt_rua=tuple(s.tls_rpt_rua),
        ttl=s.ttl,
        profile_dirs=tuple(s.profile_dirs),
    )


def spec_from_config(config: Config, domain: str) -> DomainDnsSpec:
    """The spec for `domain` from a loaded mailctl.yaml: its provider type and `dns:` block."""
    from mailctl.model import AddressError, normalise_domain

    try:
        name = normalise_domain(domain)
    except AddressError as exc:
        raise DnsConfigError(str(exc)) from None
    if name not in config.desired.domains:
        raise DnsConfigError(f"{name} is not declared in {config.path}; declare it or pass "
                             "--profile")
    block = config.file.domains[config.desired.raw_domain[name]]
    ptype = config.providers[block.provider].type_name
    return spec_from_settings(name, ptype, block.dns)


class DnsHost(BaseModel):
    """One DNS host: an octoDNS provider class and the keyword arguments it takes.

    Everything besides `class` and the safety limits goes to the class's
    constructor unchanged, except that secret references (`${env:X}`,
    `${file:path}`) are resolved first, and only by the commands that publish.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    provider_class: str = Field(
        alias="class", pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$",
        description="octoDNS provider class as module.Class, e.g. octodns_bind.Rfc2136Provider")
    max_update_share: float = Field(0.3, ge=0, le=1, description="refuse a plan updating more "
                                    "than this share of the managed records (octoDNS default)")
    max_delete_share: float = Field(0.3, ge=0, le=1, description="same for deletes")
    min_existing: int = Field(10, ge=0, description="zones with fewer managed records skip the "
                              "share limits (deletes still need confirmation)")

    def kwargs(self) -> dict[str, object]:
        """The provider's own settings, references unresolved."""
        return dict(self.model_extra or {})


class DnsHostsSettings(_Model):
    """The top-level `dns:` block: where domains' records are published."""

    hosts: dict[str, DnsHost] = {}
    zones: dict[str, str] = Field({}, description="zone -> host: every declared domain inside "
                                  "the zone publishes there unless its own dns.host says otherwise")
