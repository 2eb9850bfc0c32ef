"""The `reports:` section of mailctl.yaml: report mailboxes, the store, retention.

Only pydantic is imported: the loader validates this at every start-up.
Mailbox passwords must be `${env:..}`/`${file:..}` references, and so must a
store URL that carries a password, so a config with reports can be committed.
References are resolved only when a reports command runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_REF_RE = re.compile(r"^\s*\$\{(env|file):[^}]+\}\s*$")
_LISTEN_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$")
_URL_PASSWORD = re.compile(r"^[a-z0-9+]+://[^/@:]+:[^/@]+@", re.I)


def is_ref(value: str) -> bool:
    return bool(_REF_RE.match(value))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MailboxSettings(_Model):
    """One mailbox that receives rua (and TLS-RPT, ruf) mail."""

    url: str = Field(description="imap://user@host[:port], imaps://... or maildir:PATH")
    password: str | None = Field(None, description="secret reference (${env:X}, ${file:P})")
    folders: list[str] = Field(["INBOX"], min_length=1, description="folders to read")
    processed: str | None = Field(
        "Processed", description="folder stored reports are moved to; null keeps them in "
        "place, marked $MailctlReportStored")
    mode: Literal["idle", "poll"] | None = Field(
        None, description="wait for mail with IDLE or by polling [default: IDLE where offered]")
    poll_interval: float = Field(300.0, ge=5, le=86400, description="seconds between polls")
    ca_file: Path | None = Field(None, description="CA bundle for imaps (config-relative)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("imap://", "imaps://", "maildir:")):
            raise ValueError("expected imap://user@host[:port], imaps://user@host[:port] or "
                             "maildir:PATH")
        if v.startswith("imap") and _URL_PASSWORD.match(v):
            raise ValueError("put the password in `password: ${env:NAME}`, not in the URL")
        return v

    @field_validator("password")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None and not is_ref(v):
            raise ValueError("must be a secret reference like ${env:NAME} or ${file:path}, "
                             "not a literal value")
        return v


def _size(v: Any) -> Any:
    if isinstance(v, str):
        from mailctl.util.sizes import parse_size

        return parse_size(v)
    return v


class LimitsSettings(_Model):
    """Bounds on what one mail or file may make mailctl read (see docs/reports.md)."""

    max_message: int = Field(25 << 20, ge=1 << 16, le=1 << 30,
                             description="bytes of one mail; larger ones are never downloaded")
    max_unpacked: int = Field(64 << 20, ge=1 << 16, le=1 << 31,
                              description="bytes of one report after decompression")
    max_ratio: int = Field(200, ge=10, le=100_000,
                           description="decompressed/compressed size, past the first MiB")
    max_records: int = Field(250_000, ge=1, le=10_000_000, description="rows of one report")

    @field_validator("max_message", "max_unpacked", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> Any:
        return _size(v)


class ReportsSettings(_Model):
    store: str | None = Field(
        None, description="SQLAlchemy URL [default: .mailctl/reports.db beside the config; "
        "$MAILCTL_REPORTS_DB]; a URL with a password must be a secret reference")
    retention_days: int = Field(180, ge=1, le=3650,
                                description="reports older than this are deleted")
    mailboxes: list[MailboxSettings] = []
    listen: str = Field(":9426", description="`reports serve`: [host]:port for /metrics")
    window_days: int = Field(3, ge=1, le=90, description="metrics cover this many days")
    resolver: str | None = Field(None, description="DNS resolver IP[:PORT] for classifying "
                                 "sources [default: the system's]")
    dns_timeout: float = Field(2.0, gt=0, le=30, description="seconds per DNS query")
    rdns_lookups: int = Field(200, ge=0, le=100_000,
                              description="reverse DNS lookups per run at most (cached 7 days)")
    limits: LimitsSettings = LimitsSettings()

    @field_validator("store")
    @classmethod
    def _store(cls, v: str | None) -> str | None:
        if v is None or is_ref(v):
            return v
        if _URL_PASSWORD.match(v):
            raise ValueError("this URL holds a password: write it as ${env:NAME} or "
                             "${file:path} instead")
        if "://" not in v:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///reports.db or "
                             "postgresql+psycopg://host/db")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        m = _LISTEN_RE.match(v.strip())
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ValueError(f"expected [host]:port like :9426, got {v!r}")
        return v

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, v: str | None) -> str | None:
        if v is not None:
            from mailctl.dns.resolver import parse_server

            parse_server(v)
        return v
