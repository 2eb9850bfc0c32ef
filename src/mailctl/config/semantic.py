"""Cross-reference checks, and the desired model built in the same pass.

Everything that needs more than one field in view lives here: normalised
duplicates, aliases that shadow mailboxes, loops, destinations in managed
domains that do not exist, provider features the provider lacks, and secret
references that do not resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailctl.config.errors import Collector, did_you_mean
from mailctl.config.extras import ExtrasMixin
from mailctl.config.refs import RefError, Resolver
from mailctl.config.schema import ConfigFile, DomainConfig
from mailctl.config.yamlpos import Path_
from mailctl.model import (
    AddressError,
    Alias,
    DomainState,
    Forward,
    Mailbox,
    Rewrite,
    SpamSettings,
    domain_of,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import Capabilities, Provider


@dataclass(slots=True)
class Desired:
    domains: dict[str, DomainState] = field(default_factory=dict)
    provider_of: dict[str, str] = field(default_factory=dict)  # domain -> provider name
    password_length: dict[str, int] = field(default_factory=dict)  # mailbox -> policy
    where: dict[str, Path_] = field(default_factory=dict)  # address/domain -> config path
    raw_domain: dict[str, str] = field(default_factory=dict)  # normalised -> as written
    unmanaged: dict[str, tuple[str, ...]] = field(default_factory=dict)  # domain -> globs
    mirror_of: dict[str, str] = field(default_factory=dict)  # domain -> mirror provider


_FEATURES = {
    "display_name": "display names (`name`)",
    "spam": "spam settings (`spam`)",
    "quota": "quotas (`quota`)",
    "forwards": "forwards (`forwards`)",
    "catch_all": "a catch-all (`catch_all`)",
    "aliases": "aliases",
    "external_destinations": "destinations outside the domains it hosts",
    "forward_only": "forwards that keep no copy (`forward_only`)",
    "send_receive": "`may_send` / `may_receive`",
    "protocol_access": "protocol access settings (`access`)",
    "address_lists": "sender and recipient allow/deny lists",
    "autoresponder": "autoresponders (`autoresponder`)",
    "footer": "footers (`footer`)",
    "invitation": "password invitations (`password_method: invitation`, `recovery_email`)",
    "identities": "identities (`identities`)",
    "rewrites": "rewrites (`rewrites`)",
    "enabled": "switching mailboxes off (`enabled`)",
    "tags": "mailbox tags (`tags`)",
}


class _DomainBuilder(ExtrasMixin):
    def __init__(
        self,
        col: Collector,
        resolver: Resolver,
        desired: Desired,
        providers: dict[str, type[Provider]],
    ) -> None:
        self.col = col
        self.resolver = resolver
        self.desired = desired
        self.providers = providers

    def _addr(self, raw: str, domain: str, path: Path_, what: str) -> str | None:
        try:
            return normalise_address(str(raw), domain)
        except AddressError as exc:
            self.col.add(path, f"invalid {what}: {exc}")
            return None

    def _claim(self, address: str, path: Path_, what: str) -> bool:
        seen = self.desired.where.get(address)
        if seen is None:
            self.desired.where[address] = path
            return True
        other = self.col.pos(seen)
        where = f" (line {other.line})" if other else ""
        if what == "alias" and len(seen) == 4 and seen[2] == "mailboxes":
            self.col.add(
                path,
                f"alias {address} shadows the mailbox declared{where}",
                "an address is either a mailbox or an alias; to deliver elsewhere too, "
                "use `forwards` on the mailbox",
            )
        else:
            self.col.add(path, f"{address} is declared twice; first{where}")
        return False

    def build(self, raw_name: str, dc: DomainConfig, cls: type[Provider] | None) -> None:
        base: Path_ = ("domains", raw_name)
        try:
            name = normalise_domain(raw_name)
        except AddressError as exc:
            self.col.add(base, str(exc), at_key=True)
            return
        if name in self.desired.domains:
            first = self.desired.raw_domain[name]
            self.col.add(base, f"domain {name} is declared twice (also as {first!r})", at_key=True)
            return
        self.desired.raw_domain[name] = raw_name
        state = DomainState(name)
        self.desired.domains[name] = state
        self.desired.provider_of[name] = dc.provider
        self.desired.where[name] = base
        self.desired.unmanaged[name] = tuple(p.lower() for p in dc.unmanaged)
        caps = cls.capabilities if cls else Capabilities()
        domain_len = dc.password_policy.length if dc.password_policy else 32
        self._quota(caps, dc.quota, (*base, "quota"), dc.provider)

        for i, mc in enumerate(dc.mailboxes):
            mp: Path_ = (*base, "mailboxes", i)
            addr = self._addr(mc.local_part, name, (*mp, "local_part"), "local part")
            if addr is None:
                continue
            if domain_of(addr) != name or "@" in str(mc.local_part):
                self.col.add((*mp, "local_part"), "local_part must not contain '@'",
                             f"write only the part before @{name}")
                continue
            if not self._claim(addr, mp, "mailbox"):
                continue
            self._provider_check(cls, addr, (*mp, "local_part"))
            mbox = Mailbox(
                addr,
                name=mc.name,
                quota=mc.quota if mc.quota is not None else dc.quota,
                spam=SpamSettings(mc.spam.action, mc.spam.aggressiveness) if mc.spam else None,
            )
            self._password(mbox, mc.password, (*mp, "password"))
            self.desired.password_length[addr] = (
                mc.password_policy.length if mc.password_policy else domain_len
            )
            state.mailboxes[addr] = mbox
            self._feature(caps, "display_name", mc.name is not None, (*mp, "name"), dc.provider)
            self._feature(caps, "spam", mc.spam is not None, (*mp, "spam"), dc.provider)
            self._feature(caps, "quota", mbox.quota is not None, (*mp, "quota"), dc.provider)
            self._quota(caps, mc.quota, (*mp, "quota"), dc.provider)
            self.mailbox_settings(mbox, mc, mp, caps, dc.provider)
            self.identities(state, mbox, mc, mp, caps, dc.provider)
            for j, alias in enumerate(mc.aliases):
                ap: Path_ = (*mp, "aliases", j)
                a = self._addr(alias, name, ap, "alias")
                if a is None:
                    continue
                if domain_of(a) != name:
                    self.col.add(ap, f"alias {a} is not in {name}",
                                 f"declare it under domains.{domain_of(a)}.aliases instead")
                    continue
                if self._claim(a, ap, "alias"):
                    self._provider_check(cls, a, ap)
                    state.aliases[a] = Alias(a, (addr,))
            if mc.forwards:
                self._feature(caps, "forwards", True, (*mp, "forwards"), dc.provider)
                self._feature(caps, "forward_only", mc.forward_only, (*mp, "forward_only"),
                              dc.provider)
                dests = self._destinations(mc.forwards, name, (*mp, "forwards"))
                if addr in dests:
                    self.col.add((*mp, "forwards"), f"{addr} forwards to itself",
                                 "remove it; use forward_only: false to keep a copy")
                state.forwards[addr] = Forward(addr, dests, keep=not mc.forward_only)
            elif mc.forward_only:
                self.col.add((*mp, "forward_only"), "forward_only is set but there are no forwards")

        for i, ac in enumerate(dc.aliases):
            ap = (*base, "aliases", i)
            a = self._addr(ac.local_part, name, (*ap, "local_part"), "local part")
            if a is None:
                continue
            if domain_of(a) != name or "@" in str(ac.local_part):
                self.col.add((*ap, "local_part"), "local_part must not contain '@'",
                             f"write only the part before @{name}")
                continue
            if self._claim(a, (*ap, "local_part"), "alias"):
                self._feature(caps, "aliases", True, ap, dc.provider)
                self._provider_check(cls, a, (*ap, "local_part"))
                dests = self._destinations(ac.destinations, name, (*ap, "destinations"))
                state.aliases[a] = Alias(a, dests)

        if dc.catch_all:
            cp: Path_ = (*base, "catch_all")
            self._feature(caps, "catch_all", True, cp, dc.provider)
            key = f"@{name}"
            state.aliases[key] = Alias(key, self._destinations(dc.catch_all, name, cp))
            self.desired.where[key] = cp
        self.rewrites(state, dc, base, caps, self.desired.where)

    def _destinations(
        self, raw: list[str] | tuple[str, ...], domain: str, path: Path_
    ) -> tuple[str, ...]:
        out: list[str] = []
        for j, d in enumerate(raw):
            a = self._addr(d, domain, (*path, j), "destination")
            if a is None:
                continue
            if a.startswith("@"):
                self.col.add((*path, j), f"destination {d!r} has no local part")
                continue
            if a in out:
                self.col.add((*path, j), f"destination {a} is listed twice")
                continue
            out.append(a)
        return tuple(out)

    def _password(self, mbox: Mailbox, value: str | None, path: Path_) -> None:
        if value is None:
            return
        text = str(value).strip()
        if text.startswith("{") and "}" in text[:32]:
            mbox.password_hash = text
            return
        try:
            mbox.password = self.resolver.resolve(text)
        except RefError as exc:
            self.col.add(path, str(exc), exc.hint)

    def _feature(
        self, caps: Capabilities, feature: str, used: bool, path: Path_, provider: str
    ) -> None:
        if used and caps.lacks(feature):
            self.col.add(
                path,
                f"provider {provider!r} does not support {_FEATURES[feature]}",
                "remove the setting, or host this domain on a provider that has it",
                at_key=True,
            )

    def _quota(self, caps: Capabilities, quota: int | None, path: Path_, provider: str) -> None:
        """What the provider can store is data on its capabilities (providers/base.py)."""
        problem = caps.quota_limits.problem(quota, provider) if quota is not None and \
            not caps.lacks("quota") else None
        if problem:
            self.col.add(path, *problem)

    def _provider_check(self, cls: type[Provider] | None, address: str, path: Path_) -> None:
        if cls is None:
            return
        reason = cls.check_address(address)
        if reason:
            self.col.add(path, reason)


def build_desired(
    cfg: ConfigFile,
    col: Collector,
    resolver: Resolver,
    provider_classes: dict[str, type[Provider]],
    *,
    complete: bool = True,
) -> Desired:
    """`complete=False`: shape errors left parts of the file out, so the checks that
    need the whole file (unknown providers, destinations that must exist) are skipped
    rather than reporting what was only left out."""
    desired = Desired()
    builder = _DomainBuilder(col, resolver, desired, provider_classes)
    for raw_name, dc in cfg.domains.items():
        cls = provider_classes.get(dc.provider)
        if complete and dc.provider not in cfg.providers:
            col.add(
                ("domains", raw_name, "provider"),
                f"unknown provider {dc.provider!r}",
                did_you_mean(dc.provider, cfg.providers)
                or f"declare it under providers: (known: {', '.join(cfg.providers) or 'none'})",
            )
        builder.build(raw_name, dc, cls)
    _check_unmanaged(desired, col)
    if complete:
        from mailctl.domain.settings import check_settings

        check_settings(cfg, col, desired, provider_classes)
        _check_destinations(desired, col, provider_classes)
    _check_loops(desired, col)
    return desired


def _check_destinations(
    desired: Desired, col: Collector, provider_classes: dict[str, type[Provider]]
) -> None:
    for name, state in desired.domains.items():
        cls = provider_classes.get(desired.provider_of[name])
        objs: list[Alias | Forward | Rewrite] = [
            *state.aliases.values(), *state.forwards.values(), *state.rewrites.values()]
        for obj in objs:
            base = desired.where.get(obj.key, ("domains", desired.raw_domain[name]))
            for dest in obj.destinations:
                ddom = domain_of(dest)
                target = desired.domains.get(ddom)
                if target is None:
                    if cls and cls.capabilities.lacks("external_destinations"):
                        col.add(base, f"{obj.key} -> {dest}: provider "
                                f"{desired.provider_of[name]!r} does not support destinations "
                                "outside the domains it hosts")
                    continue
                if dest not in target.mailboxes and dest not in target.aliases:
                    known = [*target.mailboxes, *target.aliases]
                    col.add(
                        base,
                        f"destination {dest} does not exist: {ddom} is managed here and "
                        "declares no such mailbox or alias",
                        did_you_mean(dest, known) or f"declare {dest} as a mailbox or alias",
                    )


def _check_unmanaged(desired: Desired, col: Collector) -> None:
    """Declaring an address and calling it unmanaged at once is a contradiction."""
    from mailctl.provision.plan import is_unmanaged

    for name, state in desired.domains.items():
        globs = desired.unmanaged.get(name, ())
        if not globs:
            continue
        for addr in (*state.mailboxes, *state.aliases, *state.identities):
            if is_unmanaged(addr, globs):
                col.add(desired.where.get(addr, ("domains", desired.raw_domain[name])),
                        f"{addr} is declared but matches `unmanaged` {list(globs)}",
                        "remove the declaration or narrow the pattern")


def _check_loops(desired: Desired, col: Collector) -> None:
    """Alias chains that come back to themselves never deliver (Postfix gives up)."""
    edges: dict[str, tuple[str, ...]] = {}
    for state in desired.domains.values():
        for a in state.aliases.values():
            edges[a.address] = a.destinations
        for f in state.forwards.values():
            edges[f.address] = tuple(d for d in f.destinations if d != f.address)
    color: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        color[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if color.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    col.add(desired.where.get(nxt, ()), "alias loop: " + " -> ".join(cycle),
                            "break the cycle: one of these must deliver to a mailbox")
            elif color.get(nxt, 0) == 0:
                visit(nxt, stack)
        stack.pop()
        color[node] = 2

    for node in sorted(edges):
        if color.get(node, 0) == 0:
            visit(node, [])

