"""What each DNS host should hold: zones to publish, and the octoDNS Zone of their mail records.

Domains are grouped by (host, zone), so a sub-domain published in its parent
zone shares one plan with it. Only records with a known value are published;
the others become notes in the plan (a relay's undeclared records are
suggestions, never published).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailctl.dns.hosts import HostConfigError
from mailctl.dns.records import DomainDnsSpec, Record, expected_records
from mailctl.dns.settings import DnsConfigError, spec_from_config

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.dns.settings import DnsHost


@dataclass
class Target:
    """One zone at one DNS host and the declared domains whose records live in it."""

    host_name: str
    host: DnsHost
    zone: str
    specs: list[DomainDnsSpec]


def _zone_for(domain: str, zones: dict[str, str]) -> tuple[str, str] | None:
    best: tuple[str, str] | None = None
    for zone, host in zones.items():
        z = zone.lower().rstrip(".")
        if (domain == z or domain.endswith("." + z)) and (best is None or len(z) > len(best[0])):
            best = (z, host)
    return best


def targets_from_config(config: Config, domains: Sequence[str] = (),
                        ttl: int | None = None) -> tuple[list[Target], list[str]]:
    """Zones to publish, grouped by (host, zone); and domains skipped for having no host.

    Naming a domain without a host is a mistake (HostConfigError); with no
    names, every declared domain that has a host is published.
    """
    import dataclasses

    settings = config.file.dns
    hosts = settings.hosts if settings else {}
    zones = settings.zones if settings else {}
    names = list(domains) or sorted(config.desired.domains)
    grouped: dict[tuple[str, str], Target] = {}
    skipped: list[str] = []
    for name in names:
        try:
            spec = spec_from_config(config, name)
        except DnsConfigError as exc:
            raise HostConfigError(str(exc)) from None
        if ttl is not None:
            spec = dataclasses.replace(spec, ttl=ttl)
        block = config.file.domains[config.desired.raw_domain[spec.domain]].dns
        match = _zone_for(spec.domain, zones)
        host_name = (block.host if block else None) or (match[1] if match else None)
        where = f"domains.{config.desired.raw_domain[spec.domain]}.dns"
        if host_name is None:
            if domains:
                raise HostConfigError(f"{spec.domain} has no DNS host: set {where}.host, or list "
                                      "its zone under the top-level dns.zones")
            skipped.append(spec.domain)
            continue
        if host_name not in hosts:
            known = ", ".join(sorted(hosts)) or "none declared under dns.hosts"
            raise HostConfigError(f"{spec.domain}: unknown DNS host {host_name!r} (known: {known})")
        zone = ((block.zone if block else None) or (match[0] if match else spec.domain))
        zone = zone.lower().rstrip(".")
        if spec.domain != zone and not spec.domain.endswith("." + zone):
            raise HostConfigError(f"{spec.domain} is not inside zone {zone} ({where}.zone)")
        target = grouped.setdefault((host_name, zone),
                                    Target(host_name, hosts[host_name], zone, []))
        target.specs.append(spec)
    return [grouped[k] for k in sorted(grouped)], skipped


def published(spec: DomainDnsSpec) -> tuple[list[Record], list[str]]:
    """Records to publish, and notes on those that cannot be (value unknown)."""
    relays = set(spec.relays)
    out: list[Record] = []
    notes: list[str] = []
    for rec in expected_records(spec):
        if rec.optional and rec.source in relays and rec.purpose in ("dkim", "verification"):
            continue  # a relay's own records, not declared: suggestions only
        if rec.value is None:
            if rec.purpose == "mta-sts" and rec.rtype == "A":
                notes.append(f"{rec.name} {rec.rtype}: the MTA-STS policy host is served by "
                             "your web host, not published by mailctl")
            else:
                notes.append(f"{rec.name} {rec.rtype} ({rec.purpose}, {rec.source}): value "
                             "unknown; give the profile's parameters under dns.params or "
                             "dns.relay_params")
            continue
        out.append(rec)
    return out, notes


def _octo_value(rec: Record) -> Any:
    from mailctl.dns.scope import escape

    assert rec.value is not None
    if rec.rtype == "MX":
        pref, host = rec.value.split()
        return {"preference": int(pref), "exchange": host}
    if rec.rtype == "SRV":
        prio, weight, port, target = rec.value.split()
        return {"priority": int(prio), "weight": int(weight), "port": int(port), "target": target}
    if rec.rtype == "TXT":
        return escape(rec.value)
    return rec.value


def _relative(name: str, zone: str) -> str:
    return "" if name == zone else name.removesuffix("." + zone)


def published_records(target: Target) -> tuple[list[Record], list[str]]:
    """Every record the target's domains publish, and notes on those they cannot."""
    records: list[Record] = []
    notes: list[str] = []
    for spec in target.specs:
        more, why = published(spec)
        records += more
        notes += why
    return records, notes


def desired_zone(target: Target, records: list[Record]
                 ) -> tuple[Any, dict[tuple[str, str], list[str]]]:
    """The octoDNS Zone of `records` (from `published_records`), and each set's purposes."""
    from octodns.record import Record as OctoRecord
    from octodns.record.exception import ValidationError
    from octodns.zone import Zone

    zone = Zone(f"{target.zone}.", [])
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    purposes: dict[tuple[str, str], list[str]] = {}
    for rec in records:
        key = (_relative(rec.name, target.zone), rec.rtype)
        group = groups.setdefault(key, {"ttl": rec.ttl, "type": rec.rtype, "values": []})
        group["ttl"] = min(group["ttl"], rec.ttl)
        value = _octo_value(rec)
        if value not in group["values"]:
            group["values"].append(value)
        label = f"{rec.purpose} ({rec.source})" if rec.source else rec.purpose
        if label not in purposes.setdefault(key, []):
            purposes[key].append(label)
    for (name, rtype), group in sorted(groups.items()):
        data: dict[str, Any] = {"ttl": group["ttl"], "type": rtype}
        if rtype == "CNAME":
            data["value"] = group["values"][0]
        else:
            data["values"] = group["values"]
        try:
            zone.add_record(OctoRecord.new(zone, name, data))
        except ValidationError as exc:
            raise HostConfigError(f"{target.zone}: the record {name or '@'} {rtype} is not "
                                  f"valid: {exc}") from None
    return zone, purposes


def txt_prefixes() -> tuple[str, ...]:
    """Verification TXT prefixes of every known profile (`hosted-email-verify=`, ...)."""
    from mailctl.dns.profiles import all_profiles

    out = []
    for kind in ("providers", "relays"):
        for profile in all_profiles(kind).values():
            for extra in profile.records:
                if extra.rtype == "TXT":
                    head = extra.value.split("{", 1)[0]
                    if head and head not in out:
                        out.append(head)
    return tuple(out)
