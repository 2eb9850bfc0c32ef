"""The shape of mailctl.yaml, as pydantic models.

Only shape and types live here; cross-references (providers, destinations,
loops, provider features) are checked in `semantic.py`, where the whole
file is in view.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailctl.accounts.settings import AccountsSettings
from mailctl.dns.settings import DnsSettings
from mailctl.probe.settings import ProbeSettings
from mailctl.util.sizes import parse_size


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordPolicy(Strict):
    length: int = Field(32, ge=32, le=256, description="length of generated passwords")


class Spam(Strict):
    action: Literal["folder", "tag", "drop", "none"] | None = None
    aggressiveness: (
        Literal["most_permissive", "permissive", "default", "strict", "most_strict"] | None
    ) = None


class MailboxConfig(Strict):
    # `local_part: 007` is an int in YAML; it means the text the user typed.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    local_part: str
    name: str | None = None
    password: str | None = None  # a secret reference or a {SCHEME} hash
    password_policy: PasswordPolicy | None = None
    quota: int | None = None
    # Tuples, not lists: pydantic deep-copies a mutable default for every one of
    # 10,000 mailboxes (a third of a no-change plan's time, measured).
    aliases: tuple[str, ...] = ()
    forwards: tuple[str, ...] = ()
    forward_only: bool = False
    spam: Spam | None = None

    @field_validator("quota", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int | None:
        return None if v is None else parse_size(v)



class AliasConfig(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    local_part: str
    destinations: tuple[str, ...] = Field(min_length=1)



class DomainConfig(Strict):
    provider: str
    password_policy: PasswordPolicy | None = None
    quota: int | None = None  # default for the domain's mailboxes
    mailboxes: list[MailboxConfig] = []
    aliases: list[AliasConfig] = []
    catch_all: list[str] | None = None
    # Local-part globs (`tmp.*`) that plan/apply never create, update or delete:
    # addresses another tool owns, e.g. mailctl's own temporary accounts.
    unmanaged: tuple[str, ...] = ()
    dns: DnsSettings | None = None

    @field_validator("quota", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int | None:
        return None if v is None else parse_size(v)

    @field_validator("catch_all", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class ProviderConfig(BaseModel):
    """`type` picks the provider; the rest is checked by that provider's settings model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class Safety(Strict):
    max_update_share: float = Field(0.3, ge=0, le=1)
    max_delete_share: float = Field(0.3, ge=0, le=1)
    min_existing: int = Field(10, ge=0)


class ConfigFile(Strict):
    version: Literal[1] = 1
    providers: dict[str, ProviderConfig] = {}
    domains: dict[str, DomainConfig] = {}
    safety: Safety = Safety()
    accounts: AccountsSettings | None = None
    probe: ProbeSettings | None = None
