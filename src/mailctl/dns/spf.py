"""SPF: parse, walk the include tree live, and count what receivers count.

The tree is kept even when a limit is exceeded, so a finding can say *which*
include blows the 10-lookup budget instead of only that it is blown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass, field

from mailctl.dns.resolver import Answer, DnsClient, Outcome

MAX_LOOKUPS = 10  # RFC 7208 §4.6.4
MAX_VOIDS = 2  # RFC 7208 §4.6.4
MAX_BYTES = 450  # RFC 7208 §3.4: keep the answer inside 512 bytes of UDP

_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_LOOKUP_MECHANISMS = {"include", "a", "mx", "ptr", "exists"}
_MACRO = re.compile(r"%(?:\{[slodiphcrtvSLODIPHCRTV]\d*r?[.\-+,/_=]*\}|[%_-])")
_DOMAIN_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_MODIFIER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_CIDR4 = re.compile(r"^/(\d{1,2})$")
_DUAL_CIDR = re.compile(r"^(?:/(\d{1,2}))?(?://(\d{1,3}))?$")


@dataclass(frozen=True, slots=True)
class Term:
    qualifier: str  # "+", "-", "~", "?" ("" for modifiers)
    name: str  # mechanism or modifier name, lower case
    value: str | None
    modifier: bool = False

    @property
    def text(self) -> str:
        if self.modifier:
            return f"{self.name}={self.value}"
        q = "" if self.qualifier == "+" else self.qualifier
        return f"{q}{self.name}" + (f":{self.value}" if self.value is not None else "")


def is_spf(text: str) -> bool:
    lower = text.lower()
    return lower == "v=spf1" or lower.startswith("v=spf1 ")


def has_macro(domain_spec: str) -> bool:
    return "%" in domain_spec


def _check_domain_spec(spec: str) -> str | None:
    if re.search(r"[-~+?]all$", spec, re.I):
        return f"{spec!r}: 'all' is glued to the previous term; separate them with a space"
    stripped = _MACRO.sub("x", spec)
    if "%" in stripped:
        return f"bad macro in {spec!r}"
    if not _DOMAIN_CHARS.match(stripped) or ".." in stripped or "." not in stripped.strip("."):
        return f"{spec!r} is not a domain name"
    return None


def parse(text: str) -> tuple[list[Term], list[str]]:
    """Terms of an SPF record and its syntax errors (a permerror each)."""
    errors: list[str] = []
    parts = text.split()
    if not parts or parts[0].lower() != "v=spf1":
        return [], ["the record must start with v=spf1"]
    terms: list[Term] = []
    for raw in parts[1:]:
        name_match = re.match(r"^([A-Za-z][A-Za-z0-9._-]*)=(.*)$", raw)
        if name_match and name_match.group(1).lower() not in _MECHANISMS:
            name, value = name_match.group(1).lower(), name_match.group(2)
            if not _MODIFIER_NAME.match(name):
                errors.append(f"bad modifier {raw!r}")
            if name in ("redirect", "exp") and (err := _check_domain_spec(value)):
                errors.append(f"{name}: {err}")
            terms.append(Term("", name, value, modifier=True))
            continue
        qualifier = "+"
        body = raw
        if body[:1] in "+-~?":
            qualifier, body = body[0], body[1:]
        mech, sep, arg = body.partition(":")
        mech_l = mech.lower()
        cidr = ""
        if mech_l in ("a", "mx") and "/" in mech:
            mech_l, _, cidr = mech.lower().partition("/")
            cidr = "/" + cidr
        if mech_l not in _MECHANISMS:
            hint = " (all glued to a term?)" if "all" in raw.lower() else ""
            errors.append(f"unknown mechanism {raw!r}{hint}")
            continue
        argument: str | None = arg if sep else None
        error = _check_mechanism(mech_l, argument, cidr)
        if error:
            errors.append(f"{raw!r}: {error}")
        terms.append(Term(qualifier, mech_l, argument))
    redirects = [t for t in terms if t.modifier and t.name == "redirect"]
    if len(redirects) > 1:
        errors.append("more than one redirect= modifier")
    if len([t for t in terms if t.modifier and t.name == "exp"]) > 1:
        errors.append("more than one exp= modifier")
    return terms, errors


def _check_mechanism(mech: str, value: str | None, cidr: str) -> str | None:
    if mech == "all":
        return "all takes no argument" if value is not None else None
    if mech in ("include", "exists"):
        return f"{mech} needs a domain" if not value else _check_domain_spec(value)
    if mech in ("ip4", "ip6"):
        if not value:
            return f"{mech} needs an address"
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IPv{mech[-1]} address or network"
        return None if net.version == int(mech[-1]) else f"{value!r} is not IPv{mech[-1]}"
    # a, mx, ptr: optional domain, a and mx take a dual CIDR
    if value is not None:
        domain, slash, rest = value.partition("/")
        cidr = (slash + rest) if slash else cidr
        if err := _check_domain_spec(domain):
            return err
    if cidr and not _DUAL_CIDR.match(cidr):
        return f"bad prefix length {cidr!r}"
    return None


@dataclass
class Node:
    """One SPF record in the include tree."""

    domain: str
    via: str  # "root", "include", "redirect"
    outcome: Outcome = Outcome.OK
    record: str | None = None
    records_found: int = 0
    terms: list[Term] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lookups: int = 0  # this record's own lookup-costing terms
    voids: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # include/redirect targets without SPF
    unknown: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out += child.walk()
        return out

    def total_lookups(self) -> int:
        return self.lookups + sum(c.total_lookups() for c in self.children)

    def all_voids(self) -> list[str]:
        return [v for n in self.walk() for v in n.voids]


async def fetch_record(client: DnsClient, domain: str) -> tuple[Answer, list[str]]:
    answer = await client.query(domain, "TXT")
    # Sorted: servers return TXT sets in any order, and with two SPF records
    # (already an error) the analysis of "the" record must not change between runs.
    return answer, sorted(t for t in answer.texts() if is_spf(t))


async def walk(client: DnsClient, domain: str, via: str = "root",
               path: tuple[str, ...] = ()) -> Node:
    """Fetch `domain`'s SPF record and everything it references, concurrently."""
    node = Node(domain=domain.lower(), via=via)
    answer, records = await fetch_record(client, domain)
    node.outcome = answer.outcome
    node.records_found = len(records)
    if answer.outcome.failed:
        node.unknown.append(answer.describe())
        return node
    if not records:
        return node
    node.record = records[0]
    node.terms, node.errors = parse(records[0])
    path = (*path, node.domain)
    pending: list[asyncio.Future[None]] = []
    has_all = any(t.name == "all" and not t.modifier for t in node.terms)
    for term in node.terms:
        if term.modifier and term.name != "redirect":
            continue
        if term.name in _LOOKUP_MECHANISMS or term.name == "redirect":
            node.lookups += 1
        target = term.value or domain
        if term.name in ("a", "mx") and term.value:
            target = term.value.partition("/")[0]
        if term.name == "ptr" or has_macro(target):
            continue  # ptr is never evaluated here; macros need a sender to expand
        if term.name in ("include", "redirect"):
            if term.name == "redirect" and has_all:
                continue  # RFC 7208 §6.1: ignored when "all" is present
            if target.lower() in path:
                node.loops.append(" -> ".join((*path, target.lower())))
                continue
            pending.append(asyncio.ensure_future(_child(client, node, target, term.name, path)))
        elif term.name in ("a", "mx", "exists"):
            pending.append(asyncio.ensure_future(_probe(client, node, term.name, target)))
    if pending:
        await asyncio.gather(*pending)
    order = {t.value.lower(): i for i, t in enumerate(node.terms) if t.value}
    node.children.sort(key=lambda c: order.get(c.domain, 0))
    return node


async def _child(client: DnsClient, parent: Node, target: str, via: str,
                 path: tuple[str, ...]) -> None:
    child = await walk(client, target, via, path)
    parent.children.append(child)
    if child.outcome.absent or (child.outcome is Outcome.OK and child.record is None):
        parent.voids.append(f"{via}:{target} has no SPF record")
        parent.broken.append(f"{via}:{target}")


async def _probe(client: DnsClient, node: Node, mech: str, target: str) -> None:
    if mech == "mx":
        answers = [await client.query(target, "MX")]
    elif mech == "exists":
        answers = [await client.query(target, "A")]
    else:
        answers = list(await asyncio.gather(client.query(target, "A"),
                                            client.query(target, "AAAA")))
    if any(a.outcome.failed for a in answers):
        node.unknown.extend(a.describe() for a in answers if a.outcome.failed)
    elif all(a.outcome.absent for a in answers) and mech != "exists":
        node.voids.append(f"{mech}:{target} resolves to nothing")
    elif mech == "mx" and answers[0].ok and len(answers[0].rdatas) > 10:
        node.errors.append(f"mx:{target} has more than 10 MX hosts")


def lookup_breakdown(root: Node) -> str:
    """`include:a (4), include:b (1), mx (1)`: where the budget goes."""
    parts = []
    for term in root.terms:
        if term.name not in _LOOKUP_MECHANISMS and term.name != "redirect":
            continue
        child = next((c for c in root.children if c.domain == (term.value or "").lower()), None)
        cost = 1 + (child.total_lookups() if child else 0)
        parts.append(f"{term.text} ({cost})")
    return ", ".join(parts)


def tree_includes(root: Node, stop: set[str]) -> set[str]:
    """Include/redirect targets reachable without entering a `stop` subtree.

    A provider's own include may itself include other senders; those are its
    business, so the walk does not descend into includes the profile expects.
    """
    found: set[str] = set()

    def visit(node: Node) -> None:
        for child in node.children:
            found.add(child.domain)
            if child.domain not in stop:
                visit(child)

    visit(root)
    found.update(
        t.value.lower() for t in root.terms if t.name in ("include", "redirect") and t.value
    )
    return found
