"""The shape of mailctl.yaml, as pydantic models.

Only shape and types live here; cross-references (providers, destinations,
loops, provider features) are checked in `semantic.py`, where the whole
file is in view.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailctl.accounts.settings import AccountsSettings
from mailctl.dns.settings import DnsHostsSettings, DnsSettings
from mailctl.domain.settings import MailAccess
from mailctl.probe.settings import ProbeSettings
from mailctl.reports.settings import ReportsSettings
from mailctl.util.sizes import parse_size
from mailctl.web.settings import ConsoleSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordPolicy(Strict):
    length: int = Field(32, ge=32, le=256, description="length of generated passwords")


class Spam(Strict):
    action: Literal["folder", "tag", "drop", "none"] | None = None
    aggressiveness: (
        Literal["most_permissive", "more_permissive", "permissive", "default", "strict",
                "stricter", "most_strict"] | None
    ) = None


class Access(Strict):
    """Protocol logins; an unset one is not managed."""

    imap: bool | None = None
    pop3: bool | None = None
    sieve: bool | None = None  # ManageSieve


def _iso_date(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.date):
        return v.isoformat()
    try:
        return dt.date.fromisoformat(str(v).strip()).isoformat()
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


class Autoresponder(Strict):
    active: bool | None = None
    subject: str | None = None
    body: str | None = None
    expires_on: str | None = None  # YYYY-MM-DD

    @field_validator("expires_on", mode="before")
    @classmethod
    def _date(cls, v: Any) -> str | None:
        return _iso_date(v)


class Footer(Strict):
    active: bool | None = None
    plain: str | None = None  # the text/plain footer
    html: str | None = None


class IdentityConfig(Strict):
    """Another address the mailbox sends as (Migadu identities)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    local_part: str
    name: str | None = None
    may_send: bool | None = None
    may_receive: bool | None = None
    access: Access | None = None
    footer: Footer | None = None
    # How the identity logs in (write-only, used on create): not at all, with the
    # mailbox's password, or with its own `password` (a secret reference).
    password_use: Literal["none", "mailbox", "custom"] = "none"
    password: str | None = None


class RewriteConfig(Strict):
    """Local parts matching `local_part_rule` (a glob such as `demo-*`) go to `destinations`."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    name: str  # the provider's identifier (a slug)
    local_part_rule: str
    destinations: tuple[str, ...] = Field(min_length=1)
    order: int | None = Field(None, ge=0)


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
    may_send: bool | None = None
    may_receive: bool | None = None
    access: Access | None = None
    # Sets of addresses or `@domain`s; order is not drift. Absent = not managed.
    sender_allowlist: tuple[str, ...] | None = None
    sender_denylist: tuple[str, ...] | None = None
    recipient_denylist: tuple[str, ...] | None = None
    autoresponder: Autoresponder | None = None
    footer: Footer | None = None
    # `invitation`: no password is set; the provider mails `recovery_email` an invitation.
    password_method: Literal["password", "invitation"] | None = None
    recovery_email: str | None = None
    # false: the mailbox exists but is switched off (no login, no delivery).
    enabled: bool | None = None
    # Free-form labels; a set (order is not drift). Absent = not managed.
    tags: tuple[str, ...] | None = None
    identities: tuple[IdentityConfig, ...] = ()

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
    rewrites: list[RewriteConfig] = []
    # Local-part globs (`tmp.*`) that plan/apply never create, update or delete:
    # addresses another tool owns, e.g. mailctl's own temporary accounts.
    unmanaged: tuple[str, ...] = ()
    dns: DnsSettings | None = None
    # The local store of a domain another provider receives for (docs/domain.md):
    # every mailbox is created there too, and `mailctl fetch --domain` pulls into it.
    mirror: str | None = None
    # Where `apply --prune` backs up a mailbox's mail before deleting it, one domain
    # backup per provider below it (relative to the config) [default:
    # $XDG_STATE_HOME/mailctl/backups/<domain>; domain/prune.py].
    backup: str | None = None

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
    """Shares are fractions (0.3 = 30 %), not percentages: strict, so `true` or `"7"`
    is not quietly read as a number."""

    max_update_share: float = Field(0.3, ge=0, le=1, strict=True, allow_inf_nan=False,
                                    description="refuse updates beyond this share of a "
                                    "domain's existing objects (0..1)")
    max_delete_share: float = Field(0.3, ge=0, le=1, strict=True, allow_inf_nan=False,
                                    description="refuse deletes beyond this share of a "
                                    "domain's existing objects (0..1)")
    min_existing: int = Field(10, ge=0, strict=True,
                              description="domains with fewer existing objects are "
                              "not limited")


class ConfigFile(Strict):
    version: Literal[1] = 1
    providers: dict[str, ProviderConfig] = {}
    domains: dict[str, DomainConfig] = {}
    safety: Safety = Safety()
    accounts: AccountsSettings | None = None
    probe: ProbeSettings | None = None
    reports: ReportsSettings | None = None
    dns: DnsHostsSettings | None = None
    console: ConsoleSettings | None = None
    # How mailctl reaches each provider's mailboxes for backup, restore and moves.
    mail_access: dict[str, MailAccess] = {}
