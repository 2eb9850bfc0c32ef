"""After an apply: which servers already answer with the new records.

The zone's authoritative servers are asked first (directly, no cache, TTLs
compared too), then the resolver(s) users would ask. A server that does not
answer is "unreachable", never "has the old data": failure is not absence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailctl.dns.publish import DnsPlan, ZonePlan


@dataclass(frozen=True)
class Expect:
    name: str
    rtype: str
    values: frozenset[str]  # empty: the record must be gone
    ttl: int | None


@dataclass(frozen=True)
class Server:
    label: str  # "ns1.example.net" or "resolver"
    address: str
    port: int
    authoritative: bool

    @property
    def where(self) -> str:
        return f"{self.label} ({self.address}:{self.port})"


@dataclass
class ServerResult:
    server: Server
    ok: bool = False
    pending: list[str] = field(default_factory=list)  # "name TYPE" not yet as expected
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"server": self.server.label, "address": f"{self.server.address}:"
                f"{self.server.port}", "authoritative": self.server.authoritative,
                "new_data": self.ok, "pending": self.pending, "error": self.error}


def _norm(rtype: str, text: str) -> str:
    out = " ".join(text.split()).lower()
    return out.rstrip(".") if rtype in ("CNAME", "MX", "SRV") else out


def zone_expectations(zone: ZonePlan) -> list[Expect]:
    """The record sets a zone's applied changes must produce."""
    return [Expect(c.name, c.rtype, frozenset(_norm(c.rtype, v) for v in c.new), c.new_ttl)
            for c in zone.changes]


def expectations(plan: DnsPlan) -> dict[str, list[Expect]]:
    """Zone -> the record sets its applied changes must produce."""
    return {zone.zone: zone_expectations(zone) for zone in plan.zones if zone.changes}


def verify_at(address: str, port: int, expects: list[Expect], timeout: float = 5.0) -> bool:
    """Whether the server at address:port answers every expectation (one round, no retry)."""
    result = asyncio.run(_server_round(Server("host", address, port, True), expects, timeout))
    return result.ok


async def _answer(server: Server, expect: Expect, timeout: float) -> tuple[bool | None, str]:
    """(True: as expected, False: not yet, None: no answer), and why."""
    import dns.asyncquery
    import dns.exception
    import dns.message
    import dns.rcode
    import dns.rdatatype

    rdtype = dns.rdatatype.from_text(expect.rtype)
    query = dns.message.make_query(expect.name + ".", rdtype)
    try:
        resp = await dns.asyncquery.udp(query, server.address, port=server.port,
                                        timeout=timeout)
        if resp.flags & 0x0200:  # TC: the DKIM key does not fit
            resp = await dns.asyncquery.tcp(query, server.address, port=server.port,
                                            timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        return None, f"no answer ({exc or type(exc).__name__})"
    if resp.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None, dns.rcode.to_text(resp.rcode())
    found: set[str] = set()
    ttl = None
    for rrset in resp.answer:
        if rrset.rdtype != rdtype or rrset.name.to_text().rstrip(".").lower() != expect.name:
            continue
        ttl = int(rrset.ttl)
        for rd in rrset:
            text = b"".join(rd.strings).decode("utf-8", "replace") if expect.rtype == "TXT" \
                else rd.to_text()
            found.add(_norm(expect.rtype, text))
    if found != expect.values:
        return False, "old data"
    if server.authoritative and expect.values and expect.ttl is not None and ttl != expect.ttl:
        return False, f"TTL {ttl}, expected {expect.ttl}"
    return True, ""


async def _server_round(server: Server, expects: list[Expect], timeout: float) -> ServerResult:
    answers = await asyncio.gather(*(_answer(server, e, timeout) for e in expects))
    result = ServerResult(server)
    errors = [why for ok, why in answers if ok is None]
    result.pending = [f"{e.name} {e.rtype}" for e, (ok, _) in zip(expects, answers, strict=True)
                      if not ok]
    result.error = errors[0] if errors else None
    result.ok = not result.pending
    return result


async def poll(expects: list[Expect], servers: list[Server], *, timeout: float = 60.0,
               interval: float = 0.5, query_timeout: float = 2.0,
               progress: Callable[[list[ServerResult]], None] | None = None,
               ) -> list[ServerResult]:
    """Ask every server until each answers with the new data or `timeout` passes."""
    ordered = sorted(servers, key=lambda s: not s.authoritative)  # authoritative first
    results = {s: ServerResult(s, pending=[f"{e.name} {e.rtype}" for e in expects])
               for s in ordered}
    deadline = time.monotonic() + timeout
    while True:
        todo = [s for s in ordered if not results[s].ok]
        for server in todo:
            results[server] = await _server_round(server, expects, query_timeout)
        if progress is not None:
            progress([results[s] for s in ordered])
        if all(r.ok for r in results.values()) or time.monotonic() >= deadline:
            return [results[s] for s in ordered]
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))


async def authoritative_servers(zone: str, resolver: tuple[str, int] | None,
                                ns_port: int = 53) -> list[Server]:
    """The zone's NS hosts and their addresses, found through `resolver`."""
    from mailctl.dns.resolver import DnsClient, system_resolvers

    servers = [resolver] if resolver else system_resolvers()
    client = DnsClient(servers=servers, timeout=2.0, tries=2)
    ns = await client.query(zone, "NS")
    out: list[Server] = []
    names = sorted(r.target.to_text(omit_final_dot=True).lower() for r in ns.rdatas) \
        if ns.ok else []
    for name in names:
        for rtype in ("A", "AAAA"):
            answer = await client.query(name, rtype)
            if answer.ok:
                out += [Server(name, r.address, ns_port, True) for r in answer.rdatas]
    return out
