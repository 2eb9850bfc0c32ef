"""Tokens and accounts as the store hands them out (plain values, no database)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from mailctl.accounts.expiry import iso, parse_expiry

PENDING, ACTIVE = "pending", "active"
# What `tokens list` shows; only "active" tokens make accounts.
TOKEN_STATES = ("active", "exhausted", "expired", "disabled")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9._+-]{0,32}$")


def check_token_name(name: str) -> str:
    """A name that fits a URL's `n=` and a file name unquoted; ValueError otherwise."""
    if not _NAME.match(name):
        raise ValueError(f"invalid token name {name!r} (expected letters, digits and . _ -, "
                         "at most 64, starting with a letter or digit)")
    return name


def check_prefix(prefix: str) -> str:
    """The start of a local part every provider accepts; ValueError otherwise."""
    if not _PREFIX.match(prefix) or ".." in prefix or prefix.startswith("."):
        raise ValueError(f"invalid prefix {prefix!r} (expected lower-case letters, digits "
                         "and . _ + -, not starting with a dot, no '..', at most 32)")
    return prefix


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    secret: str | None  # None: stored as a hash only
    domain: str
    prefix: str
    expiry: str
    maxuse: int
    usecount: int
    valid_until: int | None
    disabled: bool
    created: int

    @property
    def ttl(self) -> int | None:
        return parse_expiry(self.expiry)

    def state(self, now: float) -> str:
        """One of TOKEN_STATES, checked in the order the API refuses a redemption."""
        if self.disabled:
            return "disabled"
        if self.valid_until is not None and self.valid_until <= now:
            return "expired"
        if self.usecount >= self.maxuse:
            return "exhausted"
        return "active"

    def unusable_reason(self, now: float) -> str | None:
        state = self.state(now)
        if state == "disabled":
            return f"token {self.name} is disabled"
        if state == "expired":
            return f"token {self.name} is no longer valid"
        if state == "exhausted":
            return f"token {self.name} is used up ({self.maxuse} of {self.maxuse} accounts)"
        return None

    @property
    def secret_stored(self) -> bool:
        return self.secret is not None

    def as_dict(self, now: float) -> dict[str, Any]:
        """What `tokens list/show --json` print: never the secret (the URL is added
        by the caller, where it may be shown)."""
        return {"name": self.name, "domain": self.domain, "prefix": self.prefix,
                "expiry": self.expiry, "maxuse": self.maxuse, "usecount": self.usecount,
                "valid_until": iso(self.valid_until), "disabled": self.disabled,
                "state": self.state(now), "secret_stored": self.secret_stored,
                "created": iso(self.created)}

    def __repr__(self) -> str:  # the secret stays out of tracebacks and logs
        return f"Token(name={self.name!r}, domain={self.domain!r}, uses={self.usecount}/" \
               f"{self.maxuse})"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str
    token_id: int | None
    token_name: str | None
    provider: str
    created: int
    expires: int | None
    state: str

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "token": self.token_name, "provider": self.provider,
                "created": iso(self.created), "expires": iso(self.expires),
                "state": self.state}
