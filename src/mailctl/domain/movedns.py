"""A move's DNS steps through the dns library: lower the TTL, cut over, point back.

Each step is "publish this config's mail records with this TTL" (dns plan/apply,
so the usual scope applies: records that are not mail records are never
touched). Where the domain has no managed DNS host, the step prints exactly
what to change and is done when a resolver answers with it (`Blocked` until
then, so `move run` can be called again, e.g. from cron).

| step      | records of            | TTL                          |
| --------- | --------------------- | ---------------------------- |
| lower-ttl | the source (as now)   | the move's (default 300 s)   |
| cutover   | the target            | the move's                   |
| rollback  | the source            | the configured one           |
| finish    | the target            | the configured one           |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailctl.domain.moveproject import Blocked, MoveError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.move import Move


def _which(move: Move, step: str) -> tuple[Config, int | None]:
    ttl = int(move.project.data["ttl"])
    return {"lower-ttl": (move.config, ttl), "cutover": (move.target_config, ttl),
            "rollback": (move.config, None), "finish": (move.target_config, None)}[step]


def managed(config: Config, domain: str) -> bool:
    from mailctl.dns.desired import targets_from_config

    targets, _skipped = targets_from_config(config, ())
    return any(s.domain == domain for t in targets for s in t.specs)


def publish(move: Move, step: str, resolver: str | None = None) -> dict[str, Any]:
    """Do `step` (table above); what was done, for the project's state."""
    from mailctl.dns.settings import spec_from_config

    config, ttl = _which(move, step)
    domain = move.domain
    configured = spec_from_config(config, domain).ttl
    if not managed(config, domain):
        return _by_hand(config, domain, step, ttl, resolver) | {"old_ttl": configured}
    from mailctl.dns.hosts import HostError
    from mailctl.dns.publish import apply_plan, make_plan

    plan = make_plan(config, [domain], ttl=ttl)
    changes = [c for z in plan.zones for c in z.changes]
    if step == "lower-ttl":
        other = [c for c in changes
                 if not (c.action == "update" and sorted(c.old) == sorted(c.new))]
        if other:
            raise MoveError(
                f"the zone of {domain} differs from the config beyond TTLs ("
                + ", ".join(f"{c.action} {c.name} {c.rtype}" for c in other[:5])
                + "): publish the current records first (`mailctl dns plan`, `dns apply`), "
                "then `move run` again")
    old_ttl = max([configured, *[c.old_ttl or 0 for c in changes]])
    move.say(f"{step}: {len(changes)} DNS change(s) for {domain}"
             + "".join(f"\n  {c.action} {c.name} {c.rtype} {' '.join(c.new or c.old)}"
                       f" (ttl {c.old_ttl} -> {c.new_ttl})" for c in changes))
    # The move is the confirmation: its plan was reviewed at `move start`; the shares
    # would refuse a cutover, which by design changes most of the mail records.
    outcomes = apply_plan(plan, force=True, confirm_deletes=True)
    bad = [o for o in outcomes if not o.applied]
    if bad:
        raise HostError("; ".join(o.error or f"{o.zone}: not applied" for o in bad))
    return {"dns": "managed", "changes": len(changes), "old_ttl": old_ttl}


def expected(config: Config, domain: str, ttl: int | None) -> list[tuple[str, str, str, int]]:
    """(name, type, value, ttl) of the mail records `config` publishes for `domain`."""
    import dataclasses

    from mailctl.dns.desired import published
    from mailctl.dns.settings import spec_from_config

    spec = spec_from_config(config, domain)
    if ttl is not None:
        spec = dataclasses.replace(spec, ttl=ttl)
    records, _notes = published(spec)
    return [(r.name, r.rtype, r.value or "", r.ttl) for r in records]


def _by_hand(config: Config, domain: str, step: str, ttl: int | None,
             resolver: str | None) -> dict[str, Any]:
    """No DNS host to write to: done once a resolver sees the MX it should (and, for
    lower-ttl, a TTL no higher than asked); else Blocked with what to change."""
    want = expected(config, domain, ttl)
    mx = sorted(v.split()[1].rstrip(".").lower() for n, t, v, _ in want if t == "MX")
    limit = max((x for _, t, _, x in want if t == "MX"), default=3600)
    seen, got = _mx_seen(domain, resolver, need_ttl=step == "lower-ttl")
    if seen is not None and sorted(seen) == mx and (step != "lower-ttl" or got <= limit):
        return {"dns": "by hand", "changes": 0}
    lines = "\n".join(f"  {n}. {x} IN {t} {v}" for n, t, v, x in want)
    now = ", ".join(seen) if seen else "nothing"
    raise Blocked(f"{domain} has no DNS host mailctl can write to: at your DNS host, set "
                  f"these records ({step}), then `mailctl move run` again (the resolver "
                  f"answers MX {now} with TTL {got} for now):\n{lines}")


def _ask(server: tuple[str, int], name: str, rdtype: str) -> Any:
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name + ".", dns.rdatatype.from_text(rdtype))
    return dns.query.udp(query, server[0], port=server[1], timeout=3)


def _authoritative(domain: str, via: tuple[str, int]) -> tuple[str, int] | None:
    """One of the zone's name servers (port 53), found through the resolver `via`: a
    recursive resolver's TTL counts down from what it cached, so the TTL is read there."""
    import dns.exception
    import dns.rdatatype

    labels = domain.split(".")
    for i in range(len(labels) - 1):
        try:
            resp = _ask(via, ".".join(labels[i:]), "NS")
            ns = [str(r.target).rstrip(".") for rr in resp.answer
                  if rr.rdtype == dns.rdatatype.NS for r in rr]
            if not ns:
                continue
            resp = _ask(via, ns[0], "A")
            addrs = [r.address for rr in resp.answer if rr.rdtype == dns.rdatatype.A
                     for r in rr]
            return (addrs[0], 53) if addrs else None
        except (dns.exception.DNSException, OSError):
            return None
    return None


def _mx_seen(domain: str, resolver: str | None, need_ttl: bool = False
             ) -> tuple[list[str] | None, int]:
    """The MX hosts a resolver answers (None: no answer at all) and their TTL as the
    zone's authoritative server gives it (the resolver's, when it is authoritative)."""
    import dns.exception
    import dns.flags
    import dns.rdatatype

    from mailctl.dns.resolver import parse_server, system_resolvers

    servers = [parse_server(resolver)] if resolver else system_resolvers()
    for server in servers:
        try:
            resp = _ask(server, domain, "MX")
        except (dns.exception.DNSException, OSError):
            continue
        hosts, ttl = [], 0
        for rrset in resp.answer:
            if rrset.rdtype == dns.rdatatype.MX:
                hosts = [str(r.exchange).rstrip(".").lower() for r in rrset]
                ttl = int(rrset.ttl)
        if need_ttl and hosts and not resp.flags & dns.flags.AA:
            auth = _authoritative(domain, server)
            try:
                ttl = max((int(rr.ttl) for rr in _ask(auth, domain, "MX").answer
                           if rr.rdtype == dns.rdatatype.MX), default=ttl) if auth else 1 << 30
            except (dns.exception.DNSException, OSError):
                ttl = 1 << 30  # not known: not seen yet
        return hosts, ttl
    return None, 0
