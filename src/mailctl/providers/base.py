"""The one interface every provider implements.

A provider reads a domain's actual state into the normalised model and
applies a batch of changes. Batches (not single calls) let a file provider
write each file once and an HTTP provider run requests concurrently; each
change still gets its own outcome so a partial failure is reported exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mailctl.model import DomainState
from mailctl.provision.changes import Change, Outcome
from mailctl.secret import Secret


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

    def settings_for_export(self) -> dict[str, Any]:
        """The settings block as `import` writes it (secret references kept as references)."""
        return self.settings.model_dump(mode="json", exclude_defaults=True)  # type: ignore[no-any-return]

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
