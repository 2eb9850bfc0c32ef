"""From a loaded config to a ready store and service (one place, CLI and API alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailctl.accounts.db import resolve_url
from mailctl.accounts.settings import AccountsSettings

if TYPE_CHECKING:
    from mailctl.accounts.service import AccountService
    from mailctl.accounts.store import Store
    from mailctl.config.load import Config


def settings_of(config: Config) -> AccountsSettings:
    return config.file.accounts or AccountsSettings()


def store_url(config: Config) -> str:
    return resolve_url(settings_of(config).database, config.path)


def open_store(config: Config) -> Store:
    from mailctl.accounts.store import Store

    return Store(store_url(config), pool_size=settings_of(config).web.threads)


def open_service(config: Config) -> AccountService:
    from mailctl.accounts.service import AccountService

    return AccountService(config, open_store(config), settings_of(config))


def default_domain(config: Config) -> str | None:
    """`accounts.domain`, else the only domain the config declares."""
    configured = settings_of(config).domain
    if configured:
        return configured
    domains = sorted(config.desired.provider_of)
    return domains[0] if len(domains) == 1 else None
