"""From a loaded config to a running console, alone or beside the accounts API.

`console_from_env` is what `mailctl console serve` hands uvicorn;
`combined_from_env` is what `mailctl serve` uses when the config has a
`console:` section: one process answers Delta Chat's account requests (POST /
and /new_email, /health), autoconfig and autodiscover, and the console.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import Receive, Scope, Send

    from mailctl.config.load import Config
    from mailctl.web.app import ConsoleSecrets
    from mailctl.web.settings import ConsoleSettings


class ConsoleConfigError(ValueError):
    """The console cannot start with this config (the message says which setting)."""


def settings_of(config: Config) -> ConsoleSettings:
    if config.file.console is None:
        raise ConsoleConfigError(f"{config.path} has no `console:` section")
    return config.file.console


def state_dir(config: Config, settings: ConsoleSettings) -> Path:
    if settings.state_dir:
        return (config.base_dir / Path(settings.state_dir).expanduser()).resolve()
    return config.base_dir.resolve() / ".mailctl" / "console"


def secrets_from_config(config: Config, settings: ConsoleSettings) -> ConsoleSecrets:
    """Resolve every reference now: a missing variable stops the start, not a sign-in."""
    from mailctl.config.refs import RefError
    from mailctl.web.app import ConsoleSecrets
    from mailctl.web.auth import is_password_hash

    def resolve(ref: str, where: str) -> str:
        try:
            return config.resolver.resolve(ref).reveal()
        except RefError as exc:
            raise ConsoleConfigError(f"console.{where}: {exc}") from None

    client = None
    if settings.oidc is not None:
        try:
            client = config.resolver.resolve(settings.oidc.client_secret)
        except RefError as exc:
            raise ConsoleConfigError(f"console.oidc.client_secret: {exc}") from None
    key = (resolve(settings.session.secret_key, "session.secret_key").encode()
           if settings.session.secret_key else secrets.token_bytes(32))
    if len(key) < 16:
        raise ConsoleConfigError("console.session.secret_key: use at least 16 characters "
                                 "(e.g. the output of `openssl rand -base64 32`)")
    bg_hash = None
    if settings.break_glass.enabled and settings.break_glass.password_hash:
        bg_hash = resolve(settings.break_glass.password_hash, "break_glass.password_hash")
        if not is_password_hash(bg_hash):
            raise ConsoleConfigError("console.break_glass.password_hash: not a hash made by "
                                     "`mailctl console hash-password`")
    return ConsoleSecrets(client, key, bg_hash)


def check_access(config: Config, settings: ConsoleSettings) -> None:
    declared = set(config.desired.domains)
    for role, domains in settings.access.domain_admin_roles.items():
        unknown = sorted({d.lower() for d in domains} - declared)
        if unknown:
            raise ConsoleConfigError(f"console.access.domain_admin_roles.{role}: "
                                     f"{', '.join(unknown)} not declared in {config.path}")


def build(config: Config, public_url: str | None = None) -> Starlette:
    """The console app for `config` (ConsoleConfigError if it cannot start)."""
    from mailctl.web.app import create_app
    from mailctl.web.audit import AuditLog
    from mailctl.web.live import ConfigServices
    from mailctl.web.state import ConsoleState

    settings = settings_of(config)
    check_access(config, settings)
    secrets_ = secrets_from_config(config, settings)
    where = state_dir(config, settings)
    services = ConfigServices(config, settings, state=ConsoleState(where))
    return create_app(services, settings, secrets_, audit=AuditLog(where / "audit.log"),
                      public_url=public_url)


def _config_from_env() -> Config:
    from mailctl.config.load import load_config

    return load_config(Path(os.environ["MAILCTL_CONFIG"]))


def console_from_env() -> Starlette:
    return build(_config_from_env(), os.environ.get("MAILCTL_CONSOLE_URL") or None)


class Combined:
    """The accounts API's routes go to it, everything else to the console."""

    ACCOUNTS = ("/", "/new_email")

    def __init__(self, accounts: Any, console: Any) -> None:
        self.accounts = accounts
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        http = scope["type"] == "http"
        api = http and (scope["path"] == "/health" or (
            scope["path"] in self.ACCOUNTS and scope["method"] == "POST"))
        if api or scope["type"] == "lifespan":
            await self.accounts(scope, receive, send)
        else:
            await self.console(scope, receive, send)


def combined_from_env() -> Any:
    """`mailctl serve`'s app: the accounts API as `accounts.web.app_from_env` builds it,
    with the console beside it when the config has a `console:` section."""
    from mailctl.accounts.web import app_from_env

    accounts = app_from_env()
    config = _config_from_env()
    if config.file.console is None:
        return accounts
    url = os.environ.get("MAILCTL_CONSOLE_URL") or config.file.console.public_url
    if not url:  # same listener as the accounts API
        from mailctl.accounts.context import settings_of as accounts_settings

        web = accounts_settings(config).web
        url = f"http://{web.host}:{web.port}"
    return Combined(accounts, build(config, url))
