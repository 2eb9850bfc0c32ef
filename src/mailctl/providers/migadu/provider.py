"""The `migadu` provider: api.migadu.com/v1 with HTTP Basic (admin email : API key).

Migadu's limits shape everything here. About 60 requests per 2 minutes are
allowed and excess is answered with 403 (not 429) and can get the IP blocked
for a while, so the client-side limiter is on by default and a 403 is read
as "slow down", never as "bad key". Every other failure is a 400 — "already
exists" included — so a failed create is settled by re-reading the object.
Passwords are write-only and storage usage, login and change times are
volatile: none of them is ever compared.

A read costs three lists per domain (mailboxes, aliases, rewrites): a
mailbox's identities and forwardings come embedded in its row, and are only
listed separately for a row that lacks them. A mailctl forward is the set of
a mailbox's forwardings; each one waits for its target's confirmation, which
is reported as pending, never as drift.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field

from mailctl.model import (
    Alias,
    DomainState,
    Forward,
    Identity,
    Kind,
    Mailbox,
    MailObject,
    normalise_domain,
)
from mailctl.providers.base import Capabilities, ErrorKind, ProviderError, norm_addresses
from mailctl.providers.http import (
    HttpClient,
    HttpProvider,
    HttpSettings,
    RateLimit,
    RateLimiter,
    decode,
    provider_message,
    state_path,
)
from mailctl.providers.migadu import codec
from mailctl.secret import Secret


class MigaduSettings(HttpSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    url: str = "https://api.migadu.com/v1"
    user: str  # the Migadu account's admin email (not a mailbox)
    api_key: str  # as ${env:...} or ${file:...}
    concurrency: int = Field(4, ge=1, le=64)


def _classify(resp: httpx.Response, client: HttpClient) -> ProviderError | None:
    if resp.status_code != 403:
        return None
    return client.error(
        ErrorKind.RATE_LIMITED,
        "Migadu refused the request with HTTP 403, which is how it signals its rate "
        "limit (about 60 requests per 2 minutes; going on can get this IP blocked for a "
        "while). Wait a few minutes and re-run; lower `rate_limit` in the provider settings "
        f"if it keeps happening. If it persists after a pause, check that {client.credential} "
        "is still a valid API key",
        retryable=True, detail=provider_message(resp))


def _local(address: str) -> str:
    return quote(address.rpartition("@")[0], safe="")


def _rows(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


class MigaduProvider(HttpProvider):
    type_name = "migadu"
    label = "Migadu"
    secret_field = "api_key"
    capabilities: ClassVar[Capabilities] = Capabilities(
        mailboxes=True, aliases=True, forwards=True, catch_all=False, quota=False,
        display_name=True, spam=True, external_destinations=True, domains=False,
        forward_only=False, send_receive=True, protocol_access=True, address_lists=True,
        autoresponder=True, footer=True, invitation=True, identities=True, rewrites=True,
        set_password=True,  # Migadu has no app passwords (identities are addresses)
    )
    settings_model = MigaduSettings
    default_rate_limit = RateLimit(requests=60, per_seconds=120, backoff_seconds=120)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner: dict[str, str] = {}  # identity address -> its mailbox's address
        self._owner_lock = threading.Lock()

    def make_client(self) -> HttpClient:
        key = self.secret()
        rl = self.rate_limit()
        limiter = None
        if rl is not None:
            ident = f"{self.hs.url}|{self.settings.user}"
            limiter = RateLimiter(rl.requests, rl.per_seconds, state_path("migadu", ident))
        return HttpClient(
            provider=self.name, label=self.label, settings=self.hs,
            credential=self.credential_ref, auth=httpx.BasicAuth(self.settings.user, key.reveal()),
            headers={"Content-Type": "application/json"}, limiter=limiter, classify=_classify,
            auth_hint=f" for the Migadu account {self.settings.user} (My Account → API Keys)",
            # With no `rate_limit:` in the YAML the default's backoff_seconds still applies
            # to a 403: retrying one a second is what gets an IP blocked.
            rate_limit=self.hs.rate_limit or self.default_rate_limit)

    # -- read --------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        body = self.http.get_json("domains")
        rows = body.get("domains", []) if isinstance(body, dict) else []
        return sorted(normalise_domain(str(r["name"])) for r in rows if r.get("name"))

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        states = {s.name: s for s in self.map_concurrently(self._read_domain, domains)}
        self.require_domains(domains, [d for d, s in states.items() if s.exists])
        return states

    def account_hint(self) -> str:
        return f" (account {self.settings.user})"

    def without_defaults(self, state: DomainState) -> DomainState:
        return dataclasses.replace(
            state, mailboxes={k: codec.without_defaults(m) for k, m in state.mailboxes.items()},
            identities={k: codec.identity_without_defaults(i)
                        for k, i in state.identities.items()})

    def _read_domain(self, domain: str) -> DomainState:
        resp = self.http.request("GET", f"domains/{domain}/mailboxes", obj=domain, ok=(404,))
        if resp.status_code == 404:
            return DomainState(domain, exists=False)
        state = DomainState(domain)
        for row in _rows(decode(resp, self.http, domain), "mailboxes"):
            mb = codec.mailbox(row)
            state.mailboxes[mb.address] = mb
            for ident in self._identities(mb.address, row):
                state.identities[ident.address] = ident
            fw, pending = codec.forward(mb.address, self._forwardings(mb.address, row))
            if fw is not None:
                state.forwards[fw.address] = fw
            state.pending.extend(pending)
        body = self.http.get_json(f"domains/{domain}/aliases", obj=domain)
        for row in _rows(body, "address_aliases"):  # sic: not "aliases"
            al = codec.alias(row)
            state.aliases[al.address] = al
        body = self.http.get_json(f"domains/{domain}/rewrites", obj=domain)
        for row in _rows(body, "rewrites"):
            rw = codec.rewrite(row, domain)
            state.rewrites[rw.key] = rw
        return state

    def _identities(self, owner: str, row: dict[str, Any] | None = None) -> list[Identity]:
        """A mailbox's identities: embedded in its row, else one list call."""
        rows = row.get("identities") if row is not None else None
        if not isinstance(rows, list):
            rows = _rows(self.http.get_json(self._mbox(owner) + "/identities", obj=owner),
                         "identities")
        found = [codec.identity(r, owner) for r in rows if isinstance(r, dict)]
        with self._owner_lock:
            self._owner.update((i.address, owner) for i in found)
        return found

    def _forwardings(self, owner: str, row: dict[str, Any] | None = None
                     ) -> list[dict[str, Any]]:
        rows = row.get("forwardings") if row is not None else None
        if not isinstance(rows, list):
            rows = _rows(self.http.get_json(self._mbox(owner) + "/forwardings", obj=owner),
                         "forwardings")
        return [r for r in rows if isinstance(r, dict)]

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        if kind is Kind.FORWARD:
            return codec.forward(key, self._forwardings(key))[0] \
                if self._get(self._mbox(key), key) is not None else None
        if kind is Kind.IDENTITY:
            owner = self._owner_of(key)
            return next((i for i in self._identities(owner) if i.address == key), None) \
                if owner else None
        row = self._get(self._path(kind, key), key)
        if row is None:
            return None
        if kind is Kind.MAILBOX:
            return codec.mailbox(row)
        if kind is Kind.REWRITE:
            return codec.rewrite(row, key.partition("/")[0])
        return codec.alias(row)

    def _get(self, path: str, key: str) -> dict[str, Any] | None:
        resp = self.http.request("GET", path, obj=key, ok=(404,))
        row = decode(resp, self.http, key) if resp.status_code != 404 else None
        return row if isinstance(row, dict) else None

    def _owner_of(self, key: str) -> str | None:
        """The mailbox an identity belongs to: known from a read, else one list call."""
        with self._owner_lock:
            owner = self._owner.get(key)
        if owner is None:
            self.read([key.rpartition("@")[2]])
            with self._owner_lock:
                owner = self._owner.get(key)
        return owner

    # -- paths -------------------------------------------------------------------

    @staticmethod
    def _mbox(address: str) -> str:
        return f"domains/{address.rpartition('@')[2]}/mailboxes/{_local(address)}"

    def _path(self, kind: Kind, key: str) -> str:
        if kind is Kind.REWRITE:
            domain, _, name = key.partition("/")
            return f"domains/{domain}/rewrites" + (f"/{quote(name, safe='')}" if name else "")
        local, _, domain = key.rpartition("@")
        what = "mailboxes" if kind is Kind.MAILBOX else "aliases"
        return f"domains/{domain}/{what}" + (f"/{quote(local, safe='')}" if local else "")

    def maybe_conflict(self, exc: ProviderError) -> bool:
        return exc.kind is ErrorKind.INVALID  # Migadu's "already exists" is a plain 400

    # -- write -------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], key: str) -> None:
        try:
            self.http.request("POST", path, json=body, obj=key)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND and "/mailboxes/" not in path:
                domain = key.rpartition("@")[2] if "@" in key else key.partition("/")[0]
                raise self.error(ErrorKind.NOT_FOUND,
                                 f"domain {domain} is not set up in this Migadu account; add "
                                 "it in the Migadu admin first", key) from None
            raise

    def create(self, obj: MailObject) -> None:
        if isinstance(obj, Mailbox):
            self._create_mailbox(obj)
        elif isinstance(obj, Alias):
            local, _, domain = obj.key.rpartition("@")
            self._post(f"domains/{domain}/aliases",
                       {"local_part": local, "destinations": list(obj.destinations)}, obj.key)
        elif isinstance(obj, Identity):
            self._create_identity(obj)
        elif isinstance(obj, Forward):
            self._sync_forwardings(obj)
        else:
            fields = obj.managed_fields()
            self._post(self._path(Kind.REWRITE, obj.key.partition("/")[0] + "/"),
                       {"name": obj.name, **codec.rewrite_body(fields)}, obj.key)

    def _create_mailbox(self, mb: Mailbox) -> None:
        local, _, domain = mb.key.rpartition("@")
        fields = codec.to_migadu(mb.managed_fields())
        later = {k: v for k, v in fields.items() if k in codec.UPDATE_ONLY}
        # Migadu may refuse an empty name (unverified); the local part is what its UI uses.
        body: dict[str, Any] = {"local_part": local, "name": mb.name or local,
                                **{k: v for k, v in fields.items() if k not in later}}
        if mb.invite:
            body["password_method"] = "invitation"  # recovery_email is in the fields
        elif mb.password is not None:
            body.update(password_method="password", password=mb.password.reveal())
        else:
            raise self.error(
                ErrorKind.INVALID, "Migadu takes only a plaintext password: declare it as "
                "a ${env:...} or ${file:...} reference, not a {SCHEME} hash", mb.key)
        self._post(f"domains/{domain}/mailboxes", body, mb.key)
        if later:  # the autoresponder is not accepted on create
            self.http.request("PUT", self._mbox(mb.key), json=later, obj=mb.key)

    def _create_identity(self, ident: Identity) -> None:
        local = ident.address.rpartition("@")[0]
        fields = codec.to_migadu({k: v for k, v in ident.managed_fields().items()
                                  if k != "mailbox"})
        body: dict[str, Any] = {"local_part": local, "name": ident.name or local,
                                "password_use": ident.password_use, **fields}
        if ident.password_use == "custom":
            if ident.password is None:
                raise self.error(ErrorKind.INVALID, "password_use: custom needs a password",
                                 ident.key)
            body["password"] = ident.password.reveal()
        with self._owner_lock:
            self._owner[ident.address] = ident.mailbox
        self._post(self._mbox(ident.mailbox) + "/identities", body, ident.key)

    def _sync_forwardings(self, fw: Forward) -> None:
        """Make the mailbox's forwardings exactly `fw.destinations`: re-read first, so
        a retry or a half-done earlier apply only adds what is missing."""
        base = self._mbox(fw.address) + "/forwardings"
        have = set(norm_addresses([str(r.get("address")) for r in
                                   self._forwardings(fw.address) if r.get("address")]))
        for dest in fw.destinations:
            if dest not in have:
                self.http.request("POST", base, json={"address": dest}, obj=fw.key)
        for dest in sorted(have - set(fw.destinations)):
            self.http.request("DELETE", f"{base}/{quote(dest, safe='')}", obj=fw.key,
                              idempotent=True)

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        if isinstance(obj, Forward):
            self._sync_forwardings(obj)
            return
        if isinstance(obj, Identity):
            self._update_identity(obj, fields)
            return
        if isinstance(obj, Mailbox):
            body = codec.to_migadu(fields)  # PUT is partial: only what changed
            path = self._mbox(obj.key)
        elif isinstance(obj, Alias):
            body, path = {"destinations": list(obj.destinations)}, self._path(obj.kind, obj.key)
        else:
            body, path = codec.rewrite_body(fields), self._path(obj.kind, obj.key)
        if body:
            self.http.request("PUT", path, json=body, obj=obj.key)

    def _update_identity(self, ident: Identity, fields: dict[str, Any]) -> None:
        if "mailbox" in fields:
            # Identities live under their mailbox at Migadu: moving one is delete + create.
            self.delete(Kind.IDENTITY, ident.key)
            self._create_identity(ident)
            return
        body = codec.to_migadu(fields)
        if body:
            path = f"{self._mbox(ident.mailbox)}/identities/{_local(ident.address)}"
            self.http.request("PUT", path, json=body, obj=ident.key)

    def delete(self, kind: Kind, key: str) -> None:
        if kind is Kind.FORWARD:
            self._sync_forwardings(Forward(key, ()))
            return
        if kind is Kind.IDENTITY:
            owner = self._owner_of(key)
            if owner is None:
                raise self.error(ErrorKind.NOT_FOUND, "no such identity at Migadu", key)
            path = f"{self._mbox(owner)}/identities/{_local(key)}"
        else:
            path = self._path(kind, key)
        # A 500 here may still mean "deleted" [report]: delete_checked re-reads on failure.
        self.http.request("DELETE", path, obj=key, idempotent=False)

    # -- self-service: the password only ---------------------------------------------

    def set_password(self, address: str, password: Secret) -> None:
        """PUT is partial: only the (write-only, plaintext) password is sent."""
        self.http.request("PUT", self._mbox(address), json={"password": password.reveal()},
                          obj=address, idempotent=True)
