"""The one interface every provider implements.

A provider reads a domain's actual state into the normalised model and
applies a batch of changes. Batches (not single calls) let a file provider
write each file once and an HTTP provider run requests concurrently; each
change still gets its own outcome so a partial failure is reported exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mailctl.model import AddressError, DomainState, normalise_address
from mailctl.provision.changes import Change, Outcome
from mailctl.secret import Secret
from mailctl.util.sizes import approx_size, format_size


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """The quotas a provider can store: at most `max_bytes`, in steps of `step` bytes.

    Checked when the config is validated, so a value the provider (or the Dovecot
    behind it) cannot hold never reaches it; `why_max` and `why_step` say where each
    limit comes from, for the hint."""

    max_bytes: int | None = None
    step: int = 1
    why_max: str = ""
    why_step: str = ""

    def problem(self, quota: int, provider: str) -> tuple[str, str] | None:
        """(message, hint) when `quota` (bytes; 0 = unlimited) cannot be stored."""
        if quota == 0:
            return None
        if self.max_bytes is not None and quota > self.max_bytes:
            return (f"quota {_shown(quota)} is more than provider {provider!r} can store",
                    f"at most {_shown(self.max_bytes)} (about {approx_size(self.max_bytes)})"
                    f": {self.why_max}; 0 means no limit")
        if quota % self.step:
            lower = quota - quota % self.step
            near = [format_size(v) for v in (lower, lower + self.step)
                    if v > 0 and (self.max_bytes is None or v <= self.max_bytes)]
            return (f"quota {_shown(quota)} is not a whole number of {format_size(self.step)}"
                    f", as provider {provider!r} needs",
                    f"use {' or '.join(near)}: {self.why_step}")
        return None


def _shown(size: int) -> str:
    text = format_size(size)
    return f"{size} bytes" if text.endswith("B") else text


# Dovecot (docker-mailserver, the sandbox, Mailu) keeps a quota as a signed 64-bit
# byte count and derives its 10% grace from it in the same type, so limit * 10 must
# fit (2.3: quota-util.c, `quota_rule_recalculate_relative_rules`). Dovecot 2.3.19
# refuses 2^63 bytes and more outright (every delivery answers 451); 2.4 silently
# treats them as unlimited, and docker-mailserver computes the grace as size / 10 in
# bash. Measured on the sandbox: 922337203685477580 bytes still delivers.
DOVECOT_QUOTA = QuotaLimits(
    max_bytes=(2**63 - 1) // 10,
    why_max="Dovecot keeps a quota as a signed 64-bit byte count and works out its 10% "
            "grace in it, which overflows past this (from 2^63 bytes on, every delivery "
            "is refused)",
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can store. Config validation rejects anything else."""

    mailboxes: bool = True
    aliases: bool = True
    forwards: bool = True
    catch_all: bool = True
    quota: bool = True
    display_name: bool = False
    spam: bool = False
    external_destinations: bool = True
    # True when domains are explicit objects that must be created/deleted.
    domains: bool = False
    # `forward_only: true`: forwards that keep no copy in the mailbox.
    forward_only: bool = True
    # Mailbox settings beyond the basics; off unless a provider maps them.
    send_receive: bool = False  # may_send / may_receive
    protocol_access: bool = False  # access: {imap, pop3, sieve}
    address_lists: bool = False  # sender_allowlist / sender_denylist / recipient_denylist
    autoresponder: bool = False
    footer: bool = False
    invitation: bool = False  # password_method: invitation, recovery_email
    identities: bool = False
    rewrites: bool = False
    enabled: bool = False  # `enabled: false` switches a mailbox off
    tags: bool = False  # mailbox `tags`
    # Self-service (console, `mailctl passwd`, `mailctl app-passwords`): what the
    # YAML deliberately does not hold, changed directly through the provider.
    set_password: bool = False  # change a mailbox's password outside `apply`
    app_passwords: bool = False  # per-device passwords: add, list, revoke
    usage: bool = False  # reports the storage a mailbox uses
    quota_limits: QuotaLimits = field(default_factory=QuotaLimits)

    def lacks(self, feature: str) -> bool:
        return not bool(getattr(self, feature))


@dataclass(frozen=True, slots=True)
class AppPassword:
    """One app password as the provider lists it; never its secret."""

    id: str  # the provider's identifier, what `revoke` takes
    name: str
    created: float | None = None  # unix time, where the provider knows it
    last_used: float | None = None
    protocols: tuple[str, ...] = ()  # e.g. ("imap", "smtp"); empty = unrestricted

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created": self.created,
                "last_used": self.last_used, "protocols": list(self.protocols)}


class ErrorKind(StrEnum):
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"


class ProviderError(Exception):
    """Every provider failure, normalised. The message never holds a secret."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str = "",
        obj: str | None = None,
        retryable: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider = provider
        self.obj = obj
        self.retryable = retryable
        self.detail = detail  # the provider's own words, when it gave any

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        what = f"{self.obj}: " if self.obj else ""
        tail = f" ({self.detail})" if self.detail else ""
        return f"{where}{what}{self.message}{tail}"


class ProviderSettings(BaseModel):
    """Base for each provider's settings block in the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(ABC):
    type_name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    settings_model: ClassVar[type[ProviderSettings]]

    def __init__(self, name: str, settings: Any, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self.base_dir = base_dir

    @classmethod
    def check_address(cls, address: str) -> str | None:
        """A provider-specific reason why `address` cannot be stored, or None."""
        return None

    @abstractmethod
    def list_domains(self) -> list[str]:
        """Domains the provider currently holds (for `import` and `status`)."""

    @abstractmethod
    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        """Actual state of each domain; a domain it does not hold has exists=False."""

    @abstractmethod
    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        """Perform `changes` (already ordered); one outcome per change, in order."""

    # -- self-service: only called when `capabilities` says so (mailctl.credentials) --

    def set_password(self, address: str, password: Secret) -> None:
        """Give an existing mailbox a new password; the old one stops working."""
        raise self._unsupported("set_password")

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        raise self._unsupported("app_passwords")

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        """A new app password for `address`; its secret is returned once, never stored here."""
        raise self._unsupported("app_passwords")

    def revoke_app_password(self, address: str, app_id: str) -> None:
        raise self._unsupported("app_passwords")

    def usage(self, addresses: Sequence[str]) -> dict[str, int | None]:
        """Bytes each mailbox uses (None where the provider does not know)."""
        raise self._unsupported("usage")

    def _unsupported(self, feature: str) -> ProviderError:
        return ProviderError(ErrorKind.INVALID, f"{self.type_name} does not support {feature}",
                             provider=self.name)

    def without_defaults(self, state: DomainState) -> DomainState:
        """The state as `import` writes it: a field that holds the provider's own default
        (nobody chose it: Migadu's template autoreply text, Mailu's 1 GB quota) is left
        out, i.e. unmanaged, so the YAML shows only choices. Plans never use this: for
        a diff every value is compared as read."""
        return state

    def settings_for_export(self) -> dict[str, Any]:
        """The settings block as `import` writes it (secret references kept as references)."""
        return self.settings.model_dump(mode="json", exclude_defaults=True)  # type: ignore[no-any-return]

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def norm_addresses(raw: str | Sequence[str]) -> tuple[str, ...]:
    """Destinations as the planner compares them, from a provider's CSV string or list;
    special targets a provider keeps (mailcow's null@localhost) stay as they are."""
    items = raw.replace(";", ",").replace(" ", ",").split(",") if isinstance(raw, str) else raw
    out: list[str] = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            text = normalise_address(text)
        except AddressError:
            text = text.lower()
        if text not in out:
            out.append(text)
    return tuple(out)


def comparable(fields: dict[str, Any]) -> dict[str, Any]:
    """Managed fields as the planner and the providers compare them: destinations are
    sets, so their order in the YAML or in a provider's list is never drift."""
    out = dict(fields)
    if "destinations" in out:
        out["destinations"] = sorted(out["destinations"])
    return out
