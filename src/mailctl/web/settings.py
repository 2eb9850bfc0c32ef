"""The `console:` section of mailctl.yaml.

Only pydantic is imported here: the loader validates this at every start-up.
Every credential (the OIDC client secret, the session key, the break-glass
password hash) is a `${env:..}`/`${file:..}` reference, resolved only when the
console starts, so a config with a console can be committed.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_REF_RE = re.compile(r"^\s*\$\{(env|file):[^}]+\}\s*$")


def _ref(value: str | None) -> str | None:
    if value is not None and not _REF_RE.match(value):
        raise ValueError("must be a secret reference like ${env:NAME} or ${file:path}, "
                         "not a literal value")
    return value


def _http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL for {what}, like https://id.example.org")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment")
    return value.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OidcSettings(_Strict):
    """The identity provider: discovery at `issuer`/.well-known/openid-configuration."""

    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: str  # secret reference
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    # The claim that carries roles or groups (a list, or a space/comma separated string).
    roles_claim: str = Field(default="groups", min_length=1)
    # Give up on the identity provider after this long (discovery, token, userinfo, JWKS).
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _http_url(v, "the issuer")

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        return _ref(v) or v

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: list[str]) -> list[str]:
        if "openid" not in v:
            raise ValueError("scopes must include openid (the console needs an ID token)")
        return v


class AccessSettings(_Strict):
    """Who may do what, from the roles claim and the verified email claim."""

    # Role values that make someone an admin of every declared domain.
    admin_roles: list[str] = []
    # Role value -> the domains its holders administer.
    domain_admin_roles: dict[str, list[str]] = {}
    # A claim listing domains its holder administers (optional).
    domains_claim: str | None = None
    # When set, a user (not an admin) also needs one of these roles to sign in.
    user_roles: list[str] = []
    # Users may sign in to their own mailbox's pages at all.
    users: bool = True


class BreakGlassSettings(_Strict):
    """A local admin login for when the identity provider is down. Off by default."""

    enabled: bool = False
    username: str = Field(default="admin", min_length=1, max_length=64)
    # A reference to a hash made by `mailctl console hash-password`.
    password_hash: str | None = None

    @field_validator("password_hash")
    @classmethod
    def _hash_ref(cls, v: str | None) -> str | None:
        return _ref(v)

    @model_validator(mode="after")
    def _needs_hash(self) -> BreakGlassSettings:
        if self.enabled and self.password_hash is None:
            raise ValueError("break_glass.enabled needs password_hash (a secret reference to "
                             "the output of `mailctl console hash-password`)")
        return self


class SessionSettings(_Strict):
    # Signed out after this long without a request (seconds).
    idle_timeout: float = Field(default=900.0, ge=60, le=86400)
    # ...and after this long whatever happens (seconds).
    max_age: float = Field(default=28800.0, ge=300, le=7 * 86400)
    # A reference to the signing key; default: a random key per process, so a
    # restart signs everyone out (set it when several processes serve the console).
    secret_key: str | None = None

    @field_validator("secret_key")
    @classmethod
    def _key_ref(cls, v: str | None) -> str | None:
        return _ref(v)


class RateSettings(_Strict):
    """Sign-in attempts and callbacks per client address: a token bucket."""

    per_minute: float = Field(default=10.0, ge=0)  # 0 disables the limit
    burst: int = Field(default=10, ge=1, le=1000)


class ServerSettings(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    security: Literal["ssl", "starttls", "plain"] = "ssl"


class MailAppSettings(_Strict):
    """What mail apps are told (settings table, autoconfig, autodiscover, DCLOGIN).

    Unset: from the provider's DNS profile (its SRV records), else mail.<domain>."""

    imap: ServerSettings | None = None
    smtp: ServerSettings | None = None
    # Only for servers with a self-signed certificate (the sandbox).
    accept_invalid_certificates: bool = False


class ConsoleSettings(_Strict):
    # Where people reach the console, path prefix included when it runs behind a
    # reverse proxy (https://mail.example.org/console). The OIDC redirect URI is
    # this plus /auth/callback. Default: http://HOST:PORT.
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=3692, ge=0, le=65535)
    oidc: OidcSettings | None = None
    access: AccessSettings = AccessSettings()
    break_glass: BreakGlassSettings = BreakGlassSettings()
    session: SessionSettings = SessionSettings()
    rate_limit: RateSettings = RateSettings()
    # Reverse proxies whose X-Forwarded-For is believed for rate limits and the audit log.
    trusted_proxies: list[str] = []
    # Secure cookies even when public_url is http (a TLS proxy that rewrites nothing).
    tls_proxy: bool = False
    # Provider state is read at most this often (seconds); a button refreshes it.
    cache_seconds: float = Field(default=60.0, ge=0, le=86400)
    # The audit log and the latest checks; default .mailctl/console beside the config.
    state_dir: str | None = None
    # The resolver for `dns check` runs from the console (IP or IP:PORT); default: system.
    dns_resolver: str | None = None
    # Per domain ("*" for all): what mail apps are told.
    mail_apps: dict[str, MailAppSettings] = {}

    @field_validator("public_url")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        return None if v is None else _http_url(v, "public_url")

    @model_validator(mode="after")
    def _some_login(self) -> ConsoleSettings:
        if self.oidc is None and not self.break_glass.enabled:
            raise ValueError("the console needs a way to sign in: configure `oidc:` "
                             "(or, for emergencies only, `break_glass:`)")
        return self
