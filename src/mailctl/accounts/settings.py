"""The `accounts:` section of mailctl.yaml.

Everything has a default so that `accounts:` can be left out entirely: the
store is then a SQLite file beside the config and the API listens on loopback.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerEndpoint(_Strict):
    """Where a client reaches IMAP or SMTP; goes into DCLOGIN codes."""

    host: str
    port: int = Field(ge=1, le=65535)
    security: Literal["ssl", "starttls", "plain"] = "ssl"


class LoginSettings(_Strict):
    """Server parameters for DCLOGIN codes; unset parts are left to the client's autoconfig.

    For a dms folder served by `mailctl sandbox`, they are read from the sandbox."""

    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    # Only for servers with a self-signed certificate: tells Delta Chat to accept it.
    accept_invalid_certificates: bool = False


class RateLimitSettings(_Strict):
    """Redemptions per client address: a token bucket of `burst` refilled at `per_minute`,
    kept in the accounts store, so it holds across all API workers and hosts."""

    per_minute: float = Field(default=6.0, ge=0)  # 0 disables the limit
    burst: int = Field(default=3, ge=1)


class WebSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=3691, ge=0, le=65535)
    # The public URL of the endpoint, as put into DCACCOUNT codes (Delta Chat needs https).
    public_url: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    threads: int = Field(default=32, ge=1, le=512)
    # Give up on the provider after this long: the client gets 504, the account is undone.
    provider_timeout: float = Field(default=20.0, gt=0)
    # Addresses (or networks) of reverse proxies whose client address header is believed
    # for rate limiting; empty (the default): the header is ignored and the peer counts.
    trusted_proxies: list[str] = Field(default_factory=list)
    # The header those proxies put the client address in (X-Forwarded-For or X-Real-IP).
    client_address_header: str = Field(default="X-Forwarded-For", min_length=1)


class AccountsSettings(_Strict):
    database: str | None = None  # SQLAlchemy URL; default: SQLite beside the config
    domain: str | None = None  # default domain for new tokens (else the only declared one)
    web: WebSettings = WebSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    login: LoginSettings = LoginSettings()
    # A reservation older than this whose request never finished is repaired by reconcile.
    pending_grace: float = Field(default=600.0, ge=0)
    local_part_length: int = Field(default=10, ge=8, le=40)
    # `hashed`: the store keeps only a SHA-256 of each token secret, so a copied database
    # mints no accounts, but an invite URL is shown once (tokens add / tokens rotate).
    # `stored`: the secret too, so `tokens show` and `tokens qr` can print it again.
    token_secrets: Literal["hashed", "stored"] = "hashed"
    # `mailctl serve` deletes expired accounts this often (seconds; 0: never, then run
    # `mailctl accounts prune` from cron). One worker on one host prunes at a time.
    prune_interval: float = Field(default=600.0, ge=0, le=7 * 86400)

    @field_validator("database")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError("expected an SQLAlchemy URL such as sqlite:///accounts.db "
                             "or postgresql+psycopg://user@host/db")
        return v
