"""The normalised model every capability speaks.

Providers translate to and from these types, the planner diffs them, and the
renderers print them. Addresses are normalised once, here, so that no other
module ever compares two spellings of the same mailbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from mailctl.secret import Secret

# RFC 5322 dot-atom, ASCII only: SMTPUTF8 local parts are not accepted by the
# providers mailctl targets, so refusing them early beats a failed apply.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL_RE = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
# A subset of what normalise_address returns unchanged; anything else takes the long way.
_NORMAL_ADDR = re.compile(rf"^[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:{_LABEL}\.)+{_LABEL}$")


class AddressError(ValueError):
    """A local part, domain or address that cannot be normalised."""


@lru_cache(maxsize=4096)
def normalise_domain(domain: str) -> str:
    """Lower-case ASCII (punycode) form of a domain, as every comparison uses.

    Cached: a config names a handful of domains tens of thousands of times."""
    name = domain.strip().rstrip(".")
    if not name:
        raise AddressError("empty domain name")
    try:
        ascii_name = name.lower().encode("ascii").decode()
    except UnicodeEncodeError:
        import idna  # only needed for internationalised names

        try:
            ascii_name = idna.encode(name, uts46=True).decode().lower()
        except idna.IDNAError as exc:
            raise AddressError(f"{domain!r} is not a valid domain name: {exc}") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253:
        raise AddressError(f"{domain!r} is not a fully qualified domain name")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise AddressError(f"{domain!r} has an invalid label {label!r}")
    return ascii_name


def normalise_local_part(local: str) -> str:
    if len(local) <= 64 and _LOCAL_RE.match(local):  # already normal: the common case
        return local
    lp = local.strip().lower()
    if not lp:
        raise AddressError("empty local part")
    if len(lp) > 64:
        raise AddressError(f"local part {local!r} is longer than 64 characters")
    if not _LOCAL_RE.match(lp):
        raise AddressError(
            f"{local!r} is not a valid local part (letters, digits and "
            "!#$%&'*+/=?^_`{|}~- separated by single dots)"
        )
    return lp


def normalise_address(address: str, default_domain: str | None = None) -> str:
    """`Alice@Bücher.example` -> `alice@xn--bcher-kva.example`.

    A bare local part is completed with `default_domain`; `@domain` (a catch-all
    key) keeps its empty local part.
    """
    if _NORMAL_ADDR.match(address):
        at = address.index("@")
        if at <= 64 and len(address) - at <= 254:
            return address  # already normal (lower-case ASCII): no work, 10k times a plan
    text = address.strip()
    if "@" not in text:
        if default_domain is None:
            raise AddressError(f"{address!r} has no domain")
        return f"{normalise_local_part(text)}@{normalise_domain(default_domain)}"
    local, _, domain = text.rpartition("@")
    dom = normalise_domain(domain)
    if local == "":
        return f"@{dom}"
    return f"{normalise_local_part(local)}@{dom}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


class Kind(StrEnum):
    DOMAIN = "domain"
    MAILBOX = "mailbox"
    IDENTITY = "identity"
    ALIAS = "alias"
    FORWARD = "forward"
    REWRITE = "rewrite"

    @property
    def order(self) -> int:
        return _KIND_ORDER[self]


# Creates run in this order and deletes in reverse: an identity needs its mailbox,
# a rewrite may point at aliases, and nothing is deleted while something points at it.
_KIND_ORDER = {Kind.DOMAIN: 0, Kind.MAILBOX: 1, Kind.IDENTITY: 2, Kind.ALIAS: 3,
               Kind.FORWARD: 4, Kind.REWRITE: 5}


@dataclass(frozen=True, slots=True)
class SpamSettings:
    action: str | None = None  # folder | tag | drop | none
    aggressiveness: str | None = None


@dataclass(frozen=True, slots=True)
class Access:
    """Which protocols may log in; None = not managed."""

    imap: bool | None = None
    pop3: bool | None = None
    sieve: bool | None = None


@dataclass(frozen=True, slots=True)
class Autoresponder:
    active: bool | None = None
    subject: str | None = None
    body: str | None = None
    expires_on: str | None = None  # YYYY-MM-DD


@dataclass(frozen=True, slots=True)
class Footer:
    active: bool | None = None
    plain: str | None = None
    html: str | None = None


def _flat(out: dict[str, Any], prefix: str, obj: Any) -> None:
    """Sub-fields flattened one by one, so that only the declared ones are owned:
    declaring `autoresponder.active` alone never compares (or sends) its body."""
    if obj is None:
        return
    for name in obj.__slots__:
        value = getattr(obj, name)
        if value is not None:
            out[f"{prefix}_{name}"] = value


# Address/pattern sets a mailbox filters with; order is never drift.
ADDRESS_LISTS = ("sender_allowlist", "sender_denylist", "recipient_denylist")


@dataclass(slots=True)
class Mailbox:
    address: str
    name: str | None = None
    quota: int | None = None  # bytes; None = not managed, 0 = unlimited
    spam: SpamSettings | None = None
    may_send: bool | None = None
    may_receive: bool | None = None
    access: Access | None = None
    # Sorted, lower-cased patterns (addresses, @domains); None = not managed.
    sender_allowlist: tuple[str, ...] | None = None
    sender_denylist: tuple[str, ...] | None = None
    recipient_denylist: tuple[str, ...] | None = None
    autoresponder: Autoresponder | None = None
    footer: Footer | None = None
    # Where the provider sends password invitations and recovery mail.
    recovery_email: str | None = None
    # False: the mailbox is switched off (mailcow `active`, Mailu `enabled`).
    enabled: bool | None = None
    # Free-form labels (mailcow tags), a set kept sorted; None = not managed.
    tags: tuple[str, ...] | None = None
    # Write-only: set on create (declared or generated), never read back for diffing.
    password: Secret | None = field(default=None, compare=False)
    password_hash: str | None = field(default=None, compare=False)
    # Create with no password: the provider mails `recovery_email` an invitation.
    invite: bool = field(default=False, compare=False)

    kind = Kind.MAILBOX

    @property
    def key(self) -> str:
        return self.address

    def managed_fields(self) -> dict[str, Any]:
        """Fields that can drift, only those set (declared, or read back).

        Passwords, invitations and usage are deliberately absent."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.quota is not None:
            out["quota"] = self.quota
        if self.spam is not None:
            if self.spam.action is not None:
                out["spam_action"] = self.spam.action
            if self.spam.aggressiveness is not None:
                out["spam_aggressiveness"] = self.spam.aggressiveness
        if self.may_send is not None:
            out["may_send"] = self.may_send
        if self.may_receive is not None:
            out["may_receive"] = self.may_receive
        _flat(out, "access", self.access)
        for name in ADDRESS_LISTS:
            value = getattr(self, name)
            if value is not None:
                out[name] = sorted(value)
        _flat(out, "autoresponder", self.autoresponder)
        _flat(out, "footer", self.footer)
        if self.recovery_email is not None:
            out["recovery_email"] = self.recovery_email
        if self.enabled is not None:
            out["enabled"] = self.enabled
        if self.tags is not None:
            out["tags"] = sorted(self.tags)
        return out


@dataclass(slots=True)
class Identity:
    """Another address a mailbox sends (and may log in) as, e.g. Migadu's identities."""

    address: str
    mailbox: str  # the owning mailbox's address
    name: str | None = None
    may_send: bool | None = None
    may_receive: bool | None = None
    access: Access | None = None
    footer: Footer | None = None
    # Write-only (never returned by the provider): how the identity logs in.
    password_use: str = field(default="none", compare=False)  # none | mailbox | custom
    password: Secret | None = field(default=None, compare=False)

    kind = Kind.IDENTITY

    @property
    def key(self) -> str:
        return self.address

    def managed_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mailbox": self.mailbox}
        if self.name is not None:
            out["name"] = self.name
        if self.may_send is not None:
            out["may_send"] = self.may_send
        if self.may_receive is not None:
            out["may_receive"] = self.may_receive
        _flat(out, "access", self.access)
        _flat(out, "footer", self.footer)
        return out


@dataclass(slots=True)
class Rewrite:
    """Local parts matching a glob (`demo-*`) delivered to `destinations`.

    Keyed `domain/name` (the name is the provider's slug), not by an address."""

    key: str
    rule: str
    destinations: tuple[str, ...]
    order: int | None = None

    kind = Kind.REWRITE

    @property
    def name(self) -> str:
        return self.key.partition("/")[2]

    def managed_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"local_part_rule": self.rule,
                               "destinations": list(self.destinations)}
        if self.order is not None:
            out["order"] = self.order
        return out


@dataclass(slots=True)
class Alias:
    """`address` delivers to `destinations`; `@domain` is the catch-all."""

    address: str
    destinations: tuple[str, ...]

    kind = Kind.ALIAS

    @property
    def key(self) -> str:
        return self.address

    @property
    def is_catch_all(self) -> bool:
        return self.address.startswith("@")

    def managed_fields(self) -> dict[str, Any]:
        return {"destinations": list(self.destinations)}


@dataclass(slots=True)
class Forward:
    """Copies of a mailbox's mail sent elsewhere; `keep` leaves one in the mailbox."""

    address: str
    destinations: tuple[str, ...]
    keep: bool = True

    kind = Kind.FORWARD

    @property
    def key(self) -> str:
        return self.address

    def managed_fields(self) -> dict[str, Any]:
        return {"destinations": list(self.destinations), "keep": self.keep}


MailObject = Mailbox | Alias | Forward | Identity | Rewrite


@dataclass(slots=True)
class DomainState:
    """One domain as declared, or as a provider reports it."""

    name: str
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    forwards: dict[str, Forward] = field(default_factory=dict)
    identities: dict[str, Identity] = field(default_factory=dict)
    rewrites: dict[str, Rewrite] = field(default_factory=dict)
    exists: bool = True
    # Not drift, but worth telling: e.g. a forward its target has not confirmed yet.
    pending: list[str] = field(default_factory=list)

    def objects(self, kind: Kind) -> dict[str, Any]:
        if kind is Kind.MAILBOX:
            return self.mailboxes
        if kind is Kind.ALIAS:
            return self.aliases
        if kind is Kind.FORWARD:
            return self.forwards
        if kind is Kind.IDENTITY:
            return self.identities
        if kind is Kind.REWRITE:
            return self.rewrites
        raise ValueError(kind)

    def count(self) -> int:
        return (len(self.mailboxes) + len(self.aliases) + len(self.forwards)
                + len(self.identities) + len(self.rewrites))
