"""Async DNS queries with an explicit outcome for every failure.

Checks must tell "the record is not there" (NXDOMAIN / no data) apart from "we
could not find out" (SERVFAIL, timeout, refused): the second is reported as
unknown, never as missing. Queries are de-duplicated per client, so SPF trees
and DKIM/MX checks that ask the same question pay for it once, and a semaphore
keeps a 100-domain run from flooding the resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    ERROR = "error"

    @property
    def failed(self) -> bool:
        """True when the answer says nothing about the record's existence."""
        return self in (Outcome.SERVFAIL, Outcome.TIMEOUT, Outcome.REFUSED, Outcome.ERROR)

    @property
    def absent(self) -> bool:
        return self in (Outcome.NXDOMAIN, Outcome.NODATA)


@dataclass(frozen=True, slots=True)
class Answer:
    qname: str
    rdtype: str
    outcome: Outcome
    rdatas: tuple[Any, ...] = ()  # dnspython rdata objects of `rdtype` at the end of the chain
    cnames: tuple[str, ...] = ()  # CNAME targets followed from qname, in order
    detail: str = ""
    flags: int = 0  # header flags of the response (AA: authoritative, AD: validated)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def texts(self) -> list[str]:
        """TXT rdatas as strings, each RR's character-strings joined with nothing."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self.rdatas]

    def describe(self) -> str:
        if self.outcome.failed:
            return f"{self.rdtype} {self.qname}: {self.outcome.value} {self.detail}".strip()
        return f"{self.rdtype} {self.qname}: {self.outcome.value}"


def parse_server(server: str) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `[IPv6]:PORT` -> (ip, port); ValueError with a clear message."""
    import ipaddress

    text = server.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.lstrip(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"resolver {server!r} is not an IP address (IP or IP:PORT)") from None
    if not 0 < port < 65536:
        raise ValueError(f"resolver {server!r} has an invalid port")
    return host, port


def system_resolvers() -> list[tuple[str, int]]:
    import dns.resolver

    try:
        conf = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return [("127.0.0.1", 53)]
    return [(str(ns), int(conf.port)) for ns in conf.nameservers] or [("127.0.0.1", 53)]


@dataclass
class DnsClient:
    """One resolver, one cache, one query counter: create one per check run."""

    servers: list[tuple[str, int]] = field(default_factory=list)
    timeout: float = 2.0
    tries: int = 2
    concurrency: int = 64
    recurse: bool = True  # False: RD=0, for asking authoritative servers directly
    sent: int = 0
    _cache: dict[tuple[str, str], asyncio.Task[Answer]] = field(default_factory=dict)
    _sem: asyncio.Semaphore | None = None

    @classmethod
    def create(cls, resolver: str | None = None, *, timeout: float = 2.0, tries: int = 2,
               concurrency: int = 64) -> DnsClient:
        servers = [parse_server(resolver)] if resolver else system_resolvers()
        return cls(servers=servers, timeout=timeout, tries=tries, concurrency=concurrency)

    async def query(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype.upper())
        task = self._cache.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(*key))
            self._cache[key] = task
        return await task

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        """Count the queries sent inside the block (result in box[0])."""
        box = [self.sent]
        yield box
        box[0] = self.sent - box[0]

    async def _query(self, name: str, rdtype: str) -> Answer:
        import dns.asyncquery
        import dns.exception
        import dns.flags
        import dns.message
        import dns.name
        import dns.rcode
        import dns.rdatatype

        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            return Answer(name, rdtype, Outcome.ERROR, detail=f"bad name: {exc}")
        # EDNS with a 1232-byte payload: DKIM keys and long TXT sets fit in UDP, so the
        # TCP fallback (a connection per query) is the exception, not the rule
        request = dns.message.make_query(qname, dns.rdatatype.from_text(rdtype), use_edns=0,
                                         payload=1232)
        if self.recurse:
            request.flags |= dns.flags.AD  # RFC 6840 §5.7: ask a validating resolver to say so
        else:
            request.flags &= ~dns.flags.RD
        last = Answer(name, rdtype, Outcome.TIMEOUT, detail="no server tried")
        for _ in range(self.tries):
            for host, port in self.servers:
                async with self._sem:
                    self.sent += 1
                    try:
                        resp, _tcp = await dns.asyncquery.udp_with_fallback(
                            request, host, timeout=self.timeout, port=port
                        )
                    except dns.exception.Timeout:
                        last = Answer(name, rdtype, Outcome.TIMEOUT, detail=f"{host}:{port}")
                        continue
                    except (OSError, dns.exception.DNSException) as exc:
                        last = Answer(name, rdtype, Outcome.ERROR, detail=str(exc))
                        continue
                rcode = resp.rcode()
                if rcode == dns.rcode.SERVFAIL:
                    last = Answer(name, rdtype, Outcome.SERVFAIL, detail=f"{host}:{port}")
                    continue
                if rcode == dns.rcode.REFUSED:
                    last = Answer(name, rdtype, Outcome.REFUSED, detail=f"{host}:{port}")
                    continue
                return _interpret(name, rdtype, resp)
        return last


def _interpret(name: str, rdtype: str, resp: Any) -> Answer:
    import dns.name
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype

    wanted = dns.rdatatype.from_text(rdtype)
    current = dns.name.from_text(name)
    cnames: list[str] = []
    for _ in range(16):  # follow the CNAME chain the resolver included
        rrset = resp.get_rrset(resp.answer, current, dns.rdataclass.IN, wanted)
        if rrset is not None:
            return Answer(name, rdtype, Outcome.OK, tuple(rrset), tuple(cnames),
                          flags=resp.flags)
        if wanted == dns.rdatatype.CNAME:
            break
        cname = resp.get_rrset(resp.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        current = cname[0].target
        cnames.append(current.to_text(omit_final_dot=True).lower())
    outcome = Outcome.NXDOMAIN if resp.rcode() == dns.rcode.NXDOMAIN else Outcome.NODATA
    return Answer(name, rdtype, outcome, cnames=tuple(cnames), flags=resp.flags)
