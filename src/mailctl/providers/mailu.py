"""The `mailu` provider: Mailu's flask-restx API (`/api/v1`) with its API token.

Mailu uses real HTTP statuses (400/404/409), so it needs little translation.
What it does need: alias destinations must be existing Mailu users (the API
answers 404 for anything else, unlike the web UI), so external forwarding is
the user's `forward_destination` instead; passwords are plaintext
`raw_password` only; a wrong token feeds Mailu's IP rate limiter, so
authentication failures are never retried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from mailctl.model import (
    AddressError,
    Alias,
    DomainState,
    Forward,
    Kind,
    Mailbox,
    domain_of,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import (
    DOVECOT_QUOTA,
    AppPassword,
    Capabilities,
    ErrorKind,
    ProviderError,
    norm_addresses,
)
from mailctl.providers.http import (
    HttpClient,
    HttpProvider,
    HttpSettings,
    MailObject,
    decode,
    provider_message,
)
from mailctl.secret import Secret

MAILU_DEFAULT_QUOTA = 10**9


class MailuSettings(HttpSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_token",)
    url: str  # https://mail.example.org/api/v1 (/api/v1 is added when missing)
    api_token: str  # Mailu's API_TOKEN, as ${env:...} or ${file:...}


def _classify(resp: httpx.Response, client: HttpClient) -> ProviderError | None:
    msg = provider_message(resp)
    if resp.status_code == 429:
        return client.error(
            ErrorKind.AUTH,
            f"Mailu is rate-limiting this IP after failed token attempts (HTTP 429: {msg}); "
            f"check that {client.credential} holds Mailu's API_TOKEN, then wait before "
            "retrying")
    if resp.status_code == 500 and "API_TOKEN" in msg:
        return client.error(
            ErrorKind.AUTH, "Mailu's API is switched off: set API_TOKEN in mailu.env, "
            f"restart Mailu, and put the same value in {client.credential}")
    return None


class MailuProvider(HttpProvider):
    type_name = "mailu"
    label = "Mailu"
    secret_field = "api_token"
    capabilities: ClassVar[Capabilities] = Capabilities(
        mailboxes=True, aliases=True, forwards=True, catch_all=False, quota=True,
        # True for the sake of forwards; an alias to an external address is refused by
        # Mailu at apply time (404), and reported with what to do instead.
        display_name=True, spam=False, external_destinations=True, domains=True,
        enabled=True,  # the user's `enabled`
        # `quota_bytes` is a BigInteger handed to Dovecot 2.3 as `*:bytes=N` with its
        # default 10% grace (core/admin/mailu/internal/views/dovecot.py): the dms limit.
        quota_limits=DOVECOT_QUOTA,
        set_password=True, app_passwords=True, usage=True,  # tokens are its app passwords
    )
    settings_model = MailuSettings
    auth_hint = " (Mailu's API_TOKEN from mailu.env)"

    def make_client(self) -> HttpClient:
        token = self.secret()
        base = self.hs.url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        return HttpClient(
            provider=self.name, label=self.label, settings=self.hs,
            credential=self.credential_ref,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            classify=_classify, auth_hint=self.auth_hint, base_url=base)

    # -- read --------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        rows = self.http.get_json("domain")
        return sorted(normalise_domain(str(r["name"])) for r in _rows(rows) if r.get("name"))

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        existing = set(self.list_domains())
        states = self.map_concurrently(self._read_domain, [d for d in domains if d in existing])
        out = {s.name: s for s in states}
        for d in domains:
            out.setdefault(d, DomainState(d, exists=False))
        return out

    def _read_domain(self, domain: str) -> DomainState:
        state = DomainState(domain)
        for row in _rows(self.http.get_json(f"domain/{domain}/users", obj=domain)):
            mb, fw = self._user(row)
            state.mailboxes[mb.address] = mb
            if fw is not None:
                state.forwards[fw.address] = fw
        for row in _rows(self.http.get_json(f"alias/destination/{domain}", obj=domain)):
            al = self._alias(row)
            if al is not None and domain_of(al.address) == domain:
                state.aliases[al.address] = al
        return state

    @staticmethod
    def _user(row: dict[str, Any]) -> tuple[Mailbox, Forward | None]:
        address = normalise_address(str(row["email"]))
        mb = Mailbox(address, name=str(row.get("displayed_name") or "") or None,
                     quota=int(row.get("quota_bytes") or 0),
                     enabled=bool(row.get("enabled", True)))
        fw = None
        if row.get("forward_enabled"):
            fw = Forward(address, norm_addresses(row.get("forward_destination") or []),
                         keep=bool(row.get("forward_keep", True)))
        return mb, fw

    @staticmethod
    def _alias(row: dict[str, Any]) -> Alias | None:
        if row.get("wildcard"):
            return None  # SQL LIKE patterns: not an address mailctl can manage
        try:
            return Alias(normalise_address(str(row["email"])),
                         norm_addresses(row.get("destination") or []))
        except AddressError:
            return None

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        what = "alias" if kind is Kind.ALIAS else "user"
        resp = self.http.request("GET", f"{what}/{quote(key, safe='@')}", obj=key, ok=(404,))
        if resp.status_code == 404:
            return None
        row = decode(resp, self.http, key)
        if not isinstance(row, dict):
            return None
        if kind is Kind.ALIAS:
            return self._alias(row)
        mb, fw = self._user(row)
        return fw if kind is Kind.FORWARD else mb

    def without_defaults(self, state: DomainState) -> DomainState:
        """Mailu gives a user created without one a quota of 10**9 bytes
        (core/admin/mailu/models.py `quota_bytes` default): not a choice to import."""
        return dataclasses.replace(state, mailboxes={
            k: dataclasses.replace(m, quota=None) if m.quota == MAILU_DEFAULT_QUOTA else m
            for k, m in state.mailboxes.items()})

    def domain_exists(self, domain: str) -> bool:
        resp = self.http.request("GET", f"domain/{domain}", obj=domain, ok=(404,))
        return resp.status_code != 404

    # -- write -------------------------------------------------------------------

    def create_domain(self, domain: str) -> None:
        self.http.request("POST", "domain", json={"name": domain}, obj=domain)

    @staticmethod
    def _user_fields(fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in fields:
            out["displayed_name"] = fields["name"]
        if "quota" in fields:
            out["quota_bytes"] = int(fields["quota"])
        if "enabled" in fields:
            out["enabled"] = bool(fields["enabled"])
        return out

    @staticmethod
    def _forward_fields(fw: Forward) -> dict[str, Any]:
        return {"forward_enabled": True, "forward_destination": list(fw.destinations),
                "forward_keep": fw.keep}

    def create(self, obj: MailObject) -> None:
        if isinstance(obj, Mailbox):
            if obj.password is None:
                raise self.error(
                    ErrorKind.INVALID, "Mailu's API takes only a plaintext password: declare "
                    "it as a ${env:...} or ${file:...} reference, not a {SCHEME} hash", obj.key)
            body = {"email": obj.address, "raw_password": obj.password.reveal(),
                    **self._user_fields(obj.managed_fields())}
            self.http.request("POST", "user", json=body, obj=obj.key)
        elif isinstance(obj, Alias):
            body = {"email": obj.address, "destination": list(obj.destinations)}
            self._alias_call("POST", "alias", body, obj.key)
        elif isinstance(obj, Forward):  # a setting of its user: set it, idempotently
            self._patch("user", obj.key, self._forward_fields(obj))
        else:
            raise self.error(ErrorKind.INVALID, f"Mailu has no {obj.kind.value}s", obj.key)

    def _alias_call(self, method: str, path: str, body: dict[str, Any], key: str) -> None:
        try:
            self.http.request(method, path, json=body, obj=key)
        except ProviderError as exc:
            if exc.kind is ErrorKind.NOT_FOUND and "destination" in (exc.detail or ""):
                raise self.error(
                    ErrorKind.INVALID, "Mailu aliases can only deliver to existing Mailu users "
                    "(its API refuses other addresses); for an external address use "
                    "`forwards` on a mailbox", key, exc.detail) from None
            raise

    def _patch(self, what: str, key: str, body: dict[str, Any]) -> None:
        self.http.request("PATCH", f"{what}/{quote(key, safe='@')}", json=body, obj=key,
                          idempotent=True)

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        if isinstance(obj, Mailbox):
            body = self._user_fields(fields)
            if body:
                self._patch("user", obj.key, body)
        elif isinstance(obj, Alias):
            self._alias_call("PATCH", f"alias/{quote(obj.key, safe='@')}",
                             {"destination": list(obj.destinations)}, obj.key)
        elif isinstance(obj, Forward):
            self._patch("user", obj.key, self._forward_fields(obj))
        else:
            raise self.error(ErrorKind.INVALID, f"Mailu has no {obj.kind.value}s", obj.key)

    def delete(self, kind: Kind, key: str) -> None:
        if kind is Kind.FORWARD:
            self._patch("user", key, {"forward_enabled": False, "forward_destination": []})
            return
        what = "alias" if kind is Kind.ALIAS else "user"
        self.http.request("DELETE", f"{what}/{quote(key, safe='@')}", obj=key, idempotent=False)


    # -- self-service: Mailu's "authentication tokens" are its app passwords ------------

    def set_password(self, address: str, password: Secret) -> None:
        self._patch("user", address, {"raw_password": password.reveal()})

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        body = self.http.get_json(f"token/user/{quote(address, safe='@')}", obj=address)
        return [AppPassword(str(r.get("id")), str(r.get("comment") or ""),
                            _day(r.get("Created")), None, ("imap", "smtp", "pop3"))
                for r in _rows(body)]

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        """Mailu makes the token itself (32 hex characters) and shows it only here."""
        resp = self.http.request("POST", f"token/user/{quote(address, safe='@')}",
                                 json={"comment": name}, obj=address, idempotent=False)
        body = decode(resp, self.http, address)
        if not isinstance(body, dict) or not body.get("token") or body.get("id") is None:
            raise self.error(ErrorKind.UNKNOWN, "Mailu's answer holds no token", address)
        secret = Secret(str(body["token"]), "generated")
        return AppPassword(str(body["id"]), name, _day(body.get("Created")), None,
                           ("imap", "smtp", "pop3")), secret

    def revoke_app_password(self, address: str, app_id: str) -> None:
        self.http.request("DELETE", f"token/{quote(app_id, safe='')}", obj=address,
                          idempotent=True)

    def usage(self, addresses: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for address in addresses:
            row = self.http.get_json(f"user/{quote(address, safe='@')}", obj=address)
            used = row.get("quota_bytes_used") if isinstance(row, dict) else None
            out[address] = used if isinstance(used, int) else None
        return out


def _rows(body: Any) -> list[dict[str, Any]]:
    return [r for r in body if isinstance(r, dict)] if isinstance(body, list) else []


def _day(value: Any) -> float | None:
    """Mailu's `created_at` is a date (`2024-01-31`), read as midnight UTC."""
    import datetime as dt

    try:
        day = dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
