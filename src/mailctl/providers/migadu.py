"""The `migadu` provider: api.migadu.com/v1 with HTTP Basic (admin email : API key).

Migadu's limits shape everything here. About 60 requests per 2 minutes are
allowed and excess is answered with 403 (not 429) and can get the IP blocked
for a while, so the client-side limiter is on by default and a 403 is read
as "slow down", never as "bad key". Every other failure is a 400 — "already
exists" included — so a failed create is settled by re-reading the object.
Passwords are write-only and storage usage, login and change times are
volatile: none of them is ever compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field

from mailctl.model import (
    Alias,
    DomainState,
    Kind,
    Mailbox,
    SpamSettings,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import Capabilities, ErrorKind, ProviderError
from mailctl.providers.http import (
    HttpClient,
    HttpProvider,
    HttpSettings,
    MailObject,
    RateLimit,
    RateLimiter,
    decode,
    provider_message,
    state_path,
)
from mailctl.providers.mailcow import norm_addresses

# mailctl's spam vocabulary <-> Migadu's (raycast's labels; the sample payloads agree).
_ACTION_OUT = {"folder": "folder", "tag": "subject", "drop": "drop", "none": "none"}
_LEVEL_OUT = {"most_permissive": "most_permissive", "permissive": "permissive",
              "default": "default", "strict": "strict", "most_strict": "strictest"}
_ACTION_IN = {v: k for k, v in _ACTION_OUT.items()}
_LEVEL_IN = {v: k for k, v in _LEVEL_OUT.items()}


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


class MigaduProvider(HttpProvider):
    type_name = "migadu"
    label = "Migadu"
    secret_field = "api_key"
    capabilities: ClassVar[Capabilities] = Capabilities(
        mailboxes=True, aliases=True, forwards=False, catch_all=False, quota=False,
        display_name=True, spam=True, external_destinations=True, domains=False,
    )
    settings_model = MigaduSettings
    default_rate_limit = RateLimit(requests=60, per_seconds=120, backoff_seconds=120)

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
            auth_hint=f" for the Migadu account {self.settings.user} (My Account → API Keys)")

    # -- read --------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        body = self.http.get_json("domains")
        rows = body.get("domains", []) if isinstance(body, dict) else []
        return sorted(normalise_domain(str(r["name"])) for r in rows if r.get("name"))

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        return {s.name: s for s in self.map_concurrently(self._read_domain, domains)}

    def _read_domain(self, domain: str) -> DomainState:
        resp = self.http.request("GET", f"domains/{domain}/mailboxes", obj=domain, ok=(404,))
        if resp.status_code == 404:
            return DomainState(domain, exists=False)
        state = DomainState(domain)
        for row in _rows(decode(resp, self.http, domain), "mailboxes"):
            mb = self._mailbox(row)
            state.mailboxes[mb.address] = mb
        body = self.http.get_json(f"domains/{domain}/aliases", obj=domain)
        for row in _rows(body, "address_aliases"):  # sic: not "aliases"
            al = self._alias(row)
            state.aliases[al.address] = al
        return state

    @staticmethod
    def _mailbox(row: dict[str, Any]) -> Mailbox:
        action = str(row.get("spam_action") or "folder")
        level = str(row.get("spam_aggressiveness") or "default")
        return Mailbox(normalise_address(str(row["address"])),
                       name=str(row.get("name") or "") or None,
                       spam=SpamSettings(_ACTION_IN.get(action, action),
                                         _LEVEL_IN.get(level, level)))

    @staticmethod
    def _alias(row: dict[str, Any]) -> Alias:
        dests = row.get("destinations") or []
        return Alias(normalise_address(str(row["address"])), norm_addresses(dests))

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        path = self._path(kind, key)
        resp = self.http.request("GET", path, obj=key, ok=(404,))
        if resp.status_code == 404:
            return None
        row = decode(resp, self.http, key)
        if not isinstance(row, dict):
            return None
        return self._mailbox(row) if kind is Kind.MAILBOX else self._alias(row)

    # -- write -------------------------------------------------------------------

    @staticmethod
    def _path(kind: Kind, key: str) -> str:
        local, _, domain = key.rpartition("@")
        what = "mailboxes" if kind is Kind.MAILBOX else "aliases"
        return f"domains/{domain}/{what}" + (f"/{quote(local, safe='')}" if local else "")

    def maybe_conflict(self, exc: ProviderError) -> bool:
        return exc.kind is ErrorKind.INVALID  # Migadu's "already exists" is a plain 400

    @staticmethod
    def _fields(fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in fields:
            out["name"] = fields["name"]
        if "spam_action" in fields:
            out["spam_action"] = _ACTION_OUT[fields["spam_action"]]
        if "spam_aggressiveness" in fields:
            out["spam_aggressiveness"] = _LEVEL_OUT[fields["spam_aggressiveness"]]
        return out

    def create(self, obj: MailObject) -> None:
        local, _, domain = obj.key.rpartition("@")
        if isinstance(obj, Mailbox):
            if obj.password is None:
                raise self.error(
                    ErrorKind.INVALID, "Migadu takes only a plaintext password: declare it as "
                    "a ${env:...} or ${file:...} reference, not a {SCHEME} hash", obj.key)
            # Migadu may refuse an empty name (unverified); the local part is what its UI uses.
            body: dict[str, Any] = {"local_part": local, "name": obj.name or local,
                                    "password_method": "password",
                                    "password": obj.password.reveal(),
                                    **self._fields(obj.managed_fields())}
        elif isinstance(obj, Alias):
            body = {"local_part": local, "destinations": list(obj.destinations)}
        else:
            raise self.error(ErrorKind.INVALID, "Migadu forwards are not supported", obj.key)
        try:
            self.http.request("POST", self._path(obj.kind, f"@{domain}"), json=body,
                              obj=obj.key)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                raise self.error(ErrorKind.NOT_FOUND,
                                 f"domain {domain} is not set up in this Migadu account; add "
                                 "it in the Migadu admin first", obj.key) from None
            raise

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        if isinstance(obj, Mailbox):
            body = self._fields(fields)  # PUT is partial: only what changed
        elif isinstance(obj, Alias):
            body = {"destinations": list(obj.destinations)}
        else:
            raise self.error(ErrorKind.INVALID, "Migadu forwards are not supported", obj.key)
        if body:
            self.http.request("PUT", self._path(obj.kind, obj.key), json=body, obj=obj.key)

    def delete(self, kind: Kind, key: str) -> None:
        # A 500 here may still mean "deleted" [report]: delete_checked re-reads on failure.
        self.http.request("DELETE", self._path(kind, key), obj=key, idempotent=False)


def _rows(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
