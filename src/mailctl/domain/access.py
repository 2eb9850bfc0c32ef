"""Reaching every mailbox of a provider: its IMAP server and a way to sign in.

`mail_access:` in mailctl.yaml says, per provider, where its IMAP server is and
which sign-in to use (settings.py); the domain commands may override parts of
it on the command line. Everything is checked when `access_for` builds the
`Access` — the server URL, the master password reference, the passwords file,
the refresh tokens — so a command fails before its first side effect, never
half-way through a domain.

Sign-in kinds (sync/auth.py does the protocol):
- master: one administrator signs in as every user;
- passwords: each user's own password, from the file `apply --secrets-out`
  wrote (address<TAB>password; the last line for an address wins, as apply
  appends) or a CSV `address,password`;
- oauth2: a bearer token per user from a refresh token (Gmail, Microsoft 365);
- temporary: passwords mailctl set itself (a move's target without any of
  the above), recorded 0600 in the move project and handed in as `known`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.errors import MailctlError
from mailctl.secret import Secret

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.settings import MailAccess
    from mailctl.sync.auth import Auth
    from mailctl.sync.imapstore import ImapStore


class MailAccessError(MailctlError):
    """Mail access cannot be set up as configured; `usage` marks a command-line mistake
    (exit 64), else the config or a file it names is at fault (exit 1)."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class SignInError(MailctlError):
    """The server refused (or could not be reached for) some mailboxes' sign-in."""

    def __init__(self, provider: str, failures: dict[str, str]) -> None:
        first = next(iter(failures.items()))
        super().__init__(f"cannot sign in to {len(failures)} mailbox(es) at provider "
                         f"{provider!r}, e.g. {first[0]}: {first[1]}")
        self.failures = failures


@dataclass
class Overrides:
    """What a domain command's options change about `mail_access` (None: as configured)."""

    auth: str | None = None
    imap: str | None = None
    master_user: str | None = None
    master_password: Secret | None = None
    passwords: Path | None = None
    ca_file: str | None = None


def read_passwords(path: Path, what: str = "passwords file") -> dict[str, Secret]:
    """address -> password from `address<TAB>password` lines (apply --secrets-out) or CSV
    `address,password` (a header line is skipped). The last entry of an address wins."""
    import csv
    import io

    from mailctl.model import AddressError, normalise_address
    from mailctl.util.files import FileReadError, read_text

    try:
        text = read_text(path, limit=64 << 20, what=what)
    except FileReadError as exc:
        raise MailctlError(exc.message) from None
    out: dict[str, Secret] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" in line:
            addr, _, pw = line.partition("\t")
        else:
            row = next(csv.reader(io.StringIO(line)), [])
            if len(row) < 2:
                raise MailctlError(f"{path}:{n}: expected address<TAB>password or "
                                   "address,password")
            addr, pw = row[0], row[1]
        if n == 1 and addr.strip().lower() in ("address", "email", "user", "login"):
            continue
        try:
            key = normalise_address(addr.strip())
        except AddressError:
            raise MailctlError(f"{path}:{n}: {addr.strip()!r} is not an address (expected "
                               "address<TAB>password)") from None
        if not pw:
            raise MailctlError(f"{path}:{n}: no password for {key}")
        out[key] = Secret(pw, source=f"{path}:{n}")
    return out


class _TokenFile:
    """Rotated refresh tokens written back to their file (atomically, 0600)."""

    def __init__(self, path: Path, tokens: dict[str, Secret]) -> None:
        self.path, self.tokens = path, tokens
        self.lock = threading.Lock()

    def rotate(self, user: str, token: Secret) -> None:
        from mailctl.util.atomic import atomic_write

        with self.lock:
            self.tokens[user] = token
            atomic_write(self.path, "".join(f"{a}\t{t.reveal()}\n"
                                            for a, t in sorted(self.tokens.items())), 0o600)


@dataclass
class Access:
    """One provider's mailboxes over IMAP. `store(address)` opens a session on first use."""

    provider: str
    host: str
    port: int
    tls: bool
    kind: str
    ca_file: str | None = None
    auth: Any = None  # MasterAuth / OAuth2Auth, shared by every mailbox
    passwords: dict[str, Secret] = field(default_factory=dict)
    known: dict[str, Secret] = field(default_factory=dict)  # generated or temporary

    @property
    def label(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.host}:{self.port} ({self.describe()})"

    def describe(self) -> str:
        return {"master": f"as master user {getattr(self.auth, 'master', '?')}",
                "oauth2": getattr(self.auth, "label", "OAuth2"),
                "passwords": "with each user's password",
                "temporary": "with temporary passwords"}.get(self.kind, self.kind)

    def credential(self, address: str) -> Secret | Auth | None:
        """How `address` signs in; None when nothing is known for it. A password mailctl
        generated or set itself (`known`) comes before the configured passwords file."""
        if self.kind in ("master", "oauth2"):
            if self.kind == "oauth2" and not self.auth.tokens.has(address):
                return self.known.get(address)
            return self.auth  # type: ignore[no-any-return]
        return self.known.get(address) or self.passwords.get(address)

    def missing(self, addresses: list[str]) -> list[str]:
        """The mailboxes this access cannot sign in to (no password, no token)."""
        return [a for a in addresses if self.credential(a) is None]

    def check(self, addresses: list[str], jobs: int = 8) -> dict[str, str]:
        """Sign in to each (in parallel) and out again: address -> why it failed. Run
        before a command's first side effect, so a wrong master password or a stale token
        never leaves half a backup behind."""
        from concurrent.futures import ThreadPoolExecutor

        from mailctl.sync.model import SyncError

        def one(address: str) -> str | None:
            try:
                store = self.store(address, readonly=True)
                try:
                    store.conn  # noqa: B018 - signs in
                finally:
                    store.close()
            except (SyncError, MailctlError, OSError) as exc:
                from mailctl.secret import scrub

                return scrub(str(exc))
            return None

        if not addresses:
            return {}
        with ThreadPoolExecutor(max(1, min(jobs, len(addresses)))) as pool:
            got = dict(zip(addresses, pool.map(one, addresses), strict=True))
        return {a: e for a, e in got.items() if e}

    def store(self, address: str, readonly: bool = False) -> ImapStore:
        from mailctl.sync.endpoint import Endpoint
        from mailctl.sync.imapstore import ImapStore

        cred = self.credential(address)
        if cred is None:
            raise MailctlError(f"no way to sign in to {address} at provider {self.provider} "
                               f"({self.describe()}): no password or token for it")
        ep = Endpoint("imap", host=self.host, port=self.port, user=address, tls=self.tls)
        return ImapStore(ep, cred, cafile=self.ca_file, readonly=readonly)


def _parse_imap(url: str, what: str) -> tuple[str, int, bool]:
    from mailctl.sync.endpoint import parse_endpoint
    from mailctl.sync.model import UsageError

    scheme, sep, rest = url.partition("://")
    try:
        ep = parse_endpoint(f"{scheme}{sep}mailctl@{rest.rstrip('/')}")
    except UsageError as exc:
        raise MailAccessError(f"{what}: {str(exc).replace('mailctl@', '')}",
                              usage=what == "--imap") from None
    if ep.kind != "imap":
        raise MailAccessError(f"{what}: {url!r} (expected imap://host[:port] or "
                              "imaps://host[:port])", usage=what == "--imap")
    return ep.host, ep.port, ep.tls


def access_for(config: Config, provider: str, overrides: Overrides | None = None,
               known: dict[str, Secret] | None = None) -> Access:
    """The checked access to `provider`'s mailboxes: configuration plus `overrides`."""
    from mailctl.config.refs import RefError
    from mailctl.sync.auth import MasterAuth, OAuth2Auth, RefreshTokens

    o = overrides or Overrides()
    acc: MailAccess | None = config.file.mail_access.get(provider)
    where = f"{config.path}: mail_access.{provider}"
    imap = o.imap or (acc.imap if acc else None)
    if imap is None:
        raise MailAccessError(
            f"no mail_access for provider {provider!r} in {config.path} (expected "
            f"mail_access: {{{provider}: {{imap: imaps://HOST, auth: master|passwords|"
            "oauth2}}, or --imap URL)")
    host, port, tls = _parse_imap(imap, "--imap" if o.imap else f"{where}.imap")
    kind = o.auth or (acc.auth if acc else "passwords")
    ca = o.ca_file or (str(config.base_dir / acc.ca_file) if acc and acc.ca_file else None)
    out = Access(provider, host, port, tls, kind, ca, known=dict(known or {}))
    resolver = config.resolver
    if kind == "master":
        user = o.master_user or (acc.master.user if acc and acc.master else None)
        pw = o.master_password
        if pw is None and acc and acc.master:
            try:
                pw = resolver.resolve(acc.master.password)
            except RefError as exc:
                raise MailAccessError(f"{where}.master.password: {exc}") from None
        if not user or pw is None:
            raise MailAccessError(f"master sign-in at provider {provider!r} needs a master "
                                  f"user and password (expected {where}.master, or "
                                  "--master-user and --master-password-file)",
                                  usage=bool(o.auth))
        form = acc.master.form if acc and acc.master else "separator"
        sep = acc.master.separator if acc and acc.master else "*"
        out.auth = MasterAuth(user, pw, form, sep)
    elif kind == "oauth2":
        oa = acc.oauth2 if acc else None
        if oa is None:
            raise MailAccessError(f"OAuth2 sign-in at provider {provider!r} needs "
                                  f"{where}.oauth2 (token_url, client_id, refresh_tokens)",
                                  usage=bool(o.auth))
        secret = None
        if oa.client_secret:
            try:
                secret = resolver.resolve(oa.client_secret)
            except RefError as exc:
                raise MailAccessError(f"{where}.oauth2.client_secret: {exc}") from None
        path = config.base_dir / oa.refresh_tokens
        try:
            tokens = read_passwords(path, "refresh tokens file")
        except MailctlError as exc:
            raise MailAccessError(f"{where}.oauth2.refresh_tokens: {exc}") from None
        keeper = _TokenFile(path, tokens)
        out.auth = OAuth2Auth(RefreshTokens(oa.token_url, oa.client_id, secret, tokens,
                                            scope=oa.scope, on_rotate=keeper.rotate),
                              oa.mechanism)
    elif kind in ("passwords", "temporary"):
        pfile = o.passwords or (config.base_dir / acc.passwords if acc and acc.passwords
                                else None)
        if pfile is not None:
            try:
                out.passwords = read_passwords(pfile)
            except MailctlError as exc:
                raise MailAccessError(str(exc), usage=o.passwords is not None) from None
    else:
        raise MailAccessError(f"--auth {kind!r} (expected master, passwords, oauth2 or "
                              "temporary)", usage=True)
    if ca is not None and not os.access(ca, os.R_OK):
        raise MailAccessError(f"CA file {ca} is not readable (expected a PEM file)",
                              usage=bool(o.ca_file))
    return out
