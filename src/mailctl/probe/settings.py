"""The `probe:` section of mailctl.yaml: roundtrip routes, timing and where results go.

Only pydantic is imported: the loader validates this at every start-up. Every
credential (passwords, the Uptime Kuma push URL, whose token is its only
protection) must be a `${env:..}`/`${file:..}` reference; a literal is a
positioned config error, so a config file with a probe can be committed. The
references are resolved only when a probe runs (`mailctl.probe.resolve`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_REF_RE = re.compile(r"^\s*\$\{(env|file):[^}]+\}\s*$")
_LISTEN_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$")
_ROUTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

TlsMode = Literal["starttls", "tls", "none"]


def _secret_ref(value: str | None) -> str | None:
    if value is not None and not _REF_RE.match(value):
        raise ValueError("must be a secret reference like ${env:NAME} or ${file:path}, "
                         "not a literal value")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Model):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: TlsMode = "starttls"
    # CA bundle to verify the server with (relative to the config file); the
    # system store otherwise. `verify: false` is for lab setups only.
    ca_file: Path | None = None
    verify: bool = True
    username: str | None = None
    password: str | None = None  # secret reference

    @field_validator("password")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        return _secret_ref(v)


class SmtpSettings(Endpoint):
    """Submission (587, STARTTLS + AUTH), SMTPS (465) or plain port-25 SMTP without AUTH."""

    helo: str | None = None

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither (no AUTH)")
        return self

    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.tls]


class ImapSettings(Endpoint):
    username: str = Field(min_length=1)
    password: str  # secret reference
    mailbox: str = "INBOX"
    # Where a filter would put the probe instead of the mailbox: finding it
    # there is reported as "landed in spam", not as a timeout.
    spam_folders: list[str] = ["Junk", "Spam"]
    idle: bool = True  # use IMAP IDLE when the server offers it
    poll_interval: float = Field(default=1.0, gt=0, le=60)

    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "tls" else 143)


class RouteSettings(_Model):
    smtp: SmtpSettings
    imap: ImapSettings
    sender: str = Field(min_length=3)
    recipient: str | None = None  # default: the IMAP username
    timeout: float = Field(default=60.0, gt=0, le=3600, description="send -> mailbox deadline")
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    uptime_kuma: str | None = None  # secret reference to this route's push URL

    @field_validator("uptime_kuma")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        return _secret_ref(v)

    def rcpt(self) -> str:
        return self.recipient or self.imap.username


class PushSettings(_Model):
    pushgateway: str | None = None  # e.g. http://pushgateway:9091
    job: str = Field(default="mailctl_probe", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    uptime_kuma: str | None = None  # secret reference; one monitor for all routes
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("uptime_kuma")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        return _secret_ref(v)

    @field_validator("pushgateway")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/@\s]+(/.*)?$", v):
            raise ValueError("expected http(s)://host:port without credentials in the URL")
        return v


class ProbeSettings(_Model):
    routes: dict[str, RouteSettings] = {}
    interval: float = Field(default=300.0, ge=1, le=86400, description="serve: seconds")
    listen: str = ":9425"
    # Probe messages from earlier runs older than this (by their own sent-time
    # header) are deleted; younger ones may still be in flight for another run.
    sweep_after: float = Field(default=900.0, ge=0)
    push: PushSettings = PushSettings()

    @field_validator("routes")
    @classmethod
    def _names(cls, v: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
        for name in v:
            if not _ROUTE_RE.match(name):
                raise ValueError(f"route name {name!r}: use letters, digits, '_', '.', '-'")
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


def parse_listen(text: str) -> tuple[str, int]:
    """`:9425`, `127.0.0.1:9425` or `[::1]:9425` -> (host, port); empty host = all."""
    m = _LISTEN_RE.match(text.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"expected [host]:port like :9425, got {text!r}")
    return m.group(1).strip("[]"), int(m.group(2))
