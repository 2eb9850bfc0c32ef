"""Handing out new secrets: a token's invite URL, an account's password.

A new secret is saved where the user asked for it (a 0600 QR file, a 0600
secrets file) *before* it takes effect, and those files are taken back if it
then does not: so a crash or kill -9 right after the provider made an account
never loses the only copy of its password, and a failure leaves no file
holding a password that opens nothing. The caller checks the paths first
(qr.check_output), so a bad path stops a command before anything is made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailctl.accounts import qr
from mailctl.accounts.errors import AccountsError, AlreadyExists, InvalidInput, NotFound
from mailctl.accounts.expiry import parse_expiry
from mailctl.accounts.model import Token
from mailctl.model import domain_of
from mailctl.secret import generate_password

if TYPE_CHECKING:
    from mailctl.accounts.service import AccountService, Credentials

TOKEN_BYTES = 24  # secrets.token_urlsafe: 192 bits, 32 characters


@dataclass(frozen=True, slots=True)
class Outputs:
    png: Path | None = None
    svg: Path | None = None
    secrets_out: Path | None = None  # accounts only: `address<TAB>password` lines
    terminal: bool = False  # the code will be printed (so it must be made)


@dataclass(slots=True)
class Issued:
    token: Token
    url: str  # holds the secret: shown once unless the store keeps it
    written: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class HandedOver:
    credentials: Credentials
    dclogin: str | None  # holds the password
    written: list[Path] = field(default_factory=list)


def issue_token(svc: AccountService, name: str, domain: str, prefix: str, expiry: str,
                maxuse: int, valid_until: int | None, out: Outputs) -> Issued:
    """A new token; its code is written first and taken back if the name is taken."""
    try:
        svc.store.token(name)
    except NotFound:
        pass
    else:  # found out before a file is written (a race still ends in AlreadyExists)
        raise AlreadyExists(f"a token named {name} exists (`mailctl tokens rotate {name}` "
                            "gives it a new secret)")
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    url = qr.invite_url_for(svc.settings.web.public_url, domain, name, secret)
    written = _write_code(qr.dcaccount(url), out)
    try:
        tok = svc.store.add_token(name, secret, domain, prefix, expiry, maxuse, valid_until,
                                  keep_secret=svc.settings.token_secrets == "stored")
    except BaseException:
        qr.remove(written)
        raise
    return Issued(tok, url, written)


def rotate_token(svc: AccountService, name: str, out: Outputs) -> Issued:
    """A new secret for a token; the old one stops working when the store commits."""
    old = svc.store.token(name)
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    url = qr.invite_url_for(svc.settings.web.public_url, old.domain, old.name, secret)
    written = _write_code(qr.dcaccount(url), out)
    try:
        tok = svc.store.rotate_token(name, secret,
                                     keep_secret=svc.settings.token_secrets == "stored")
    except BaseException:
        qr.remove(written)
        raise
    return Issued(tok, url, written)


def hand_over(svc: AccountService, address: str, token: Token | None, expiry: str,
              out: Outputs) -> HandedOver:
    """Create an account by hand, its password saved before the provider makes it."""
    password = generate_password()
    dclogin = None
    if out.png or out.svg or out.terminal:
        srv = svc.login_servers(domain_of(address))
        dclogin = qr.dclogin(address, password.reveal(), srv["imap"], srv["smtp"],
                             srv["accept_invalid"])
    written: list[Path] = []
    line = f"{address}\t{password.reveal()}\n"
    try:
        if out.secrets_out is not None:
            _append(out.secrets_out, line)
        if dclogin is not None:
            written = _write_code(dclogin, out)
        creds = svc.create(address, token, expiry, parse_expiry(expiry), password=password)
    except AccountsError:  # nothing was made: no file may hold this password
        qr.remove(written)
        if out.secrets_out is not None:
            _drop_line(out.secrets_out, line)
        raise
    return HandedOver(creds, dclogin, written)


def _write_code(payload: str, out: Outputs) -> list[Path]:
    if out.png is None and out.svg is None:
        return []
    try:
        return qr.render(payload, out.png, out.svg)
    except OSError as exc:
        raise InvalidInput(f"cannot write the QR code: {exc.strerror or exc}") from None


def _append(path: Path, line: str) -> None:
    """Append durably to a 0600 file (as `apply --secrets-out` does)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line.encode())
        os.fsync(fd)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _drop_line(path: Path, line: str) -> None:
    from mailctl.util.atomic import atomic_write

    with contextlib.suppress(OSError):
        lines = path.read_text().splitlines(keepends=True)
        atomic_write(path, "".join(ln for ln in lines if ln != line), 0o600)


__all__ = ["HandedOver", "Issued", "Outputs", "hand_over", "issue_token", "rotate_token"]
