"""DMARC: one record, valid tags, a policy that protects, reports that arrive.

Reports to another organisation's domain are only sent when that domain
publishes `<domain>._report._dmarc.<their domain>` (RFC 7489 §7.1); without it a
configured rua silently receives nothing, which is why it is checked here.
"""

from __future__ import annotations

import asyncio
import re

from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S

_TAG = re.compile(r"^[a-z]+$")
_VALUES = {
    "p": {"none", "quarantine", "reject"},
    "sp": {"none", "quarantine", "reject"},
    "np": {"none", "quarantine", "reject"},
    "adkim": {"r", "s"},
    "aspf": {"r", "s"},
    "t": {"y", "n"},
    "psd": {"y", "n", "u"},
}
_KNOWN = {*_VALUES, "v", "rua", "ruf", "fo", "pct", "rf", "ri"}
_REMOVED = {"pct", "rf", "ri"}  # RFC 9989 dropped them
_STRENGTH = {"none": 0, "quarantine": 1, "reject": 2}
_URI = re.compile(r"^mailto:([^@!\s]+)@([^!\s]+?)(?:!\d+[kmgt]?)?$", re.I)


def is_dmarc(text: str) -> bool:
    return re.match(r"^v\s*=\s*DMARC1\s*(;|$)", text.strip(), re.I) is not None


def parse(text: str) -> tuple[dict[str, str], list[str]]:
    """Tags of a DMARC record and its syntax errors."""
    tags: dict[str, str] = {}
    errors: list[str] = []
    parts = [p.strip() for p in text.strip().split(";")]
    parts = [p for p in parts if p]
    for index, part in enumerate(parts):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not _TAG.match(key):
            errors.append(f"{part!r} is not a tag=value pair")
            continue
        if index == 0 and (key != "v" or value != "DMARC1"):
            errors.append("the record must start with v=DMARC1")
        if key in tags:
            errors.append(f"tag {key} appears twice")
        tags[key] = value
        allowed = _VALUES.get(key)
        if allowed and value.lower() not in allowed:
            errors.append(f"{key}={value} is not one of {', '.join(sorted(allowed))}")
        if key in ("rua", "ruf"):
            for uri in value.split(","):
                if not _URI.match(uri.strip()):
                    errors.append(f"{key} URI {uri.strip()!r} is not mailto:address[!size]")
    return tags, errors


def report_domains(tags: dict[str, str]) -> list[tuple[str, str]]:
    """(tag, domain) for every rua/ruf destination."""
    out = []
    for key in ("rua", "ruf"):
        for uri in tags.get(key, "").split(","):
            match = _URI.match(uri.strip())
            if match:
                out.append((key, match.group(2).lower().rstrip(".")))
    return out


async def _lookup(ctx: Context, domain: str) -> tuple[str, list[str], list[str]] | None:
    """(name, DMARC records, other TXT) at `_dmarc.<domain>`; None (reported) if unknown."""
    name = f"_dmarc.{domain}"
    answer = await ctx.client.query(name, "TXT")
    if answer.outcome.failed:
        ctx.unknown("dmarc.unknown", answer)
        return None
    records = [t for t in answer.texts() if is_dmarc(t)]
    return name, records, [t for t in answer.texts() if not is_dmarc(t)]


async def check_dmarc(ctx: Context) -> None:
    """One record at `_dmarc.<domain>`, or else the organisational domain's (RFC 7489 §6.6.3).

    A sub-domain without its own record is governed by its organisational
    domain's `sp=` (or `p=`), so that is the policy checked; reporting it as
    missing would send users to fix something receivers never look at.
    """
    domain = ctx.domain
    want = next((r.value for r in ctx.expected_of("dmarc")), None)
    own = await _lookup(ctx, domain)
    if own is None:
        return
    name, records, other = own
    inherited_from: str | None = None
    org = domain
    if not records:
        from mailctl.dns.psl import organisational_domain

        org = organisational_domain(domain)
        if org != domain:
            found = await _lookup(ctx, org)
            if found is None:
                return
            if found[1]:
                inherited_from = org
                name, records, _ = found
    if not records:
        stray = [t for t in other if t.lower().startswith("v=spf1")]
        also = f" (nor at its organisational domain {org})" if org != domain else ""
        ctx.add("dmarc.missing", S.ERROR, f"_dmarc.{domain}", f"no DMARC record{also}: "
                "receivers cannot enforce anything and large mailbox providers may reject "
                "bulk mail", found="; ".join(stray) or None,
                expected=want, fix=f'add TXT at _dmarc.{domain}: "{want}"')
        return
    if len(records) > 1:
        ctx.add("dmarc.multiple", S.ERROR, name, f"{len(records)} DMARC records: receivers "
                "ignore all of them", found=" | ".join(records), expected=want,
                fix="keep exactly one")
        return
    record = records[0]
    tags, errors = parse(record)
    for error in errors:
        ctx.add("dmarc.syntax", S.ERROR, name, f"DMARC syntax error: {error}", found=record,
                expected=want, fix="correct the record")
    for key in sorted(set(tags) - _KNOWN):
        ctx.add("dmarc.unknown_tag", S.WARNING, name, f"unknown tag {key}= is ignored",
                found=record, fix=f"remove {key}=")
    for key in sorted(set(tags) & _REMOVED):
        ctx.add("dmarc.deprecated_tag", S.INFO, name,
                f"{key}= was removed by DMARCbis (RFC 9989) and is ignored by newer receivers",
                found=record, fix=f"remove {key}= (use t=y for a test rollout)")
    if inherited_from is None:
        _policy(ctx, name, record, tags, want)
    else:
        _inherited_policy(ctx, name, record, tags, want, inherited_from)
    for address in ctx.spec.dmarc_rua:
        if address.lower().removeprefix("mailto:") not in tags.get("rua", "").lower():
            ctx.add("dmarc.rua_missing", S.WARNING, name,
                    f"configured report address {address} is not in rua=", found=record,
                    expected=want, fix="publish the configured rua")
    await _external_authorisation(ctx, name, record, tags, inherited_from or domain)


def _policy(ctx: Context, name: str, record: str, tags: dict[str, str],
            want: str | None) -> None:
    policy = tags.get("p", "").lower()
    if "p" not in tags:
        ctx.add("dmarc.policy_missing", S.ERROR, name, "no p= tag: the policy defaults to none",
                found=record, expected=want, fix="add p=quarantine or p=reject")
    elif policy == "none":
        ctx.add("dmarc.policy_none", S.WARNING, name, "p=none only monitors: spoofed mail is "
                "still delivered", found=record, expected=want,
                fix="move to p=quarantine, then p=reject, once reports show all senders pass")
    _weaker(ctx, name, record, policy, want, "p")
    if tags.get("sp", "").lower() == "none" and policy in ("quarantine", "reject"):
        ctx.add("dmarc.sp_none", S.WARNING, name, "sp=none leaves sub-domains spoofable",
                found=record, fix="remove sp= (it inherits p=) or set it to quarantine/reject")


def _inherited_policy(ctx: Context, name: str, record: str, tags: dict[str, str],
                      want: str | None, org: str) -> None:
    """The organisational record governs this sub-domain through `sp=`, else `p=`."""
    key = "sp" if "sp" in tags else "p"
    policy = tags.get(key, "").lower()
    ctx.add("dmarc.inherited", S.INFO, f"_dmarc.{ctx.domain}",
            f"no own DMARC record: the organisational domain {org}'s record applies "
            f"({key}={policy or 'none'})", found=record, expected=want,
            fix=f"nothing to do; publish TXT at _dmarc.{ctx.domain} only to differ from {org}")
    if "p" not in tags:
        ctx.add("dmarc.policy_missing", S.ERROR, name, "no p= tag: the policy defaults to none",
                found=record, expected=want, fix="add p=quarantine or p=reject")
    elif policy == "none":
        ctx.add("dmarc.policy_none", S.WARNING, name,
                f"{ctx.domain} inherits {key}=none from {org}: spoofed mail is still delivered",
                found=record, expected=want,
                fix=f"set sp=quarantine or reject at {name} (or remove sp=), or publish "
                f"a stricter record at _dmarc.{ctx.domain}")
    _weaker(ctx, name, record, policy, want, key)


def _weaker(ctx: Context, name: str, record: str, policy: str, want: str | None,
            key: str) -> None:
    wanted = re.search(r"p=(\w+)", want or "")
    if (wanted and policy in _STRENGTH and policy != "none"
            and _STRENGTH[policy] < _STRENGTH.get(wanted.group(1), 0)):
        ctx.add("dmarc.policy_weaker", S.WARNING, name,
                f"{key}={policy} is weaker than the configured p={wanted.group(1)}",
                found=record, expected=want, fix="publish the configured policy")


async def _external_authorisation(ctx: Context, name: str, record: str,
                                  tags: dict[str, str], owner: str) -> None:
    """`owner` is the domain whose record names the destinations (RFC 7489 §7.1 step 3)."""
    from mailctl.dns.psl import same_organisation

    external = sorted({(k, d) for k, d in report_domains(tags)
                       if not (d == owner or d.endswith("." + owner))
                       and not same_organisation(d, owner)})
    names = [f"{owner}._report._dmarc.{d}" for _, d in external]
    answers = await asyncio.gather(*(ctx.client.query(n, "TXT") for n in names))
    for (key, dest), auth_name, answer in zip(external, names, answers, strict=True):
        if answer.outcome.failed:
            ctx.unknown("dmarc.report_auth_unknown", answer)
        elif not any(is_dmarc(t) for t in answer.texts()):
            ctx.add("dmarc.report_unauthorised", S.WARNING, name,
                    f"{key} sends reports to {dest}, which has not authorised it: receivers "
                    "will not send them", found=record,
                    expected=f'TXT at {auth_name}: "v=DMARC1"',
                    fix=f'ask {dest} to publish TXT "v=DMARC1" at {auth_name}, '
                    "or send reports to an address in your own domain")
