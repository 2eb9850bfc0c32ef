"""Bring tokens and users over from a mailadm database (its SQLite schema, dbversion 1).

Token secrets keep working (as hashes, or stored with `token_secrets:
stored`), so QR codes already printed keep working once the endpoint points
at mailctl; use counts are kept too. The mailboxes already
exist at the provider, so nothing is created there. The file is opened
read-only: an import never changes the mailadm database.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailctl.accounts.errors import AlreadyExists, InvalidInput
from mailctl.accounts.expiry import ExpiryError, normalise_expiry
from mailctl.accounts.store import Store
from mailctl.model import AddressError, domain_of, normalise_address, normalise_domain

_FOREVER = 100 * 365 * 86400  # mailadm writes sys.maxsize for `never`


@dataclass
class ImportReport:
    tokens: list[str] = field(default_factory=list)
    skipped_tokens: list[tuple[str, str]] = field(default_factory=list)
    accounts: int = 0
    skipped_accounts: list[tuple[str, str]] = field(default_factory=list)
    web_endpoint: str | None = None
    mail_domain: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"tokens": self.tokens,
                "skipped_tokens": [{"name": n, "why": w} for n, w in self.skipped_tokens],
                "accounts": self.accounts,
                "skipped_accounts": [{"address": a, "why": w}
                                     for a, w in self.skipped_accounts],
                "web_endpoint": self.web_endpoint, "mail_domain": self.mail_domain}


def _open(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise InvalidInput(f"{path}: not an SQLite database ({exc})") from None
    if not {"tokens", "users", "config"} <= names:
        conn.close()
        raise InvalidInput(f"{path}: not a mailadm database (tables tokens, users, config)")
    return conn


@dataclass
class MailadmDump:
    config: dict[str, str]
    token_rows: list[Any]
    user_rows: list[Any]


def read_mailadm(path: Path) -> MailadmDump:
    """Everything the import needs, read before mailctl's own store is touched."""
    conn = _open(path)
    try:
        config = dict(conn.execute("SELECT name, value FROM config").fetchall())
        token_rows = conn.execute(
            "SELECT name, token, expiry, prefix, maxuse, usecount FROM tokens").fetchall()
        user_rows = conn.execute("SELECT addr, date, ttl, token_name FROM users").fetchall()
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path}: not a mailadm database ({exc})") from None
    finally:
        conn.close()
    return MailadmDump(config, token_rows, user_rows)


def import_domain(dump: MailadmDump, provider_of: dict[str, str],
                  domain: str | None = None) -> str:
    """The domain the tokens are for: `domain`, else mailadm's mail_domain; declared."""
    try:
        dom = normalise_domain(domain or dump.config.get("mail_domain") or "")
    except AddressError as exc:
        raise InvalidInput(f"mail domain: {exc}; pass --domain") from None
    if dom not in provider_of:
        raise InvalidInput(f"domain {dom} is not declared in the config; declare it first")
    return dom


def import_mailadm(dump: MailadmDump, store: Store, provider_of: dict[str, str],
                   domain: str, keep_secrets: bool = False) -> ImportReport:
    """`provider_of`: the config's domain -> provider map (accounts need a provider).
    `keep_secrets`: store the token secrets themselves (`token_secrets: stored`)."""
    config, token_rows, user_rows = dump.config, dump.token_rows, dump.user_rows
    report = ImportReport(web_endpoint=config.get("web_endpoint"),
                          mail_domain=config.get("mail_domain"))
    dom = domain

    ids: dict[str, tuple[int, str]] = {}
    for name, secret, expiry, prefix, maxuse, usecount in token_rows:
        try:
            code = normalise_expiry(str(expiry))
        except ExpiryError as exc:
            report.skipped_tokens.append((name, str(exc)))
            continue
        try:
            tok = store.add_token(name, str(secret), dom, prefix or "", code, int(maxuse),
                                  usecount=int(usecount or 0), keep_secret=keep_secrets)
        except AlreadyExists:
            report.skipped_tokens.append((name, "a token with this name or secret exists"))
            try:
                existing = store.token(name)
                ids[name] = (existing.id, existing.name)
            except Exception:
                pass
            continue
        ids[name] = (tok.id, tok.name)
        report.tokens.append(name)

    rows = []
    for addr, date, ttl, token_name in user_rows:
        try:
            address = normalise_address(str(addr))
        except AddressError as exc:
            report.skipped_accounts.append((str(addr), str(exc)))
            continue
        provider = provider_of.get(domain_of(address))
        if provider is None:
            report.skipped_accounts.append((address, "its domain is not in the config"))
            continue
        created = int(date or 0)
        life = int(ttl) if ttl is not None else None
        tid = ids.get(token_name)
        rows.append({"address": address, "token_id": tid[0] if tid else None,
                     "token_name": token_name, "provider": provider, "created": created,
                     "expires": created + life if life is not None and life < _FOREVER
                     else None})
    before = len(store.accounts())
    store.import_accounts(rows)
    report.accounts = len(store.accounts()) - before
    if report.accounts < len(rows):
        report.skipped_accounts.append(("-", f"{len(rows) - report.accounts} already in "
                                             "the store"))
    return report

