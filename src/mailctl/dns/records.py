"""The records a domain must publish, computed from its provider and relay profiles.

The same `Record` list feeds `dns records` (what to publish) and `dns check`
(what to compare against), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailctl.dns.profiles import Profile, fill, get_profile
from mailctl.dns.stspolicy import policy_id, render_policy, tls_rpt_value

TXT_CHUNK = 255  # RFC 1035 §3.3: one character-string holds at most 255 octets


@dataclass(frozen=True)
class DomainDnsSpec:
    """Everything the DNS code needs to know about one domain.

    Built from the `dns:` block of mailctl.yaml (see `settings.py`) or from CLI
    options; plain data so the CLI, the planner and tests can construct it.
    """

    domain: str
    profile: str = "dms"
    relays: tuple[str, ...] = ()
    dkim_selectors: tuple[str, ...] = ()  # override the provider profile's selectors
    relay_selectors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dkim_keys: Mapping[str, str] = field(default_factory=dict)  # selector -> p= base64
    params: Mapping[str, str] = field(default_factory=dict)  # the hosting provider's
    relay_params: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # relay -> its own
    mx_hosts: tuple[str, ...] = ()  # self-hosted: the MX hosts (default mail.<domain>)
    spf_extra: tuple[str, ...] = ()  # e.g. ("ip4:192.0.2.1",)
    spf_all: str | None = None
    dmarc_policy: str | None = None
    dmarc_rua: tuple[str, ...] = ()
    dmarc_ruf: tuple[str, ...] = ()
    mta_sts_mode: str | None = None  # None: MTA-STS not managed by mailctl
    mta_sts_max_age: int = 604800
    tls_rpt_rua: tuple[str, ...] = ()
    ttl: int = 3600
    profile_dirs: tuple[Path, ...] = ()  # searched before the packaged profiles


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # fully qualified, lower case, no trailing dot
    rtype: str
    value: str | None  # None: presence is checked, the value is account-specific
    ttl: int = 3600
    purpose: str = "other"  # mx, spf, dkim, dmarc, verification, autoconfig, mta-sts, tls-rpt
    optional: bool = False
    source: str = ""  # the profile that asked for it
    selector: str | None = None  # DKIM records only

    def relative_name(self, origin: str) -> str:
        if self.name == origin:
            return "@"
        return self.name.removesuffix("." + origin)

    def zone_value(self) -> str:
        """Value as a zone file wants it: TXT quoted and split at 255 bytes."""
        if self.value is None:
            return ""
        if self.rtype == "TXT":
            return " ".join(f'"{chunk}"' for chunk in txt_chunks(self.value))
        return self.value

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.rtype,
            "value": self.value,
            "zone_value": self.zone_value() if self.value is not None else None,
            "ttl": self.ttl,
            "purpose": self.purpose,
            "optional": self.optional,
            "source": self.source,
        }


def _escape(chunk: bytes) -> str:
    return chunk.decode("utf-8", "surrogateescape").replace("\\", "\\\\").replace('"', '\\"')


def txt_chunks(value: str) -> list[str]:
    """Split a TXT value into character-strings of at most 255 bytes, escaped.

    SPF and DKIM concatenate the strings with no separator, so any split point
    works as long as no byte is added or lost; splitting on bytes (not
    characters) keeps the limit exact for non-ASCII text.
    """
    raw = value.encode("utf-8", "surrogateescape")
    if not raw:
        return [""]
    return [_escape(raw[i : i + TXT_CHUNK]) for i in range(0, len(raw), TXT_CHUNK)]


def _fqdn(name: str, domain: str) -> str:
    if name in ("@", ""):
        return domain
    if name.endswith("."):
        return name.rstrip(".").lower()
    return f"{name}.{domain}".lower()


def template_values(spec: DomainDnsSpec, profile: Profile | None = None) -> dict[str, str]:
    """Template values for `profile`: a relay's own parameters, never the provider's.

    The provider's `verify` code filled into a relay's verification record was a
    false alarm on every correct domain; each profile sees only its own params.
    """
    params = spec.params
    if profile is not None and profile.kind == "relays":
        params = spec.relay_params.get(profile.name, {})
    values = {str(k): str(v) for k, v in params.items()}
    values["domain"] = spec.domain
    values["domain_dashed"] = spec.domain.replace(".", "-")
    values["mx_host"] = mx_hosts(spec)[0]
    return values


def mx_hosts(spec: DomainDnsSpec) -> tuple[str, ...]:
    return spec.mx_hosts or (f"mail.{spec.domain}",)


def load_profiles(spec: DomainDnsSpec) -> tuple[Profile, list[Profile]]:
    """The provider profile and relay profiles of `spec` (ProfileError if unknown)."""
    provider = get_profile("providers", spec.profile, spec.profile_dirs)
    relays = [get_profile("relays", name, spec.profile_dirs) for name in spec.relays]
    return provider, relays


def expected_spf(spec: DomainDnsSpec, provider: Profile, relays: list[Profile]) -> str:
    values = template_values(spec)
    terms: list[str] = []
    for mech in (*provider.spf_mechanisms, *spec.spf_extra):
        filled = fill(mech, values)
        if filled and filled not in terms:
            terms.append(filled)
    for include in expected_includes(spec, provider, relays):
        term = f"include:{include}"
        if term not in terms:
            terms.append(term)
    qualifier = spec.spf_all or provider.spf_all or "~all"
    return " ".join(["v=spf1", *terms, qualifier])


def expected_includes(spec: DomainDnsSpec, provider: Profile, relays: list[Profile]) -> list[str]:
    out: list[str] = []
    for profile in (provider, *relays):
        values = template_values(spec, profile)
        for include in profile.spf_include:
            filled = fill(include, values)
            if filled and filled.lower() not in out:
                out.append(filled.lower())
    return out


def expected_mx(spec: DomainDnsSpec, provider: Profile) -> list[tuple[int, str]]:
    if provider.self_hosted and spec.mx_hosts:
        return [(10 * (i + 1), h.lower().rstrip(".")) for i, h in enumerate(spec.mx_hosts)]
    values = template_values(spec)
    out = []
    for pref, host in provider.mx:
        filled = fill(host, values)
        if filled:
            out.append((pref, filled.lower().rstrip(".")))
    return out


def dmarc_value(spec: DomainDnsSpec, provider: Profile) -> str:
    policy = spec.dmarc_policy or provider.dmarc_policy or "quarantine"
    parts = ["v=DMARC1", f"p={policy}"]
    if spec.dmarc_rua:
        parts.append("rua=" + ",".join(_mailto(a) for a in spec.dmarc_rua))
    if spec.dmarc_ruf:
        parts.append("ruf=" + ",".join(_mailto(a) for a in spec.dmarc_ruf))
    return "; ".join(parts)


def _mailto(address: str) -> str:
    return address if ":" in address else f"mailto:{address}"


def relay_declared(spec: DomainDnsSpec, relay: Profile) -> bool:
    """Whether the config declares the relay's own records (its params or DKIM selectors).

    Only then are they required: a relay can be used for SPF alone, and a check
    must not call a correct domain broken for a DKIM record nobody asked for.
    """
    return relay.name in spec.relay_params or relay.name in spec.relay_selectors


def _dkim_records(
    spec: DomainDnsSpec, profile: Profile, selectors: tuple[str, ...], optional: bool = False
) -> list[Record]:
    values = template_values(spec, profile)
    out: list[Record] = []
    for selector in selectors:
        name = f"{selector}._domainkey.{spec.domain}".lower()
        local = {**values, "selector": selector}
        if profile.dkim_kind == "cname":
            target = fill(profile.dkim_target or "", local) or None
            value = f"{target.rstrip('.')}." if target else None
            rtype = "CNAME"
        else:
            rtype = "TXT"
            key = spec.dkim_keys.get(selector)
            if key is not None:
                value = f"v=DKIM1; k=rsa; p={key}"
            elif profile.dkim_value:
                value = fill(profile.dkim_value, local)
            else:
                value = None
        out.append(Record(name, rtype, value, spec.ttl, "dkim", optional, profile.name, selector))
    return out


def expected_records(spec: DomainDnsSpec) -> list[Record]:
    """Every record `spec.domain` should publish, in a stable order."""
    provider, relays = load_profiles(spec)
    domain, ttl = spec.domain, spec.ttl
    records = [
        Record(domain, "MX", f"{pref} {host}.", ttl, "mx", source=provider.name)
        for pref, host in expected_mx(spec, provider)
    ]
    records.append(Record(domain, "TXT", expected_spf(spec, provider, relays), ttl, "spf",
                          source=provider.name))
    records += _dkim_records(spec, provider, spec.dkim_selectors or provider.dkim_selectors)
    for relay in relays:
        selectors = tuple(spec.relay_selectors.get(relay.name, relay.dkim_selectors))
        records += _dkim_records(spec, relay, selectors, not relay_declared(spec, relay))
    records.append(Record(f"_dmarc.{domain}", "TXT", dmarc_value(spec, provider), ttl, "dmarc",
                          source=provider.name))
    for profile in (provider, *relays):
        own = template_values(spec, profile)
        undeclared = profile.kind == "relays" and not relay_declared(spec, profile)
        for extra in profile.records:
            records.append(
                Record(_fqdn(extra.name, domain), extra.rtype, fill(extra.value, own), ttl,
                       extra.purpose, extra.optional or undeclared, profile.name)
            )
    if spec.mta_sts_mode:
        policy = render_policy(spec.mta_sts_mode, [h for _, h in expected_mx(spec, provider)],
                               spec.mta_sts_max_age)
        records.append(Record(f"_mta-sts.{domain}", "TXT",
                              f"v=STSv1; id={policy_id(policy)}", ttl, "mta-sts"))
        records.append(Record(f"mta-sts.{domain}", "A", None, ttl, "mta-sts"))
    if spec.mta_sts_mode or spec.tls_rpt_rua:
        records.append(Record(f"_smtp._tls.{domain}", "TXT", tls_rpt_value(spec), ttl, "tls-rpt"))
    return records


def lint_records(records: list[Record]) -> list[str]:
    """Problems in a record set itself, before anything is published.

    A CNAME cannot share its name with other data (RFC 2181 §10.1) and the apex
    always has SOA/NS; a profile or an override that breaks this would produce a
    zone every DNS server refuses, so `dns records` refuses to print it.
    """
    problems: list[str] = []
    by_name: dict[str, set[str]] = {}
    for rec in records:
        by_name.setdefault(rec.name, set()).add(rec.rtype)
    for name, types in sorted(by_name.items()):
        if "CNAME" in types and (len(types) > 1 or name == records[0].name):
            problems.append(f"{name}: CNAME beside other data ({', '.join(sorted(types))})")
    return problems


def known_records(spec: DomainDnsSpec) -> list[Record]:
    """The DKIM and extra records that any known profile would publish for `spec.domain`.

    This is how mailctl knows which records it once published without a marker
    record or a state file: the old relay's DKIM CNAME is "a record the mailgun
    profile publishes for this domain", whichever machine published it. Values
    are filled where the config gives the parameters, else None (name and type
    alone identify the record).
    """
    from mailctl.dns.profiles import all_profiles

    out: list[Record] = []
    for kind in ("providers", "relays"):
        for profile in all_profiles(kind, spec.profile_dirs).values():
            selectors = profile.dkim_selectors
            if kind == "relays":
                selectors = tuple(spec.relay_selectors.get(profile.name, selectors))
            elif profile.name == spec.profile and spec.dkim_selectors:
                selectors = spec.dkim_selectors
            out += _dkim_records(spec, profile, selectors)
            own = template_values(spec, profile)
            for extra in profile.records:
                out.append(Record(_fqdn(extra.name, spec.domain), extra.rtype,
                                  fill(extra.value, own), spec.ttl, extra.purpose, True,
                                  profile.name))
    return out
