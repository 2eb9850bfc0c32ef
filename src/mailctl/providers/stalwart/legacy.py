"""Stalwart 0.15 and earlier: the `/api/principal` REST API.

What makes it different from 0.16: failures come back as **HTTP 200** with
`{"error": "<code>", ...}` (stalwartlabs/stalwart#2190), so every answer body
is checked and its stable `error` code mapped (`fieldAlreadyExists` ->
exists -> re-read and adopt); lists are paged (`page`, `limit` -> `items`,
`total`), and a server may cap `limit`, so pages are read until `total` is
reached; secrets are stored verbatim, so a hash is sent, never the password.

Mapping: a mailbox is an `individual` principal named by its full address
(names are server-wide, local parts would collide across domains) with that
address as `emails[0]`, `description` as display name and `quota` in bytes;
an alias is a `list` principal whose destinations are `externalMembers`
(`members`, principal names, are read too). Extra `emails` on an individual
are left alone and not imported, as `Account.aliases` are on 0.16. A read is
three list calls whatever the number of domains: domains, individuals, lists.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

from mailctl.model import (
    Alias,
    DomainState,
    Kind,
    Mailbox,
    MailObject,
    domain_of,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import AppPassword, ErrorKind, ProviderError, norm_addresses
from mailctl.providers.dms.hashing import FAST_ROUNDS, sha512_crypt
from mailctl.providers.http import HttpClient, decode
from mailctl.secret import Secret, generate_password

_ERRORS = {
    "fieldAlreadyExists": ErrorKind.CONFLICT, "notFound": ErrorKind.NOT_FOUND,
    "fieldMissing": ErrorKind.INVALID, "unsupported": ErrorKind.INVALID,
    "assertFailed": ErrorKind.CONFLICT, "forbidden": ErrorKind.AUTH,
}


REFUSED_TODO = "fix what it names (in the config or in Stalwart), then re-run"


def crypt_secret(value: str) -> str:
    """`{SHA512-CRYPT}$6$...` -> `$6$...`: Stalwart recognises crypt hashes by their
    `$id$`, and `{SCHEME}` prefixes only for its own list (`{SSHA512}`, `{PLAIN}`...)."""
    if value.startswith("{") and "}$" in value:
        scheme, _, rest = value[1:].partition("}")
        if scheme.upper().endswith("CRYPT"):
            return rest
    return value


class Host(Protocol):
    """The three things LegacyApi needs from its provider; a Protocol, so that this
    module does not import provider.py (which imports this one)."""

    @property
    def http(self) -> HttpClient: ...

    def error(self, kind: ErrorKind, message: str, obj: str | None = None,
              detail: str | None = None) -> ProviderError: ...

    def password(self, mb: Mailbox) -> str: ...


class LegacyApi:
    page_size = 200

    def __init__(self, host: Host) -> None:
        self.p = host
        self._names: dict[str, str] = {}  # address -> principal name
        self._emails: dict[str, str] = {}  # principal name -> primary address
        self._domains: set[str] | None = None
        self._lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------

    def _call(self, method: str, path: str, key: str | None = None, *,
              json: Any = None, params: dict[str, str] | None = None,
              idempotent: bool | None = None) -> Any:
        resp = self.p.http.request(method, path, json=json, params=params, obj=key,
                                   idempotent=idempotent)
        body = decode(resp, self.p.http, key)
        if isinstance(body, dict) and body.get("error"):
            raise self._error(body, key)
        return body.get("data") if isinstance(body, dict) else None

    def _error(self, body: dict[str, Any], key: str | None) -> ProviderError:
        code = str(body["error"])
        detail = " ".join(f"{k}={body[k]}" for k in ("field", "value", "item", "details",
                                                      "reason") if body.get(k))
        return self.p.error(_ERRORS.get(code, ErrorKind.UNKNOWN),
                            f"Stalwart refused it: {code}; {REFUSED_TODO}", key, detail or None)

    def _list(self, type_: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self._call("GET", "api/principal", params={
                "types": type_, "page": str(page), "limit": str(self.page_size)})
            batch = (data or {}).get("items") or []
            items.extend(r for r in batch if isinstance(r, dict))
            if not batch or len(items) >= int((data or {}).get("total") or 0):
                return items
            page += 1

    def _principal_path(self, name: str) -> str:
        return f"api/principal/{quote(name, safe='@')}"

    def _remember(self, row: dict[str, Any]) -> str | None:
        emails = row.get("emails") or []
        if isinstance(emails, str):
            emails = [emails]
        if not emails or not row.get("name"):
            return None
        address = normalise_address(str(emails[0]))
        with self._lock:
            self._names[address] = str(row["name"])
            self._emails[str(row["name"])] = address
        return address

    # -- read --------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        found = {normalise_domain(str(r["name"])) for r in self._list("domain") if r.get("name")}
        self._domains = found
        return sorted(found)

    def read(self, domains: Sequence[str], held: Sequence[str] | None = None
             ) -> dict[str, DomainState]:
        known = set(self.list_domains() if held is None else held)
        out = {d: DomainState(d, exists=d in known) for d in domains}
        for row in self._list("individual"):
            mb = self._mailbox(row)
            if mb is not None and domain_of(mb.address) in out:
                out[domain_of(mb.address)].mailboxes[mb.address] = mb
        for row in self._list("list"):
            al = self._alias(row)
            if al is not None and domain_of(al.address) in out:
                out[domain_of(al.address)].aliases[al.address] = al
        return out

    def _mailbox(self, row: dict[str, Any]) -> Mailbox | None:
        address = self._remember(row)
        if address is None:
            return None
        return Mailbox(address, name=str(row.get("description") or "") or None,
                       quota=int(row.get("quota") or 0))

    def _alias(self, row: dict[str, Any]) -> Alias | None:
        address = self._remember(row)
        if address is None:
            return None
        with self._lock:
            members = [self._emails.get(str(m), str(m)) for m in row.get("members") or []]
        return Alias(address, norm_addresses([*members, *(row.get("externalMembers") or [])]))

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        with self._lock:
            name = self._names.get(key, key)
        try:
            row = self._call("GET", self._principal_path(name), key)
        except ProviderError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
            row = next((r for r in self._list("individual" if kind is Kind.MAILBOX else "list")
                        if key in [normalise_address(str(e)) for e in r.get("emails") or []]),
                       None)
        if not isinstance(row, dict):
            return None
        wanted = "individual" if kind is Kind.MAILBOX else "list"
        if row.get("type", wanted) != wanted:
            return None
        return self._mailbox(row) if kind is Kind.MAILBOX else self._alias(row)

    # -- write -------------------------------------------------------------------

    def _check_domain(self, key: str) -> None:
        if self._domains is None or domain_of(key) not in self._domains:
            self.list_domains()
        if domain_of(key) not in (self._domains or set()):
            raise self.p.error(ErrorKind.NOT_FOUND, f"domain {domain_of(key)} does not exist "
                               "in Stalwart; create it there first", key)

    def create(self, obj: MailObject) -> None:
        self._check_domain(obj.key)
        if isinstance(obj, Mailbox):
            body: dict[str, Any] = {
                "type": "individual", "name": obj.address, "emails": [obj.address],
                "secrets": [crypt_secret(self.p.password(obj))], "roles": ["user"],
                "quota": obj.quota or 0}
            if obj.name is not None:
                body["description"] = obj.name
        elif isinstance(obj, Alias):
            body = {"type": "list", "name": obj.address, "emails": [obj.address],
                    "externalMembers": list(obj.destinations)}
        else:
            raise self.p.error(ErrorKind.INVALID, f"Stalwart {obj.kind.value}s are not "
                               "supported", obj.key)
        self._call("POST", "api/principal", obj.key, json=body, idempotent=False)
        with self._lock:
            self._names[obj.key] = obj.key
            self._emails[obj.key] = obj.key

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        ops: list[dict[str, Any]] = []
        if isinstance(obj, Mailbox):
            if "name" in fields:
                ops.append({"action": "set", "field": "description", "value": fields["name"]})
            if "quota" in fields:
                ops.append({"action": "set", "field": "quota", "value": int(fields["quota"])})
        elif isinstance(obj, Alias):
            ops = [{"action": "set", "field": "externalMembers",
                    "value": list(obj.destinations)},
                   {"action": "set", "field": "members", "value": []}]
        if ops:
            with self._lock:
                name = self._names.get(obj.key, obj.key)
            self._call("PATCH", self._principal_path(name), obj.key, json=ops,
                       idempotent=True)

    def delete(self, kind: Kind, key: str) -> None:
        with self._lock:
            name = self._names.get(key, key)
        self._call("DELETE", self._principal_path(name), key, idempotent=True)

    # -- self-service (0.15.5 http/management/principal.rs, directory/.../manage.rs) -----

    def _principal(self, address: str) -> tuple[str, dict[str, Any]]:
        with self._lock:
            name = self._names.get(address)
        if name is None:
            self.read([address.rpartition("@")[2]])
            with self._lock:
                name = self._names.get(address, address)
        data = self._call("GET", self._principal_path(name), address)
        if not isinstance(data, dict):
            raise self.p.error(ErrorKind.NOT_FOUND, "mailbox does not exist", address)
        return name, data

    def _patch(self, name: str, address: str, ops: list[dict[str, Any]]) -> None:
        self._call("PATCH", self._principal_path(name), address, json=ops, idempotent=True)

    def set_password(self, address: str, password: Secret) -> None:
        """`addItem` replaces the password and keeps app passwords; `set` would drop them."""
        name, _ = self._principal(address)
        hashed = crypt_secret(sha512_crypt(password.reveal()))
        self._patch(name, address, [{"action": "addItem", "field": "secrets",
                                     "value": hashed}])

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        _, data = self._principal(address)
        out = []
        for secret in data.get("secrets") or []:
            if isinstance(secret, str) and secret.startswith("$app$"):
                app_name = secret[5:].partition("$")[0]
                out.append(AppPassword(app_name, app_name, None, None))
        return out

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        """Stored as `$app$NAME$HASH`; the name is the id (it may not hold a `$`)."""
        if "$" in name:
            raise self.p.error(ErrorKind.INVALID, "a Stalwart app password name cannot hold "
                               "'$'", address)
        principal, data = self._principal(address)
        if any(str(s).startswith(f"$app${name}$") for s in data.get("secrets") or []):
            raise self.p.error(ErrorKind.CONFLICT, f"an app password named {name!r} exists; "
                               "choose another name", address)
        secret = generate_password(32)
        hashed = crypt_secret(sha512_crypt(secret.reveal(), FAST_ROUNDS))
        self._patch(principal, address, [{"action": "addItem", "field": "secrets",
                                          "value": f"$app${name}${hashed}"}])
        return AppPassword(name, name, None, None), secret

    def revoke_app_password(self, address: str, app_id: str) -> None:
        """removeItem matches by prefix: the trailing `$` keeps `Phone` from taking `Phone2`."""
        principal, _ = self._principal(address)
        self._patch(principal, address, [{"action": "removeItem", "field": "secrets",
                                          "value": f"$app${app_id}$"}])

    def usage(self, addresses: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for address in addresses:
            _, data = self._principal(address)
            used = data.get("usedQuota")
            out[address] = used if isinstance(used, int) else None
        return out
