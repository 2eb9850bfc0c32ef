"""A domain served by two providers for good: `mailctl fetch --domain D` from mailctl.yaml.

The hosted-inbound, local-storage setup (docs/howto-inbound-mirror.md): the domain's
`provider` receives and filters, its `mirror` stores, and mail is fetched from one
to the other. `apply` already creates every mailbox on both (provision/engine.py,
`mirror_desired`); this module gives `fetch` its accounts from the same YAML, so a
person is one `- local_part:` line and nothing else:

- one account per declared mailbox of each domain with a mirror: the INBOX (or
  `--folder`s) of the address at the provider, delivered to the same address at
  the mirror's `mail_access.<mirror>.deliver` (LMTP or SMTP);
- signed in as `mail_access.<provider>` says: a master user, OAuth2, or each
  user's password from its `passwords:` file (the one `apply --secrets-out`
  wrote) or the mailbox's own `password:` reference in the YAML;
- where the mirror's `mail_access` can sign in too, it is the `check:` mailbox
  that lets a pass after a crash recognise a message already delivered (sync/fetch.py).

The configuration is the same dict fetch.yaml loads into, so the daemon, its
exactly-once journal and its IDLE handling are fetchd.py's, unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.domain.access import MailAccessError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.access import Access
    from mailctl.secret import Secret
    from mailctl.sync.imapstore import ImapStore


def default_state() -> Path:
    """The delivery journal of YAML-driven fetches (one for every domain: its rows are
    keyed by the account's URL, user and server included)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base).absolute() / "mailctl" / "fetch" / "domains.db"


def mirrored(config: Config, wanted: list[str] | None) -> list[str]:
    """The domains to fetch: `wanted` (each must have a mirror), else every one that has."""
    have = sorted(config.desired.mirror_of)
    if not wanted:
        if not have:
            raise MailAccessError(f"no domain in {config.path} has a `mirror:` (expected "
                                  "domains: {D: {provider: INBOUND, mirror: LOCAL}}, "
                                  "docs/howto-inbound-mirror.md)")
        return have
    lacking = [d for d in wanted if d not in config.desired.mirror_of]
    if lacking:
        raise MailAccessError(f"--domain {lacking[0]} has no `mirror:` in {config.path} "
                              f"(expected a domain with provider and mirror: "
                              f"{', '.join(have) or 'none is declared'})", usage=True)
    return wanted


def _deliver(config: Config, mirror: str) -> dict[str, str]:
    acc = config.file.mail_access.get(mirror)
    spec = acc.deliver if acc else None
    if not spec:  # validate refuses this already; a library caller may skip it
        raise MailAccessError(f"{config.path}: mirror {mirror!r} has no "
                              f"mail_access.{mirror}.deliver (expected lmtp:/socket, "
                              "lmtp:host:port or smtp:host:port)")
    kind, _, target = spec.partition(":")
    return {kind: target}


def declared_passwords(config: Config, domain: str) -> dict[str, Secret]:
    """The mailboxes' own `password:` values (references, resolved by the loader)."""
    return {a: mb.password for a, mb in config.desired.domains[domain].mailboxes.items()
            if mb.password is not None}


def fetch_config(config: Config, domains: list[str] | None = None, *,
                 folders: list[str] | None = None, keep: bool = True,
                 mode: str | None = None, poll_interval: float | None = None
                 ) -> dict[str, Any]:
    """fetch.yaml's dict for `domains` (default: every domain with a mirror), checked:
    every mailbox has a way to sign in, the mirrors deliver to one place."""
    from mailctl.domain.access import access_for

    names = mirrored(config, domains)
    accounts: list[dict[str, Any]] = []
    deliver: dict[str, str] | None = None
    for name in names:
        provider, mirror = config.desired.provider_of[name], config.desired.mirror_of[name]
        spec = _deliver(config, mirror)
        if deliver is not None and spec != deliver:
            raise MailAccessError(f"the mirrors of {', '.join(names)} deliver to different "
                                  "places (expected one `fetch --domain` per mirror)",
                                  usage=True)
        deliver = spec
        src = access_for(config, provider, known=declared_passwords(config, name))
        addresses = sorted(config.desired.domains[name].mailboxes)
        lacking = src.missing(addresses)
        if lacking:
            raise MailAccessError(
                f"no way to sign in to {', '.join(lacking[:5])}"
                f"{' ...' if len(lacking) > 5 else ''} at provider {provider!r} "
                f"({src.describe()}) (expected mail_access.{provider}.passwords: the file "
                "`apply --secrets-out` wrote, a `password:` in the mailbox's entry, or "
                "auth: master)")
        check = _check_access(config, mirror, name)
        for address in addresses:
            acct: dict[str, Any] = {
                "src": f"{'imaps' if src.tls else 'imap'}://{address}@{src.host}:{src.port}",
                "to": address, "keep": keep, "folders": list(folders or ["INBOX"]),
                "open_src": _opener(src, address)}
            if check is not None and check.credential(address) is not None:
                acct["open_check"] = _checker(check, address)
            if mode:
                acct["mode"] = mode
            if poll_interval:
                acct["poll_interval"] = poll_interval
            accounts.append(acct)
    assert deliver is not None
    return {"deliver": deliver, "accounts": accounts}


def _check_access(config: Config, mirror: str, domain: str) -> Access | None:
    """The mirror's mailboxes, for recognising a delivery a crash left in doubt; None
    when its `mail_access` cannot sign in (fetch then delivers again: never lost)."""
    from mailctl.domain.access import access_for

    try:
        return access_for(config, mirror, known=declared_passwords(config, domain))
    except MailAccessError:
        return None


def _opener(access: Access, address: str) -> Any:
    def open_src(keep: bool) -> ImapStore:
        return access.store(address, readonly=keep)
    return open_src


def _checker(access: Access, address: str) -> Any:
    def open_check() -> ImapStore:
        return access.store(address, readonly=True)
    return open_check
