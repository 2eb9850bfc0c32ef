"""SPF findings: the RFC limits, the `all` policy, and drift against the profiles.

Drift is judged by meaning: which senders the includes authorise, not string
equality, so reordered or re-spaced records are not reported.
"""

from __future__ import annotations

import re

from mailctl.dns import spf
from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S
from mailctl.dns.profiles import all_profiles
from mailctl.dns.records import expected_includes, expected_spf

_TERMISH = re.compile(r"^([-~+?]?(include:|ip4:|ip6:|a:|mx:|exists:|all\b)|redirect=)", re.I)


async def check_spf(ctx: Context) -> spf.Node | None:
    domain = ctx.domain
    want = expected_spf(ctx.spec, ctx.provider, ctx.relays)
    answer, records = await spf.fetch_record(ctx.client, domain)
    if answer.outcome.failed:
        ctx.unknown("spf.unknown", answer)
        return None
    if not records:
        strays = [t for t in answer.texts() if _TERMISH.match(t)]
        ctx.add("spf.missing", S.ERROR, domain, "no SPF record (TXT starting with v=spf1)",
                found="; ".join(strays) or None, expected=want,
                fix=f'add TXT at {domain}: "{want}"')
        return None
    if len(records) > 1:
        ctx.add("spf.multiple", S.ERROR, domain,
                f"{len(records)} SPF records: receivers treat this as a permanent error",
                found=" | ".join(records), expected=want,
                fix="merge them into one TXT record and delete the others")
    first_consequence = len(ctx.report.findings)
    root = await spf.walk(ctx.client, domain)
    _analyse(ctx, root, answer.texts(), want)
    if len(records) > 1:
        _as_consequences(ctx, first_consequence, len(records))
    return root


def _as_consequences(ctx: Context, start: int, n: int) -> None:
    """With several SPF records every receiver stops at permerror: what one of them
    says (a missing include, the all term) is a consequence to show, not an error."""
    import dataclasses

    for i in range(start, len(ctx.report.findings)):
        f = ctx.report.findings[i]
        # other checks run concurrently and add to the same report: only SPF's own
        if f.code.startswith("spf.") and f.severity in (S.ERROR, S.WARNING):
            ctx.report.findings[i] = dataclasses.replace(
                f, severity=S.INFO,
                message=f"{f.message} (judged from one of the {n} SPF records; moot until "
                "spf.multiple is fixed)")


def _analyse(ctx: Context, root: spf.Node, texts: list[str], want: str) -> None:
    domain = ctx.domain
    record = root.record or ""
    _split_check(ctx, record, [t for t in texts if not spf.is_spf(t)])
    for node in root.walk():
        where = "" if node is root else f" (in {node.via}:{node.domain})"
        for error in node.errors:
            ctx.add("spf.syntax", S.ERROR, node.domain, f"SPF syntax error{where}: {error}",
                    found=node.record, expected=want if node is root else None,
                    fix="correct the term; a syntax error makes the whole SPF check fail")
        for detail in node.unknown:
            ctx.add("spf.unknown", S.UNKNOWN, node.domain, f"could not tell{where}: {detail}",
                    fix="retry later; this lookup failed, it is not known to be missing")
        for loop in node.loops:
            ctx.add("spf.loop", S.ERROR, node.domain, f"include loop: {loop}", found=node.record,
                    fix="remove the include that points back up the chain")
        for target in node.broken:
            ctx.add("spf.include_void", S.ERROR, node.domain,
                    f"{target} has no SPF record{where}: the whole SPF check ends in "
                    "permerror (RFC 7208 §5.2), so no sender passes",
                    found=node.record, expected=want if node is root else None,
                    fix=f"remove {target}, or publish an SPF record there")
        if node is not root and node.records_found > 1:
            ctx.add("spf.multiple", S.ERROR, node.domain,
                    f"{node.via}:{node.domain} has {node.records_found} SPF records",
                    fix=f"ask the owner of {node.domain} to fix it or drop the include")
    lookups = root.total_lookups()
    if lookups > spf.MAX_LOOKUPS:
        ctx.add("spf.lookups", S.ERROR, domain,
                f"{lookups} DNS lookups, limit {spf.MAX_LOOKUPS}: SPF fails with permerror",
                found=spf.lookup_breakdown(root), expected=f"≤ {spf.MAX_LOOKUPS}",
                fix="drop unused includes, or replace an include by its ip4:/ip6: ranges")
    voids = root.all_voids()
    broken = {f"{t} has no SPF record" for n in root.walk() for t in n.broken}
    if len(voids) > spf.MAX_VOIDS:
        ctx.add("spf.void_lookups", S.ERROR, domain,
                f"{len(voids)} lookups return nothing, limit {spf.MAX_VOIDS}",
                found="; ".join(voids), expected=f"≤ {spf.MAX_VOIDS}",
                fix="remove includes/a/mx terms whose names no longer resolve")
    elif [v for v in voids if v not in broken]:  # includes without SPF: spf.include_void
        ctx.add("spf.void_lookup", S.WARNING, domain, "a term resolves to nothing",
                found="; ".join(v for v in voids if v not in broken),
                fix="remove the term, it authorises no one")
    if len(record.encode()) > spf.MAX_BYTES:
        ctx.add("spf.too_long", S.WARNING, domain,
                f"SPF record is {len(record.encode())} bytes; over {spf.MAX_BYTES} the answer "
                "may not fit a 512-byte UDP reply", fix="shorten it (fewer ip4/ip6 terms)")
    _all_check(ctx, root, want)
    _drift_check(ctx, root)
    if any(t.name == "ptr" for n in root.walk() for t in n.terms):
        ctx.add("spf.ptr", S.WARNING, domain, "the ptr mechanism is deprecated (RFC 7208 §5.5)",
                found=record, fix="replace ptr by ip4:/ip6: or a: terms")


def _split_check(ctx: Context, record: str, others: list[str]) -> None:
    """One SPF published as two TXT *records* instead of one record with two strings."""
    tails = [t for t in others if _TERMISH.match(t.strip())]
    if tails:
        ctx.add("spf.split_records", S.ERROR, ctx.domain,
                "part of the SPF record is published as a separate TXT record",
                found=" | ".join([record, *tails]), expected=record + " " + " ".join(tails),
                fix="publish one TXT record whose strings (≤255 bytes each) join to the policy")


def _all_check(ctx: Context, root: spf.Node, want: str) -> None:
    terms = root.terms
    alls = [t for t in terms if t.name == "all" and not t.modifier]
    redirect = any(t.modifier and t.name == "redirect" for t in terms)
    domain = ctx.domain
    if not alls:
        if not redirect:
            ctx.add("spf.all_missing", S.WARNING, domain,
                    "no 'all' term: mail from anyone else gets a neutral result",
                    found=root.record, expected=want, fix="end the record with -all or ~all")
        return
    qualifier = alls[0].qualifier
    if qualifier == "+":
        ctx.add("spf.all_permissive", S.ERROR, domain, "+all authorises every server on the "
                "Internet to send as this domain", found=root.record, expected=want,
                fix="end the record with -all or ~all")
    elif qualifier == "?":
        ctx.add("spf.all_neutral", S.WARNING, domain, "?all makes SPF say nothing about "
                "other senders", found=root.record, expected=want, fix="use -all or ~all")
    elif not want.endswith(f"{qualifier}all"):
        ctx.add("spf.all_differs", S.INFO, domain,
                f"ends with {qualifier}all, the profile suggests {want.split()[-1]}",
                found=root.record, expected=want)
    if terms and terms[-1] is not alls[0] and not terms[-1].modifier:
        ctx.add("spf.after_all", S.WARNING, domain, "terms after 'all' are never evaluated",
                found=root.record, fix="move 'all' to the end")


def _drift_check(ctx: Context, root: spf.Node) -> None:
    """Includes the profiles expect vs includes that name senders no longer configured."""
    expected = set(expected_includes(ctx.spec, ctx.provider, ctx.relays))
    configured: set[str] = set(expected)
    for profile in (ctx.provider, *ctx.relays):
        configured |= profile.sender_names()
    present = spf.tree_includes(root, stop=configured)
    want = expected_spf(ctx.spec, ctx.provider, ctx.relays)
    for include in sorted(expected - present):
        ctx.add("spf.missing_include", S.ERROR, ctx.domain,
                f"include:{include} is missing: mail sent through it fails SPF",
                found=root.record, expected=want, fix=f"add include:{include} to the SPF record")
    owners: dict[str, str] = {}
    for kind in ("relays", "providers"):
        for profile in all_profiles(kind, ctx.spec.profile_dirs).values():
            for name in profile.sender_names():
                owners.setdefault(name, f"{profile.title or profile.name}")
    # Only includes the domain publishes itself: one nested inside another include is
    # that include owner's business, and the user cannot remove it.
    own = {t.value.lower() for t in root.terms
           if t.name in ("include", "redirect") and t.value}
    for include in sorted((present & own) - configured):
        if include in owners:
            ctx.add("spf.stale_relay", S.WARNING, ctx.domain,
                    f"include:{include} authorises {owners[include]}, which is not configured "
                    "for this domain (left over from an old relay or provider?)",
                    found=root.record, expected=want,
                    fix=f"remove include:{include} if nothing sends through it any more")
        else:
            ctx.add("spf.unexpected_include", S.INFO, ctx.domain,
                    f"include:{include} is not part of the profile",
                    found=root.record, expected=want,
                    fix="keep it only if a sender of yours needs it")
