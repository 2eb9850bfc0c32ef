"""The `reports:` section with its references resolved, ready to open and dial.

Resolution happens once per command and before any side effect: a missing
variable or CA file is one clear error naming the field, not a half-run fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailctl.reports.settings import MailboxSettings, ReportsSettings, is_ref
from mailctl.reports.unpack import Limits
from mailctl.secret import Secret


class ReportsConfigError(ValueError):
    """The reports section cannot be used as written (exit 1)."""


@dataclass(frozen=True)
class Mailbox:
    settings: MailboxSettings
    label: str  # imap://user@host:port or maildir:PATH, never a password
    password: Secret | None
    cafile: str | None


def limits_of(settings: ReportsSettings | None) -> Limits:
    s = (settings or ReportsSettings()).limits
    return Limits(max_message=s.max_message, max_unpacked=s.max_unpacked,
                  max_ratio=s.max_ratio, max_records=s.max_records)


def store_url(settings: ReportsSettings | None, config_path: Path) -> str:
    from mailctl.config.refs import RefError, Resolver
    from mailctl.reports.db import resolve_url

    configured = settings.store if settings else None
    if configured and is_ref(configured):
        try:
            configured = Resolver(config_path.parent.resolve()).resolve(configured).reveal()
        except RefError as exc:
            raise ReportsConfigError(f"reports.store: {exc}") from None
    return resolve_url(configured, config_path)


def mailboxes(settings: ReportsSettings | None, base_dir: Path) -> list[Mailbox]:
    from mailctl.config.refs import RefError, Resolver
    from mailctl.sync.endpoint import parse_endpoint
    from mailctl.sync.model import SyncError

    if settings is None or not settings.mailboxes:
        raise ReportsConfigError("no report mailboxes: add reports.mailboxes to the config "
                                 "(see docs/reports.md)")
    resolver = Resolver(base_dir.resolve())
    out = []
    for i, mb in enumerate(settings.mailboxes):
        where = f"reports.mailboxes[{i}]"
        try:
            ep = parse_endpoint(mb.url)
        except SyncError as exc:
            raise ReportsConfigError(f"{where}.url: {exc}") from None
        password = None
        if ep.kind == "imap":
            if mb.password is None:
                raise ReportsConfigError(f"{where}: an IMAP mailbox needs password: "
                                         "${env:NAME}")
            try:
                password = resolver.resolve(mb.password)
            except RefError as exc:
                raise ReportsConfigError(f"{where}.password: {exc}") from None
        cafile = None
        if mb.ca_file is not None:
            path = mb.ca_file if mb.ca_file.is_absolute() else base_dir / mb.ca_file
            if not path.is_file():
                raise ReportsConfigError(f"{where}.ca_file: {path} does not exist")
            cafile = str(path)
        out.append(Mailbox(mb, ep.label, password, cafile))
    return out
