"""Creating, pruning and repairing accounts at whatever provider holds the domain.

Accounts are made through the same `Provider.apply` interface as `mailctl
apply`, one change per call, so this works on every provider mailctl has.
The store is never locked while a provider call is in flight (see store.py).
"""

from __future__ import annotations

import logging
import secrets
import string
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailctl.accounts.errors import (
    AccountsError,
    AddressTaken,
    InvalidInput,
    ProviderRejected,
    ProviderUnavailable,
    UnknownToken,
)
from mailctl.accounts.expiry import iso
from mailctl.accounts.model import Account, Token
from mailctl.accounts.settings import AccountsSettings
from mailctl.accounts.store import Store
from mailctl.model import Kind, Mailbox, domain_of
from mailctl.providers.base import ErrorKind, Provider, ProviderError
from mailctl.provision.changes import Action, Change, Outcome, Status
from mailctl.secret import Secret, generate_password, scrub

if TYPE_CHECKING:
    from mailctl.config.load import Config

log = logging.getLogger(__name__)
LOCAL_ALPHABET = string.ascii_lowercase + string.digits
ATTEMPTS = 5  # random addresses that collide (≈ never with 36^10 of them)
_UNAVAILABLE = ("unavailable", "rate_limited")  # ProviderError kinds worth a retry later


@dataclass(slots=True)
class Credentials:
    address: str
    password: Secret
    expiry: str
    ttl: int | None
    expires: int | None
    token: str | None

    def as_api(self) -> dict[str, Any]:
        """mailadm's reply shape; `ttl` of a `never` token is 0 (mailadm: sys.maxsize)."""
        return {"email": self.address, "password": self.password.reveal(),
                "expiry": self.expiry, "ttl": self.ttl or 0, "expires": iso(self.expires)}


@dataclass(slots=True)
class Ticket:
    """Lets a waiter give up on a creation without leaving a half-made account.

    The worker claims the ticket before it commits; a waiter that times out
    abandons it unless already claimed, and the worker then undoes its work."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    claimed: bool = False
    abandoned: bool = False

    def claim(self) -> bool:
        with self.lock:
            if not self.abandoned:
                self.claimed = True
            return self.claimed

    def abandon(self) -> bool:
        with self.lock:
            if not self.claimed:
                self.abandoned = True
            return self.abandoned


@dataclass(slots=True)
class PruneReport:
    removed: list[Account] = field(default_factory=list)
    repaired: list[Account] = field(default_factory=list)
    failed: list[tuple[Account, str]] = field(default_factory=list)
    dry_run: bool = False


class AccountService:
    def __init__(self, config: Config, store: Store,
                 settings: AccountsSettings | None = None) -> None:
        self.config = config
        self.store = store
        self.settings = settings or config.file.accounts or AccountsSettings()
        self._lock = threading.Lock()

    # -- providers ---------------------------------------------------------------

    def provider_of(self, domain: str) -> tuple[str, Provider]:
        name = self.config.desired.provider_of.get(domain)
        if name is None:
            raise ProviderRejected(f"domain {domain} is not declared in the config")
        with self._lock:  # Config.provider creates instances lazily
            return name, self.config.provider(name)

    def _apply(self, provider: Provider, change: Change) -> Outcome:
        try:
            return provider.apply([change])[0]
        except ProviderError as exc:
            status = Status.NOT_ATTEMPTED if exc.kind in (
                ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED) else Status.FAILED
            text = f"{exc.kind.value}: {exc}"
        except Exception as exc:  # a provider bug must not leave a slot taken
            status, text = Status.NOT_ATTEMPTED, f"{type(exc).__name__}: {exc}"
        return Outcome(change, status, scrub(text))

    # -- creation ----------------------------------------------------------------

    def random_address(self, token: Token) -> str:
        n = self.settings.local_part_length
        local = token.prefix + "".join(secrets.choice(LOCAL_ALPHABET) for _ in range(n))
        return f"{local}@{token.domain}"

    def redeem(self, secret: str, ticket: Ticket | None = None) -> Credentials:
        """What `POST /?t=SECRET` does."""
        token = self.store.find_secret(secret) if secret else None
        if token is None:
            raise UnknownToken("token is invalid" if secret else "?t (token) parameter not "
                               "specified")
        return self.create(None, token, token.expiry, token.ttl, ticket=ticket)

    def create(self, address: str | None, token: Token | None, expiry: str,
               ttl: int | None, ticket: Ticket | None = None,
               password: Secret | None = None) -> Credentials:
        """Reserve, create at the provider, then commit; any failure undoes the reservation.

        `password`: one the caller already saved (a QR file, a secrets file), so that a
        crash right after the provider commits cannot lose it; else a fresh one."""
        domain = token.domain if address is None and token else domain_of(address or "")
        if not domain:
            raise InvalidInput("an address or a token is needed")
        pname, provider = self.provider_of(domain)
        reason = provider.check_address(address) if address else None
        if reason:
            raise InvalidInput(reason)
        for attempt in range(ATTEMPTS if address is None else 1):
            addr = address or self.random_address(token)  # type: ignore[arg-type]
            try:
                creds = self._create_one(addr, pname, provider, token, expiry, ttl, ticket,
                                         password or generate_password())
            except AddressTaken:
                if address is not None or attempt == ATTEMPTS - 1:
                    raise
                continue
            return creds
        raise AssertionError("unreachable")

    def _create_one(self, address: str, pname: str, provider: Provider, token: Token | None,
                    expiry: str, ttl: int | None, ticket: Ticket | None,
                    password: Secret) -> Credentials:
        now = int(time.time())
        rid = self.store.reserve(address, pname, token, ttl, now)
        change = Change(Action.CREATE, Kind.MAILBOX, domain_of(address), address, pname,
                        desired=Mailbox(address, password=password))
        try:
            outcome = self._apply(provider, change)
        except BaseException:
            self.store.release(rid)
            raise
        if outcome.adopted:
            # It existed before us: not ours to hand out (its password is not ours either).
            self.store.release(rid)
            raise AddressTaken(f"{address} already exists at the provider")
        if outcome.status is not Status.DONE:
            self.store.release(rid)
            log.warning("creating %s at %s failed: %s", address, pname, outcome.error)
            if outcome.status is Status.NOT_ATTEMPTED or outcome.kind in _UNAVAILABLE:
                raise ProviderUnavailable("the mail provider is unavailable; try again later")
            if outcome.kind == "conflict":
                raise AddressTaken(f"{address} already exists at the provider")
            raise ProviderRejected("the mail provider refused to create the account")
        if ticket is not None and not ticket.claim():
            log.info("%s: the client gave up waiting; undoing the creation", address)
            self._undo(provider, change, rid)
            raise ProviderUnavailable("gave up waiting for the provider")
        self.store.activate(rid)  # if this fails, reconcile removes the account later
        log.info("created %s (token %s)", address, token.name if token else "-")
        return Credentials(address, password, expiry, ttl,
                           now + ttl if ttl is not None else None,
                           token.name if token else None)

    def _undo(self, provider: Provider, created: Change, rid: int) -> bool:
        gone = self._apply(provider, Change(Action.DELETE, Kind.MAILBOX, created.domain,
                                            created.key, created.provider,
                                            current=Mailbox(created.key)))
        if gone.status is Status.DONE:
            return self.store.release(rid)
        log.warning("could not undo %s (%s); reconcile will retry", created.key, gone.error)
        return False

    # -- prune and reconcile -----------------------------------------------------

    def prune(self, dry_run: bool = False, now: float | None = None) -> PruneReport:
        """Delete expired accounts at their provider, then from the store; repair crashes."""
        ts = time.time() if now is None else now
        stale = self.store.stale_pending(ts - self.settings.pending_grace)
        expired = self.store.expired(ts)
        report = PruneReport(dry_run=dry_run)
        if dry_run:  # nothing is called, nothing is written
            report.repaired, report.removed = stale, expired
            return report
        self.store.prune_rate_limits()  # the API prunes these too; this covers a stopped API
        for acct, outcome in self._delete_all(stale):
            if outcome is None:
                report.repaired.append(acct)
                self.store.release(acct.id)
            else:
                report.failed.append((acct, outcome))
        for acct, outcome in self._delete_all(expired):
            if outcome is None:
                report.removed.append(acct)
                self.store.remove(acct.id)
            else:
                report.failed.append((acct, outcome))
        return report

    def _delete_all(self, accts: Sequence[Account]) -> list[tuple[Account, str | None]]:
        """One batch per provider; (account, None) when it is gone."""
        by_provider: dict[str, list[Account]] = {}
        for a in accts:
            by_provider.setdefault(a.provider, []).append(a)
        out: list[tuple[Account, str | None]] = []
        for pname, group in by_provider.items():
            try:
                with self._lock:
                    provider = self.config.provider(pname)
            except KeyError:
                out += [(a, f"provider {pname} is no longer in the config") for a in group]
                continue
            changes = [Change(Action.DELETE, Kind.MAILBOX, domain_of(a.address), a.address,
                              pname, current=Mailbox(a.address)) for a in group]
            try:
                outcomes = provider.apply(changes)
            except (ProviderError, OSError) as exc:
                out += [(a, scrub(str(exc))) for a in group]
                continue
            for a, o in zip(group, outcomes, strict=True):
                out.append((a, None if o.status is Status.DONE else o.error or "failed"))
        return out

    def login_servers(self, domain: str) -> dict[str, Any]:
        """IMAP/SMTP parameters for DCLOGIN: the config's, else the sandbox serving a dms dir."""
        from mailctl.accounts.qr import sandbox_login

        login = self.settings.login
        if login.imap or login.smtp:
            return {"imap": login.imap, "smtp": login.smtp,
                    "accept_invalid": login.accept_invalid_certificates}
        _, provider = self.provider_of(domain)
        return sandbox_login(provider) or {"imap": None, "smtp": None, "accept_invalid": False}


__all__ = ["AccountService", "AccountsError", "Credentials", "PruneReport", "Ticket"]
