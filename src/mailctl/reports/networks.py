"""Who may send as a domain: the declared configuration resolved to networks.

For one domain: the hosting provider's profile (its SPF includes, and for a
self-hosted server its MX hosts' addresses), each configured relay's includes,
the `dns.spf_extra` terms, and every relay profile the config does *not*
declare (a former relay still sending shows up there). Each include is walked
through DNS (include/redirect, ip4/ip6, a, mx), bounded in depth and lookups,
with the DNS client's cache and concurrency limit. The domain's published SPF
tree is walked too, so a verdict can say which include is missing. A lookup
that fails is reported as unknown, never read as "no networks".
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable
from dataclasses import dataclass, field

from mailctl.dns import spf
from mailctl.dns.profiles import Profile, all_profiles, fill
from mailctl.dns.records import DomainDnsSpec, load_profiles, mx_hosts, template_values
from mailctl.dns.resolver import DnsClient

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_DEPTH = 10
MAX_LOOKUPS = 60  # per sender: well past the 10 SPF allows, short of a runaway walk


@dataclass
class Sender:
    cls: str  # provider | relay | declared | former
    name: str  # profile name, or the spf_extra term
    title: str  # for people: "Brevo", "Migadu"
    includes: tuple[str, ...] = ()  # SPF names that identify it (filled templates)
    networks: list[Network] = field(default_factory=list)


@dataclass
class DomainSenders:
    domain: str
    senders: list[Sender]
    published: set[str] | None  # include targets in the domain's live SPF tree (None: unknown)
    unknown: list[str] = field(default_factory=list)  # lookups that failed

    def match(self, ip: str) -> Sender | None:
        """The first sender whose networks hold `ip`: the provider, then configured relays,
        then declared extras, then former relays."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for s in self.senders:
            for net in s.networks:
                if addr.version == net.version and addr in net:
                    return s
        return None


def short_title(p: Profile) -> str:
    return (p.title or p.name).split(" (")[0]


async def _addresses(client: DnsClient, name: str, cidr4: int = 32, cidr6: int = 128,
                     budget: list[int] | None = None, unknown: list[str] | None = None
                     ) -> list[Network]:
    out: list[Network] = []
    for rdtype, cidr in (("A", cidr4), ("AAAA", cidr6)):
        if budget is not None:
            budget[0] -= 1
        ans = await client.query(name, rdtype)
        if ans.outcome.failed and unknown is not None:
            unknown.append(ans.describe())
        for r in ans.rdatas:
            out.append(ipaddress.ip_network(f"{r.address}/{cidr}", strict=False))
    return out


def _cidrs(value: str | None, mech: str, domain: str) -> tuple[str, int, int]:
    target, c4, c6 = domain, 32, 128
    if value:
        target, _, rest = value.partition("/")
        target = target or domain
        if rest:
            parts = ("/" + rest).split("//")
            if parts[0].strip("/"):
                c4 = int(parts[0].strip("/"))
            if len(parts) > 1 and parts[1]:
                c6 = int(parts[1])
    return target, c4, c6


async def spf_networks(client: DnsClient, domain: str, depth: int = 0,
                       budget: list[int] | None = None, unknown: list[str] | None = None,
                       path: tuple[str, ...] = ()) -> list[Network]:
    """Every network `domain`'s SPF record authorises (pass qualifiers only)."""
    budget = budget if budget is not None else [MAX_LOOKUPS]
    if depth > MAX_DEPTH or budget[0] <= 0 or domain.lower() in path:
        return []
    budget[0] -= 1
    answer, records = await spf.fetch_record(client, domain)
    if answer.outcome.failed:
        if unknown is not None:
            unknown.append(answer.describe())
        return []
    if not records:
        return []
    terms, _ = spf.parse(records[0])
    path = (*path, domain.lower())
    out: list[Network] = []
    jobs = []
    for t in terms:
        if t.modifier and t.name != "redirect":
            continue
        if t.qualifier not in ("+", ""):
            continue
        try:
            if t.name in ("ip4", "ip6") and t.value:
                out.append(ipaddress.ip_network(t.value, strict=False))
            elif t.name in ("include", "redirect") and t.value and not spf.has_macro(t.value):
                jobs.append(spf_networks(client, t.value, depth + 1, budget, unknown, path))
            elif t.name == "a":
                target, c4, c6 = _cidrs(t.value, "a", domain)
                jobs.append(_addresses(client, target, c4, c6, budget, unknown))
            elif t.name == "mx":
                target, c4, c6 = _cidrs(t.value, "mx", domain)
                jobs.append(_mx_networks(client, target, c4, c6, budget, unknown))
        except ValueError:
            continue
    for got in await asyncio.gather(*jobs):
        out.extend(got)
    return out


async def _mx_networks(client: DnsClient, domain: str, c4: int = 32, c6: int = 128,
                       budget: list[int] | None = None, unknown: list[str] | None = None
                       ) -> list[Network]:
    ans = await client.query(domain, "MX")
    if ans.outcome.failed and unknown is not None:
        unknown.append(ans.describe())
    hosts = [str(r.exchange).rstrip(".") for r in ans.rdatas][:10]
    nets = await asyncio.gather(*(_addresses(client, h, c4, c6, budget, unknown)
                                  for h in hosts))
    return [n for ns in nets for n in ns]


def _fill_all(templates: tuple[str, ...], values: dict[str, str]) -> tuple[str, ...]:
    out = []
    for t in templates:
        got = fill(t, values)
        if got and got.lower() not in out:
            out.append(got.lower())
    return tuple(out)


async def resolve_senders(spec: DomainDnsSpec, client: DnsClient) -> DomainSenders:
    provider, relays = load_profiles(spec)
    values = template_values(spec)
    unknown: list[str] = []
    senders: list[Sender] = []
    prov = Sender("provider", provider.name, short_title(provider),
                  _fill_all(provider.spf_include + provider.spf_recognise, values))
    senders.append(prov)
    configured = set(spec.relays)
    for r in relays:
        senders.append(Sender("relay", r.name, short_title(r),
                              _fill_all(r.spf_include + r.spf_recognise, values)))
    for term in spec.spf_extra:
        senders.append(Sender("declared", term, term,
                              (term.split(":", 1)[1].lower(),) if term.startswith("include:")
                              else ()))
    for name, r in sorted(all_profiles("relays", spec.profile_dirs).items()):
        if name in configured or name == "generic":
            continue
        includes = _fill_all(r.spf_include + r.spf_recognise, values)
        if includes and not set(includes) & set(prov.includes):
            senders.append(Sender("former", r.name, short_title(r), includes))

    async def fill_networks(s: Sender) -> None:
        budget = [MAX_LOOKUPS]
        found = await asyncio.gather(*(spf_networks(client, inc, 0, budget, unknown)
                                       for inc in s.includes))
        s.networks = [n for ns in found for n in ns]

    jobs = [fill_networks(s) for s in senders if s.includes]
    # The provider's own mechanisms (self-hosted: mx, a:{mx_host}) and declared ip4/ip6/a/mx.
    for mech in provider.spf_mechanisms:
        filled = fill(mech, values)
        if filled:
            jobs.append(_mechanism(client, spec, filled, prov, unknown))
    if provider.self_hosted:
        for host in mx_hosts(spec):
            jobs.append(_extend(prov, _addresses(client, host, unknown=unknown)))
    for s in senders:
        if s.cls == "declared" and not s.includes:
            jobs.append(_mechanism(client, spec, s.name, s, unknown))
    root_task = asyncio.ensure_future(spf.walk(client, spec.domain))
    await asyncio.gather(*jobs)
    root = await root_task
    published: set[str] | None
    if root.outcome.failed:
        published = None
        unknown.extend(root.unknown)
    else:
        published = {n.lower() for n in spf.tree_includes(root, set())}
    return DomainSenders(spec.domain, senders, published, unknown)


async def _extend(s: Sender, job: Awaitable[list[Network]]) -> None:
    s.networks.extend(await job)


async def _mechanism(client: DnsClient, spec: DomainDnsSpec, term: str, s: Sender,
                     unknown: list[str]) -> None:
    name, _, value = term.partition(":")
    name = name.lstrip("+").lower()
    try:
        if name in ("ip4", "ip6"):
            s.networks.append(ipaddress.ip_network(value, strict=False))
        elif name == "a":
            target, c4, c6 = _cidrs(value or None, "a", spec.domain)
            s.networks.extend(await _addresses(client, target, c4, c6, unknown=unknown))
        elif name.startswith("mx"):
            target, c4, c6 = _cidrs(value or None, "mx", spec.domain)
            s.networks.extend(await _mx_networks(client, target, c4, c6, unknown=unknown))
        elif name == "include" and value:
            s.networks.extend(await spf_networks(client, value, unknown=unknown))
    except ValueError:
        return


async def reverse_names(client: DnsClient, ips: list[str]) -> dict[str, str | None]:
    """PTR names of `ips`: "" where there is none, None where the lookup failed (not to
    be cached as "none")."""
    import dns.exception
    import dns.reversename

    async def one(ip: str) -> tuple[str, str | None]:
        try:
            qname = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        except (ValueError, dns.exception.SyntaxError):
            return ip, ""
        ans = await client.query(qname, "PTR")
        if ans.outcome.failed:
            return ip, None
        names = sorted(str(r.target).rstrip(".").lower() for r in ans.rdatas)
        return ip, names[0] if names else ""

    return dict(await asyncio.gather(*(one(ip) for ip in ips)))
