"""The `dms` provider: docker-mailserver's config folder, owned as files.

mailctl renders the files itself instead of driving `setup email add` once
per account: one locked read-modify-write of each file per apply, hashes
computed in-process on all cores. Point it at the folder a docker-mailserver
container mounts at /tmp/docker-mailserver and its change detector picks the
new files up; point it at a `mailctl sandbox` folder and the sandbox reloads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from mailctl.model import Alias, DomainState, Forward, Kind, Mailbox, domain_of
from mailctl.providers.base import (
    DOVECOT_QUOTA,
    AppPassword,
    Capabilities,
    ErrorKind,
    Provider,
    ProviderError,
    ProviderSettings,
)
from mailctl.providers.dms import files as F
from mailctl.providers.dms.hashing import DEFAULT_ROUNDS, FAST_ROUNDS, hash_many
from mailctl.provision.changes import Action, Change, Outcome, Status
from mailctl.secret import Secret
from mailctl.util.atomic import atomic_write, locked, remove_stale_temps

LOCK_NAME = ".mailctl.lock"
log = logging.getLogger(__name__)


class DmsSettings(ProviderSettings):
    path: str  # the docker-mailserver config folder (relative to the config file)
    lock_timeout: float = 60.0


class _State:
    """The three files, parsed, with the lookups the provider needs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.accounts = F.parse_accounts(directory / F.ACCOUNTS)
        self.virtual = F.parse_virtual(directory / F.VIRTUAL)
        self.quotas = F.parse_quotas(directory / F.QUOTAS)
        self.deleted: set[str] = set()
        self._by_domain: dict[str, tuple[list[str], list[str]]] | None = None

    def by_domain(self, name: str) -> tuple[list[str], list[str]]:
        """(accounts, virtual keys) of one domain; grouped once, not scanned per domain."""
        if self._by_domain is None:
            groups: dict[str, tuple[list[str], list[str]]] = {}
            for key in self.accounts.addresses():
                groups.setdefault(domain_of(key), ([], []))[0].append(key)
            for key in self.virtual.addresses():
                groups.setdefault(domain_of(key), ([], []))[1].append(key)
            self._by_domain = groups
        return self._by_domain.get(name, ([], []))

    def is_guard(self, key: str) -> bool:
        """`alice@d alice@d`: only there so a catch-all does not swallow alice."""
        line = self.virtual.get(key)
        return line is not None and line.value == key and self.accounts.get(key) is not None

    def domains(self) -> set[str]:
        keys = [*self.accounts.addresses(), *self.virtual.addresses()]
        return {domain_of(k) for k in keys}

    def read_domain(self, name: str) -> DomainState:
        state = DomainState(name)
        account_keys, virtual_keys = self.by_domain(name)
        for key in account_keys:
            q = self.quotas.get(key)
            size = F.parse_dms_size(q.value) if q else 0
            state.mailboxes[key] = Mailbox(key, quota=size or 0)
        for key in virtual_keys:
            line = self.virtual.get(key)
            assert line is not None
            targets = tuple(t for t in line.value.split(",") if t)
            if key in state.mailboxes:
                if self.is_guard(key):
                    continue
                keep = key in targets
                state.forwards[key] = Forward(key, tuple(t for t in targets if t != key), keep)
            else:
                state.aliases[key] = Alias(key, targets)
        state.exists = bool(state.mailboxes or state.aliases)
        return state

    def write(self) -> None:
        # Accounts first, virtual last: a reader between two renames sees new
        # accounts before mail is routed to them, and routes removed before accounts.
        for cf, mode in ((self.accounts, 0o600), (self.quotas, None), (self.virtual, None)):
            if cf.changed:
                path = self.dir / cf.name
                if not path.exists() and not cf.index and not any(cf.lines):
                    continue
                atomic_write(path, cf.render(last_first=cf is self.virtual),
                             mode if not path.exists() else None)
                log.info("wrote %s (%d entries)", path, len(cf.index))


class DmsProvider(Provider):
    type_name = "dms"
    capabilities: ClassVar[Capabilities] = Capabilities(
        display_name=False, spam=False, quota=True, forwards=True, catch_all=True,
        quota_limits=DOVECOT_QUOTA,
        set_password=True, app_passwords=True,
    )
    settings_model = DmsSettings

    @property
    def directory(self) -> Path:
        return (self.base_dir / Path(self.settings.path).expanduser()).resolve()

    @classmethod
    def check_address(cls, address: str) -> str | None:
        if "|" in address:
            return f"{address}: docker-mailserver cannot store '|' in an address "
        return None

    def _require_dir(self) -> Path:
        d = self.directory
        if not d.is_dir():
            raise ProviderError(
                ErrorKind.NOT_FOUND, f"docker-mailserver config folder {d} does not exist",
                provider=self.name,
                detail="create it, or fix `path` in the provider settings (relative to the "
                "config file's folder); `mailctl sandbox up` creates the sandbox's",
            )
        return d

    def list_domains(self) -> list[str]:
        return sorted(_State(self._require_dir()).domains())

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        # A missing folder is a typo or a missing mount far more often than an empty
        # server: a plan that lists every object as a create would hide that.
        state = _State(self._require_dir())
        return {name: state.read_domain(name) for name in domains}

    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        directory = self._require_dir()
        try:
            with locked(directory / LOCK_NAME, timeout=self.settings.lock_timeout):
                remove_stale_temps(directory, list(F.FILES))
                state = _State(directory)
                log.debug("locked %s; %d changes to apply", directory, len(changes))
                hashes = self._hashes(changes, state)
                outcomes = [self._one(state, ch, hashes) for ch in changes]
                self._drop_targets(state, state.deleted)
                self._guards(state, {ch.domain for ch in changes})
                state.write()
        except TimeoutError as exc:
            err = ProviderError(ErrorKind.UNAVAILABLE, str(exc), provider=self.name, retryable=True)
            return [Outcome(ch, Status.NOT_ATTEMPTED, str(err), kind=err.kind.value)
                    for ch in changes]
        except OSError as exc:
            msg = f"cannot write {directory}: {exc.strerror}"
            return [Outcome(ch, Status.NOT_ATTEMPTED, msg) for ch in changes]
        self._notify(directory)
        return outcomes

    # -- internals ---------------------------------------------------------------

    def _hashes(self, changes: Sequence[Change], state: _State) -> dict[str, str]:
        todo: list[tuple[str, str, int]] = []
        out: dict[str, str] = {}
        for ch in changes:
            mb = ch.desired
            if ch.action is Action.CREATE and isinstance(mb, Mailbox):
                if state.accounts.get(mb.address) is not None:
                    continue
                if mb.password_hash:
                    out[mb.address] = mb.password_hash
                elif mb.password is not None:
                    rounds = FAST_ROUNDS if mb.password.source == "generated" else DEFAULT_ROUNDS
                    todo.append((mb.address, mb.password.reveal(), rounds))
        hashed = hash_many([(pw, r) for _, pw, r in todo])
        out.update({addr: h for (addr, _, _), h in zip(todo, hashed, strict=True)})
        return out

    def _one(self, state: _State, ch: Change, hashes: dict[str, str]) -> Outcome:
        try:
            if ch.kind is Kind.MAILBOX:
                note = self._mailbox(state, ch, hashes)
            elif ch.kind is Kind.ALIAS:
                note = self._alias(state, ch)
            elif ch.kind is Kind.FORWARD:
                note = self._forward(state, ch)
            else:
                note = None  # domains are implicit in docker-mailserver
        except ProviderError as exc:
            return Outcome(ch, Status.FAILED, str(exc), kind=exc.kind.value)
        return Outcome(ch, Status.DONE, note, adopted=bool(note) and "adopted" in str(note))

    def _conflict(self, ch: Change, message: str) -> ProviderError:
        return ProviderError(ErrorKind.CONFLICT, message, provider=self.name, obj=ch.key)

    def _mailbox(self, state: _State, ch: Change, hashes: dict[str, str]) -> str | None:
        key = ch.key
        if ch.action is Action.DELETE:
            state.accounts.delete(key)
            state.quotas.delete(key)
            state.virtual.delete(key)  # its forward or guard
            state.deleted.add(key)
            return None
        mb = ch.desired
        assert isinstance(mb, Mailbox)
        self._check_quota(ch)
        if ch.action is Action.CREATE:
            existing = state.accounts.get(key)
            if existing is not None:
                self._set_quota(state, key, mb.quota)
                return "already existed; adopted"
            if key in state.virtual.index and not state.is_guard(key):
                raise self._conflict(ch, "is already defined as an alias")
            if key not in hashes:
                raise ProviderError(ErrorKind.INVALID, "no password to set", obj=key)
            state.accounts.put(F.account_line(key, hashes[key]))
        self._set_quota(state, key, mb.quota)
        return None

    def _check_quota(self, ch: Change) -> None:
        """Validation refuses these first; this guards callers that skip it (a library
        user, a hand-built plan): Dovecot must never be handed a quota it rejects."""
        mb = ch.desired
        quota = mb.quota if isinstance(mb, Mailbox) else None
        problem = DOVECOT_QUOTA.problem(quota, self.name) if quota else None
        if problem:
            raise ProviderError(ErrorKind.INVALID, problem[0], provider=self.name,
                                obj=ch.key, detail=problem[1])

    @staticmethod
    def _set_quota(state: _State, key: str, quota: int | None) -> None:
        if quota is None:
            return
        current = state.quotas.get(key)
        if quota == 0:
            if current is not None:
                state.quotas.delete(key)
        elif current is None or F.parse_dms_size(current.value) != quota:
            state.quotas.put(F.quota_line(key, quota))

    def _alias(self, state: _State, ch: Change) -> str | None:
        key = ch.key
        if ch.action is Action.DELETE:
            state.virtual.delete(key)
            return None
        al = ch.desired
        assert isinstance(al, Alias)
        if ch.action is Action.CREATE:
            if state.accounts.get(key) is not None:
                raise self._conflict(ch, "is already defined as an account")
            line = state.virtual.get(key)
            if line is not None:
                if sorted(line.value.split(",")) == sorted(al.destinations):
                    return "already existed; adopted"
                raise self._conflict(ch, f"already exists with other destinations ({line.value})")
        state.virtual.put(F.virtual_line(key, list(al.destinations)))
        return None

    def _forward(self, state: _State, ch: Change) -> str | None:
        key = ch.key
        if ch.action is Action.DELETE:
            state.virtual.delete(key)
            return None
        fw = ch.desired
        assert isinstance(fw, Forward)
        if state.accounts.get(key) is None:
            raise ProviderError(ErrorKind.NOT_FOUND, "mailbox does not exist", obj=key)
        targets = ([key] if fw.keep else []) + list(fw.destinations)
        state.virtual.put(F.virtual_line(key, targets))
        return None

    @staticmethod
    def _drop_targets(state: _State, deleted: set[str]) -> None:
        """What `setup email del` does: a deleted account leaves every alias."""
        if not deleted:
            return
        for key in state.virtual.addresses():
            line = state.virtual.get(key)
            assert line is not None
            targets = line.value.split(",")
            if not deleted.isdisjoint(targets):
                rest = [t for t in targets if t not in deleted]
                if rest:
                    state.virtual.put(F.virtual_line(key, rest))
                else:
                    state.virtual.delete(key)

    @staticmethod
    def _guards(state: _State, domains: set[str]) -> None:
        """Keep self-entries exactly where a catch-all would otherwise swallow an account."""
        state._by_domain = None  # accounts changed since the last grouping
        for dom in domains:
            has_catch_all = f"@{dom}" in state.virtual.index
            for key in state.by_domain(dom)[0]:
                if has_catch_all and key not in state.virtual.index:
                    state.virtual.put(F.virtual_line(key, [key]))
                elif not has_catch_all and state.is_guard(key):
                    state.virtual.delete(key)

    @staticmethod
    def _notify(directory: Path) -> None:
        # Cheap when no sandbox serves the folder: one failed open of its marker.
        from mailctl.sandbox import SandboxError, notify_change

        try:
            if notify_change(directory):
                log.info("sandbox serving %s reloaded", directory)
        except SandboxError as exc:
            # The files are written and valid for docker-mailserver; only the local
            # sandbox could not take them. Say so without failing the apply.
            log.warning("the sandbox serving %s did not reload: %s", directory, exc)

    # -- self-service (passwords, app passwords: providers/dms/selfservice.py) ----------

    def _self_service(self, address: str, action: Any) -> Any:
        from mailctl.providers.dms import selfservice

        directory = self._require_dir()
        try:
            with locked(directory / LOCK_NAME, timeout=self.settings.lock_timeout):
                result = action(selfservice, directory)
        except selfservice.NoSuchMailbox:
            raise ProviderError(ErrorKind.NOT_FOUND, "mailbox does not exist",
                                provider=self.name, obj=address) from None
        except TimeoutError as exc:
            raise ProviderError(ErrorKind.UNAVAILABLE, str(exc), provider=self.name,
                                retryable=True) from None
        except OSError as exc:
            raise ProviderError(ErrorKind.UNAVAILABLE, f"cannot write {directory}: "
                                f"{exc.strerror}", provider=self.name) from None
        self._notify(directory)
        return result

    def set_password(self, address: str, password: Secret) -> None:
        self._self_service(address, lambda m, d: m.set_password(d, address, password))

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        from mailctl.providers.dms import selfservice

        return selfservice.list_app_passwords(self._require_dir(), address)

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        result: tuple[AppPassword, Secret] = self._self_service(
            address, lambda m, d: m.add_app_password(d, address, name))
        return result

    def revoke_app_password(self, address: str, app_id: str) -> None:
        if not self._self_service(address,
                                  lambda m, d: m.revoke_app_password(d, address, app_id)):
            raise ProviderError(ErrorKind.NOT_FOUND, f"no app password {app_id}",
                                provider=self.name, obj=address)
