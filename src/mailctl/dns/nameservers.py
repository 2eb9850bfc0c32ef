"""Ask every authoritative nameserver of the zone directly and compare the answers.

A resolver shows whichever server it happened to ask. A secondary that stopped
transferring (older SOA serial), a server listed in NS that no longer serves the
zone (lame: REFUSED, or an answer without the AA bit) or one that cannot be
reached makes mail work for some senders and fail for others: the classic
"works for me". So each server in the NS set is asked for the zone's SOA,
without recursion, and when the serials differ, for the mail records too.

Costs: one NS lookup (more for a domain below its zone apex), one A lookup per
server name (shared by all domains on the same servers) and one SOA query per
server, all concurrent; the mail records (MX, SPF, DMARC, DKIM, MTA-STS) are
compared only when serials differ, since servers with the same serial serve
the same zone. That keeps the check at a few queries per domain. Differing
serials with identical mail records are only info: independent providers
(multi-provider DNS) number their serials independently. Only IPv4 addresses
are asked, and AAAA only for a server without one, so a checker without IPv6
does not report every dual-stack server as unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S
from mailctl.dns.resolver import Answer, DnsClient, Outcome

MAIL_PURPOSES = ("mx", "spf", "dkim", "dmarc", "mta-sts")
_AA = 0x0400  # dns.flags.AA, without importing dnspython at module import


async def _zone_and_servers(ctx: Context) -> tuple[str, list[str]] | None:
    """The zone apex holding the domain and its NS host names; None (reported) if unknown."""
    labels = ctx.domain.split(".")
    for start in range(len(labels) - 1):
        zone = ".".join(labels[start:])
        answer = await ctx.client.query(zone, "NS")
        if answer.outcome.failed:
            ctx.unknown("ns.unknown", answer)
            return None
        if answer.ok and not answer.cnames:
            return zone, sorted({r.target.to_text(omit_final_dot=True).lower()
                                 for r in answer.rdatas})
    return None


async def _address(ctx: Context, host: str) -> str | Answer:
    """The server's address, or the failed/empty answer that explains why there is none."""
    answer = await ctx.client.query(host, "A")
    if not answer.ok:
        answer6 = await ctx.client.query(host, "AAAA")
        if answer6.ok:
            answer = answer6
    if answer.ok:
        return str(answer.rdatas[0].address)
    return answer


def _questions(ctx: Context, zone: str) -> list[tuple[str, str]]:
    """(name, type) of the mail records inside `zone`; TXT also covers a CNAME at the name."""
    wanted = {(ctx.domain, "MX"), (ctx.domain, "TXT"), (f"_dmarc.{ctx.domain}", "TXT")}
    for record in ctx.expected:
        if record.purpose not in MAIL_PURPOSES:
            continue
        if record.name != zone and not record.name.endswith("." + zone):
            continue
        wanted.add((record.name, "MX" if record.rtype == "MX" else "TXT"))
    return sorted(wanted)


def _signature(answer: Answer) -> str:
    """What a server said, normalised so that only real differences differ."""
    if not answer.ok:
        chain = f" via CNAME {' -> '.join(answer.cnames)}" if answer.cnames else ""
        return f"{answer.outcome.value}{chain}"
    return " | ".join(sorted(r.to_text().lower() for r in answer.rdatas))


async def check_nameservers(ctx: Context, port: int = 53) -> None:
    found = await _zone_and_servers(ctx)
    if found is None:
        return
    zone, hosts = found
    addresses = await asyncio.gather(*(_address(ctx, h) for h in hosts))
    servers: list[tuple[str, str]] = []
    for host, address in zip(hosts, addresses, strict=True):
        if isinstance(address, str):
            servers.append((host, address))
        elif address.outcome.failed:
            ctx.unknown("ns.unknown", address)
        else:
            ctx.add("ns.unreachable", S.WARNING, zone, f"nameserver {host} has no address: "
                    "resolvers waste a timeout on it before asking another",
                    found=f"NS {host}. ({address.outcome.value})",
                    fix=f"give {host} an A record, or remove it from the NS set "
                    "(at the registrar too)")
    if not servers:
        return
    clients = [DnsClient(servers=[(ip, port)], timeout=ctx.client.timeout,
                         tries=ctx.client.tries, recurse=False, _sem=ctx.client._sem)
               for _, ip in servers]
    soas = await asyncio.gather(*(c.query(zone, "SOA") for c in clients))
    serving: list[tuple[str, DnsClient, Answer]] = []
    dead: list[tuple[str, Answer]] = []
    for (host, ip), client, soa in zip(servers, clients, soas, strict=True):
        label = f"{host} ({ip})"
        if soa.outcome in (Outcome.TIMEOUT, Outcome.ERROR):
            dead.append((label, soa))
        elif soa.outcome is Outcome.REFUSED or not soa.ok or not soa.flags & _AA:
            ctx.add("ns.lame", S.WARNING, zone, f"nameserver {label} is in the NS set but "
                    f"does not serve {zone} (lame delegation)",
                    found=f"SOA {zone}: {soa.outcome.value}"
                    + ("" if soa.flags & _AA or not soa.ok else ", not authoritative"),
                    fix=f"load the zone on {host}, or remove it from the NS set "
                    "(at the registrar too)")
        else:
            serving.append((label, client, soa))
    _report_dead(ctx, zone, dead, len(servers))
    serials = {label: int(soa.rdatas[0].serial) for label, _, soa in serving}
    if len(set(serials.values())) > 1:
        questions = _questions(ctx, zone)
        answers = await asyncio.gather(*(
            asyncio.gather(*(c.query(n, t) for n, t in questions)) for _, c, _ in serving))
        _compare(ctx, zone, serials, questions, list(answers))
    ctx.client.sent += sum(c.sent for c in clients)


def _report_dead(ctx: Context, zone: str, dead: list[tuple[str, Answer]], total: int) -> None:
    if dead and len(dead) == total:
        # nobody answered, though the resolver did: most likely direct DNS is blocked here
        ctx.add("ns.unknown", S.UNKNOWN, zone, "no authoritative nameserver answered a direct "
                "query; if your network only allows its own resolver, this is not a problem "
                "of the domain", found="; ".join(f"{h}: {a.describe()}" for h, a in dead),
                fix="retry from another network, or without --ns-check")
        return
    for label, answer in dead:
        ctx.add("ns.unreachable", S.WARNING, zone, f"nameserver {label} does not answer: "
                "resolvers that pick it wait for a timeout, some give up",
                found=answer.describe(), fix="fix or replace the server, or remove it from "
                "the NS set (at the registrar too)")


def _compare(ctx: Context, zone: str, serials: dict[str, int],
             questions: list[tuple[str, str]], answers: Sequence[Sequence[Answer]]) -> None:
    """Serials differ: say which servers lag, and which mail answers that changes."""
    labels = list(serials)
    differing = []
    for index, question in enumerate(questions):
        said = {label: _signature(per_server[index])
                for label, per_server in zip(labels, answers, strict=True)}
        if len(set(said.values())) > 1:
            differing.append((question, said))
    newest = max(serials.values())
    behind = [label for label, serial in serials.items() if serial < newest]
    ctx.add("ns.serial_mismatch", S.WARNING if differing else S.INFO, zone,
            f"nameservers serve different versions of {zone}: "
            f"{', '.join(behind)} {'is' if len(behind) == 1 else 'are'} behind"
            + ("" if differing else " (the mail records agree; independent providers "
               "number serials independently)"),
            found="; ".join(f"{label}: serial {s}" for label, s in serials.items()),
            expected=f"serial {newest} everywhere",
            fix="check zone transfers (NOTIFY/AXFR/IXFR) from the primary to "
            + ", ".join(behind))
    for (name, rdtype), said in differing:
        ctx.add("ns.answers_differ", S.ERROR, name,
                f"nameservers give different {rdtype} answers for {name}: which one a "
                "sender sees depends on the server its resolver asks",
                found="; ".join(f"{label}: {text}" for label, text in said.items()),
                fix="make every nameserver serve the same zone (check zone transfers, "
                "or the copy on each server)")
