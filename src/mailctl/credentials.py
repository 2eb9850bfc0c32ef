"""Passwords and app passwords: what the YAML deliberately does not hold.

The CLI (`mailctl passwd`, `mailctl app-passwords`) and the console call
these, so the rules live here once: only a mailbox the config declares, only
through its provider, and only what the provider's capabilities say it can
do (checked before any call, so an unsupported request changes nothing).
Secrets come back as `Secret`s; nothing here prints or logs them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailctl.model import AddressError, domain_of, normalise_address
from mailctl.secret import Secret, generate_password

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.providers.base import AppPassword, Capabilities, Provider

# Printable, no control characters: names end up in provider APIs and dms files.
_NAME = re.compile(r"^[\w .,:;@()+\-/]{1,64}$")
MIN_PASSWORD = 12


class CredentialsError(ValueError):
    """A request that cannot be made: an undeclared mailbox, a bad name or password."""


class NotCapable(CredentialsError):
    """The mailbox's provider cannot do this (its capabilities say so)."""


_WHAT = {"set_password": "change passwords", "app_passwords": "manage app passwords",
         "usage": "report mailbox usage"}


def mailbox(config: Config, address: str) -> tuple[str, Provider]:
    """The normalised address and its provider, if the config declares that mailbox."""
    try:
        addr = normalise_address(address)
    except AddressError as exc:
        raise CredentialsError(str(exc)) from None
    dom = domain_of(addr)
    state = config.desired.domains.get(dom)
    if state is None:
        raise CredentialsError(f"domain {dom} is not declared in {config.path}")
    if addr not in state.mailboxes:
        raise CredentialsError(f"{addr} is not a mailbox declared in {config.path}")
    return addr, config.provider(config.desired.provider_of[dom])


def capabilities(config: Config, address: str) -> Capabilities:
    return mailbox(config, address)[1].capabilities


def _capable(provider: Provider, feature: str) -> None:
    if provider.capabilities.lacks(feature):
        raise NotCapable(f"provider {provider.name!r} ({provider.type_name}) cannot "
                         f"{_WHAT[feature]}")


def check_password(password: Secret) -> None:
    value = password.reveal()
    if len(value) < MIN_PASSWORD:
        raise CredentialsError(f"the password is too short (at least {MIN_PASSWORD} characters)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise CredentialsError("the password contains control characters")


def reset_password(config: Config, address: str, password: Secret | None = None) -> Secret:
    """Set a new password (generated unless given); the old one stops working."""
    addr, provider = mailbox(config, address)
    _capable(provider, "set_password")
    if password is None:
        password = generate_password(config.desired.password_length.get(addr, 32))
    else:
        check_password(password)
    provider.set_password(addr, password)
    return password


def list_app_passwords(config: Config, address: str) -> list[AppPassword]:
    addr, provider = mailbox(config, address)
    _capable(provider, "app_passwords")
    return sorted(provider.list_app_passwords(addr),
                  key=lambda a: (a.created or 0.0, a.name, a.id))


def add_app_password(config: Config, address: str, name: str) -> tuple[AppPassword, Secret]:
    """A new app password named `name` (one per device); the secret is shown once."""
    addr, provider = mailbox(config, address)
    _capable(provider, "app_passwords")
    name = name.strip()
    if not _NAME.match(name):
        raise CredentialsError("an app password's name is 1-64 letters, digits, spaces or "
                               ".,:;@()+-/ (e.g. 'Phone' or 'Laptop Thunderbird')")
    return provider.add_app_password(addr, name)


def revoke_app_password(config: Config, address: str, app_id: str) -> AppPassword:
    """Revoke one app password by its id; the revoked entry is returned."""
    addr, provider = mailbox(config, address)
    _capable(provider, "app_passwords")
    for entry in provider.list_app_passwords(addr):
        if entry.id == app_id:
            provider.revoke_app_password(addr, app_id)
            return entry
    raise CredentialsError(f"{addr} has no app password with id {app_id!r}")


def usage(config: Config, address: str) -> int | None:
    """Bytes the mailbox uses, or None where its provider does not report it."""
    addr, provider = mailbox(config, address)
    if provider.capabilities.lacks("usage"):
        return None
    return provider.usage([addr]).get(addr)
