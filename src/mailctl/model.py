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
    if _LOCAL_RE.match(local):  # already normal: the common case, kept cheap
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
    ALIAS = "alias"
    FORWARD = "forward"

    @property
    def order(self) -> int:
        return _KIND_ORDER[self]


_KIND_ORDER = {Kind.DOMAIN: 0, Kind.MAILBOX: 1, Kind.ALIAS: 2, Kind.FORWARD: 3}


@dataclass(frozen=True, slots=True)
class SpamSettings:
    action: str | None = None  # folder | tag | drop | none
    aggressiveness: str | None = None


@dataclass(slots=True)
class Mailbox:
    address: str
    name: str | None = None
    quota: int | None = None  # bytes; None = not managed, 0 = unlimited
    spam: SpamSettings | None = None
    # Write-only: set on create (declared or generated), never read back for diffing.
    password: Secret | None = field(default=None, compare=False)
    password_hash: str | None = field(default=None, compare=False)

    kind = Kind.MAILBOX

    @property
    def key(self) -> str:
        return self.address

    def managed_fields(self) -> dict[str, Any]:
        """Fields that can drift. Passwords and usage are deliberately absent."""
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


MailObject = Mailbox | Alias | Forward


@dataclass(slots=True)
class DomainState:
    """One domain as declared, or as a provider reports it."""

    name: str
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    forwards: dict[str, Forward] = field(default_factory=dict)
    exists: bool = True

    def objects(self, kind: Kind) -> dict[str, Any]:
        if kind is Kind.MAILBOX:
            return self.mailboxes
        if kind is Kind.ALIAS:
            return self.aliases
        if kind is Kind.FORWARD:
            return self.forwards
        raise ValueError(kind)

    def count(self) -> int:
        return len(self.mailboxes) + len(self.aliases) + len(self.forwards)
