"""Mailbox settings, identities and rewrites: YAML -> model, with capability checks.

Kept apart from `semantic.py` so the core cross-reference checks stay readable;
`_DomainBuilder` mixes this in. Every setting is optional and only what the
YAML declares ends up in the model, because only that is compared and sent
(field ownership): declaring `footer.active` alone never touches the footer's
text at the provider.
"""

from __future__ import annotations

import re
from typing import Any

from mailctl.config.errors import Collector
from mailctl.config.refs import RefError, Resolver
from mailctl.config.schema import Access as AccessConfig
from mailctl.config.schema import DomainConfig, IdentityConfig, MailboxConfig
from mailctl.config.yamlpos import Path_
from mailctl.model import (
    ADDRESS_LISTS,
    Access,
    AddressError,
    Autoresponder,
    DomainState,
    Footer,
    Identity,
    Mailbox,
    Rewrite,
    domain_of,
    normalise_domain,
)
from mailctl.providers.base import Capabilities
from mailctl.secret import Secret

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# A local part with `*` wildcards (`*` is an atext character already).
_RULE_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


def _access(cfg: AccessConfig | None) -> Access | None:
    return Access(cfg.imap, cfg.pop3, cfg.sieve) if cfg is not None else None


def _footer(cfg: Any) -> Footer | None:
    return Footer(cfg.active, cfg.plain, cfg.html) if cfg is not None else None


class ExtrasMixin:
    col: Collector
    resolver: Resolver

    # Provided by _DomainBuilder.
    def _addr(self, raw: str, domain: str, path: Path_, what: str) -> str | None:
        raise NotImplementedError

    def _claim(self, address: str, path: Path_, what: str) -> bool:
        raise NotImplementedError

    def _feature(self, caps: Capabilities, feature: str, used: bool, path: Path_,
                 provider: str) -> None:
        raise NotImplementedError

    def _destinations(self, raw: list[str] | tuple[str, ...], domain: str,
                      path: Path_) -> tuple[str, ...]:
        raise NotImplementedError

    # -- mailbox settings ---------------------------------------------------------

    def mailbox_settings(self, mbox: Mailbox, mc: MailboxConfig, mp: Path_,
                         caps: Capabilities, provider: str) -> None:
        def feature(name: str, key: str, used: bool = True) -> None:
            self._feature(caps, name, used, (*mp, key), provider)

        mbox.may_send, mbox.may_receive = mc.may_send, mc.may_receive
        feature("send_receive", "may_send", mc.may_send is not None)
        feature("send_receive", "may_receive", mc.may_receive is not None)
        if mc.access is not None:
            mbox.access = _access(mc.access)
            feature("protocol_access", "access")
        for name in ADDRESS_LISTS:
            raw = getattr(mc, name)
            if raw is not None:
                setattr(mbox, name, self._patterns(raw, (*mp, name)))
                feature("address_lists", name)
        if mc.autoresponder is not None:
            a = mc.autoresponder
            mbox.autoresponder = Autoresponder(a.active, a.subject, a.body, a.expires_on)
            feature("autoresponder", "autoresponder")
        if mc.footer is not None:
            mbox.footer = _footer(mc.footer)
            feature("footer", "footer")
        if mc.recovery_email is not None:
            mbox.recovery_email = self._addr(mc.recovery_email, domain_of(mbox.address),
                                             (*mp, "recovery_email"), "recovery_email")
            feature("invitation", "recovery_email")
        if mc.enabled is not None:
            mbox.enabled = mc.enabled
            feature("enabled", "enabled")
        if mc.tags is not None:
            mbox.tags = self._tags(mc.tags, (*mp, "tags"))
            feature("tags", "tags")
        if mc.password_method == "invitation":
            feature("invitation", "password_method")
            mbox.invite = True
            if mc.password is not None:
                self.col.add((*mp, "password"),
                             "`password` and `password_method: invitation` exclude each other",
                             "with an invitation the user sets the password; drop one of them")
            if mc.recovery_email is None:
                self.col.add((*mp, "password_method"),
                             "`password_method: invitation` needs `recovery_email`",
                             "add recovery_email: the address the invitation is mailed to",
                             at_key=True)

    def _patterns(self, raw: tuple[str, ...], path: Path_) -> tuple[str, ...]:
        """Addresses or `@domain`s, lower-cased, domains in punycode; a set, kept sorted."""
        out: set[str] = set()
        for j, item in enumerate(raw):
            text = str(item).strip().lower()
            local, at, dom = text.rpartition("@")
            if not text or any(c.isspace() for c in text):
                self.col.add((*path, j), f"{item!r} is not an address or @domain")
                continue
            if at and dom:
                try:
                    text = f"{local}@{normalise_domain(dom)}"
                except AddressError as exc:
                    self.col.add((*path, j), str(exc))
                    continue
            out.add(text)
        return tuple(sorted(out))

    def _tags(self, raw: tuple[str, ...], path: Path_) -> tuple[str, ...]:
        """Non-empty labels, a set kept sorted. Two that differ only in case are refused:
        mailcow stores tags case-insensitively, so they would be one tag and never match."""
        seen: dict[str, str] = {}
        for j, item in enumerate(raw):
            tag = str(item).strip()
            if not tag:
                self.col.add((*path, j), "a tag must not be empty")
                continue
            first = seen.get(tag.casefold())
            if first is not None:
                self.col.add((*path, j), f"tag {tag!r} is listed twice"
                             + (f" (also as {first!r})" if first != tag else ""))
                continue
            seen[tag.casefold()] = tag
        return tuple(sorted(seen.values()))

    # -- identities ---------------------------------------------------------------

    def identities(self, state: DomainState, mbox: Mailbox, mc: MailboxConfig, mp: Path_,
                   caps: Capabilities, provider: str) -> None:
        if not mc.identities:
            return
        self._feature(caps, "identities", True, (*mp, "identities"), provider)
        for k, ic in enumerate(mc.identities):
            ip: Path_ = (*mp, "identities", k)
            addr = self._addr(ic.local_part, state.name, (*ip, "local_part"), "local part")
            if addr is None:
                continue
            if domain_of(addr) != state.name or "@" in str(ic.local_part):
                self.col.add((*ip, "local_part"), "local_part must not contain '@'",
                             f"an identity is an address in {state.name}; write only "
                             f"the part before @{state.name}")
                continue
            if not self._claim(addr, ip, "identity"):
                continue
            state.identities[addr] = Identity(
                addr, mbox.address, name=ic.name, may_send=ic.may_send,
                may_receive=ic.may_receive, access=_access(ic.access),
                footer=_footer(ic.footer), password_use=ic.password_use,
                password=self._identity_password(ic, ip))

    def _identity_password(self, ic: IdentityConfig, ip: Path_) -> Secret | None:
        if ic.password_use != "custom":
            if ic.password is not None:
                self.col.add((*ip, "password"),
                             "an identity's password is only used with password_use: custom")
            return None
        if ic.password is None:
            self.col.add((*ip, "password_use"), "password_use: custom needs a `password`",
                         "add password: ${env:NAME}, or use password_use: mailbox",
                         at_key=True)
            return None
        try:
            return self.resolver.resolve(str(ic.password))
        except RefError as exc:
            self.col.add((*ip, "password"), str(exc), exc.hint)
            return None

    # -- rewrites -----------------------------------------------------------------

    def rewrites(self, state: DomainState, dc: DomainConfig, base: Path_,
                 caps: Capabilities, where: dict[str, Path_]) -> None:
        for i, rc in enumerate(dc.rewrites):
            rp: Path_ = (*base, "rewrites", i)
            self._feature(caps, "rewrites", True, rp, dc.provider)
            slug = str(rc.name).strip().lower()
            rule = str(rc.local_part_rule).strip().lower()
            if not _SLUG_RE.match(slug):
                self.col.add((*rp, "name"), f"rewrite name {rc.name!r} is not a slug",
                             "use lower-case letters, digits, '-' and '_'")
                continue
            if not _RULE_RE.match(rule) or "@" in rule:
                self.col.add((*rp, "local_part_rule"),
                             f"{rc.local_part_rule!r} is not a local part pattern",
                             "a local part with * wildcards, e.g. demo-*")
                continue
            key = f"{state.name}/{slug}"
            if key in state.rewrites:
                self.col.add((*rp, "name"), f"rewrite {slug!r} is declared twice")
                continue
            dests = self._destinations(rc.destinations, state.name, (*rp, "destinations"))
            state.rewrites[key] = Rewrite(key, rule, dests, rc.order)
            where[key] = rp
