"""MX set, MX host sanity, reverse DNS of self-hosted MX, and the provider's extra records.

MX hosts are compared as a set of names (preference only informs), because a
provider switch shows up as a different set, while reordering is harmless.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re

from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S
from mailctl.dns.records import Record, expected_mx


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.rstrip("."))
    except ValueError:
        return False
    return True


async def check_mx(ctx: Context) -> list[str] | None:
    """Check the MX set; returns the live MX host names (None if unknown)."""
    domain = ctx.domain
    answer = await ctx.client.query(domain, "MX")
    want = expected_mx(ctx.spec, ctx.provider)
    want_text = ", ".join(f"{p} {h}" for p, h in want)
    if answer.outcome.failed:
        ctx.unknown("mx.unknown", answer)
        return None
    if answer.cnames:
        ctx.add("cname.conflict", S.ERROR, domain, "the mail domain itself is a CNAME: no "
                "other data may sit beside it (RFC 1034 §3.6.2), so its MX and SPF are "
                "ignored or taken from the target", found=f"CNAME {answer.cnames[0]}.",
                fix="remove it; use your DNS host's ALIAS/flattening feature instead")
    if not answer.ok:
        ctx.add("mx.missing", S.ERROR, domain, "no MX record: mail falls back to the A record "
                "or bounces", expected=want_text,
                fix="add MX " + "; ".join(f"{p} {h}." for p, h in want))
        return []
    found = sorted((int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
                   for r in answer.rdatas)
    found_text = ", ".join(f"{p} {h or '.'}" for p, h in found)
    nulls = [f for f in found if f[1] in ("", ".")]
    if nulls:
        if len(found) > 1:
            ctx.add("mx.null_mixed", S.ERROR, domain, "a null MX (0 .) must be the only MX "
                    "(RFC 7505)", found=found_text, expected=want_text,
                    fix="remove the null MX, or all the others if the domain takes no mail")
        else:
            ctx.add("mx.null", S.ERROR, domain, "null MX: the domain declares it receives no "
                    "mail, but its provider profile receives mail", found=found_text,
                    expected=want_text, fix="replace it with the provider's MX records")
            return []
    hosts = [h for _, h in found if h not in ("", ".")]
    want_hosts = {h for _, h in want}
    missing, extra = sorted(want_hosts - set(hosts)), sorted(set(hosts) - want_hosts)
    if want and (missing or extra):
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"not in the profile: {', '.join(extra)}"] if extra else [])
        ctx.add("mx.mismatch", S.ERROR, domain, "MX set differs from the provider profile ("
                + "; ".join(parts) + ")", found=found_text, expected=want_text,
                fix="publish exactly: " + "; ".join(f"MX {p} {h}." for p, h in want))
    elif want and sorted(found) != sorted(want):
        ctx.add("mx.preference", S.INFO, domain, "MX preferences differ from the profile",
                found=found_text, expected=want_text)
    await asyncio.gather(*(_check_host(ctx, h) for h in hosts))
    if ctx.provider.self_hosted:
        await asyncio.gather(*(_check_ptr(ctx, h) for h in hosts if not _is_ip(h)))
    return hosts


async def _check_host(ctx: Context, host: str) -> None:
    if _is_ip(host):
        ctx.add("mx.ip_literal", S.ERROR, ctx.domain, f"MX target {host} is an IP address; "
                "it must be a host name", found=host, fix="point MX at a name with A/AAAA records")
        return
    a, aaaa = await asyncio.gather(ctx.client.query(host, "A"), ctx.client.query(host, "AAAA"))
    if a.cnames or aaaa.cnames:
        ctx.add("mx.cname", S.ERROR, host, "MX target is a CNAME (RFC 2181 §10.3); some "
                "senders refuse it", found=f"{host} CNAME {(a.cnames or aaaa.cnames)[0]}",
                fix=f"point MX at {(a.cnames or aaaa.cnames)[-1]} directly")
    if a.outcome.failed and aaaa.outcome.failed:
        ctx.unknown("mx.host_unknown", a)
    elif not a.ok and not aaaa.ok and not (a.outcome.failed or aaaa.outcome.failed):
        ctx.add("mx.no_address", S.ERROR, host, "MX host has no A or AAAA record: mail "
                "cannot be delivered to it", fix=f"add A/AAAA for {host} or remove the MX")


async def _check_ptr(ctx: Context, host: str) -> None:
    """Forward-confirmed reverse DNS: IP -> PTR name -> same IP."""
    import dns.reversename

    a, aaaa = await asyncio.gather(ctx.client.query(host, "A"), ctx.client.query(host, "AAAA"))
    addresses = [r.address for ans in (a, aaaa) if ans.ok for r in ans.rdatas]
    for ip in addresses:
        rev = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
        ptr = await ctx.client.query(rev, "PTR")
        if ptr.outcome.failed:
            ctx.unknown("ptr.unknown", ptr)
            continue
        if not ptr.ok:
            ctx.add("ptr.missing", S.ERROR, rev, f"{ip} ({host}) has no PTR record: many "
                    "receivers reject mail from it", expected=f"PTR {host}.",
                    fix=f"ask whoever owns {ip} (hosting provider) to set PTR {host}.")
            continue
        names = [r.target.to_text(omit_final_dot=True).lower() for r in ptr.rdatas]
        forward = await asyncio.gather(*(ctx.client.query(n, "AAAA" if ":" in ip else "A")
                                         for n in names))
        if any(f.outcome.failed for f in forward):
            ctx.unknown("ptr.unknown", next(f for f in forward if f.outcome.failed))
            continue
        confirmed = [n for n, f in zip(names, forward, strict=True)
                     if f.ok and ip in {r.address for r in f.rdatas}]
        if not confirmed:
            ctx.add("ptr.fcrdns", S.ERROR, rev, f"PTR of {ip} is {', '.join(names)}, which does "
                    f"not resolve back to {ip}", found=f"PTR {', '.join(names)}",
                    expected=f"PTR {host}. (and {host} A {ip})",
                    fix=f"set the PTR of {ip} to {host}.")
        elif host not in confirmed:
            ctx.add("ptr.name_differs", S.INFO, rev, f"PTR of {ip} is {confirmed[0]}, not the MX "
                    f"name {host}; the server's HELO name should match the PTR",
                    found=f"PTR {confirmed[0]}", expected=f"PTR {host}.")


def _normalise(rtype: str, value: str) -> str:
    text = " ".join(value.split()).lower()
    return text.rstrip(".") if rtype in ("CNAME", "SRV", "MX") else text


async def check_other_records(ctx: Context) -> None:
    """Verification TXT, autoconfig/SRV and other profile records."""
    handled = {"mx", "spf", "dkim", "dmarc", "tls-rpt"}
    todo = [r for r in ctx.expected if r.purpose not in handled
            and not (r.purpose == "mta-sts" and r.rtype == "TXT")]
    await asyncio.gather(*(_check_record(ctx, r) for r in todo))


async def _check_record(ctx: Context, rec: Record) -> None:
    answer = await ctx.client.query(rec.name, rec.rtype)
    if answer.outcome.failed:
        ctx.unknown("record.unknown", answer)
        return
    if rec.rtype == "TXT":
        found = answer.texts()
    elif rec.rtype == "CNAME":
        found = [r.target.to_text() for r in answer.rdatas]
    else:
        found = [r.to_text() for r in answer.rdatas]
    what = f"{rec.rtype} {rec.name}"
    if rec.value is None:
        if not found:
            ctx.add("record.missing", S.INFO if rec.optional else S.ERROR, rec.name,
                    f"{what} ({rec.purpose}, {rec.source or 'mailctl'}) is not published",
                    expected=f"{rec.rtype} <value from your provider>",
                    fix=f"publish {what}")
        return
    want = _normalise(rec.rtype, rec.value)
    if any(_normalise(rec.rtype, f) == want for f in found):
        return
    if rec.rtype == "TXT":  # the apex holds many TXT records: compare same-kind ones only
        prefix = re.split(r"[=:]", want, maxsplit=1)[0]
        found = [f for f in found if _normalise("TXT", f).startswith(prefix)]
    if rec.rtype == "CNAME" and answer.cnames and _normalise("CNAME", answer.cnames[0]) == want:
        return
    code = "record.mismatch" if found else "record.missing"
    ctx.add(code, S.INFO if rec.optional else S.ERROR, rec.name,
            f"{what} ({rec.purpose}, {rec.source}) "
            + ("has another value" if found else "is not published"),
            found=" | ".join(found) or None, expected=rec.zone_value(),
            fix=f"publish {rec.rtype} {rec.zone_value()} at {rec.name}")
