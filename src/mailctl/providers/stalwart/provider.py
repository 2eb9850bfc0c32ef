"""The `stalwart` provider: both API lines, chosen by asking the server.

0.16 removed the `/api/principal` REST API of 0.15 and earlier ("completely
incompatible" per its upgrade notes). The server is probed once: a JMAP session
advertising `urn:stalwart:jmap` means 0.16+, spoken here through the JMAP
objects (`x:Account`, `x:MailingList`, `x:Domain` on `POST /jmap`); an
`/api/principal` that answers means 0.15 or earlier, handed to `legacy.py`.
Per-object JMAP failures arrive inside HTTP 200 answers (`notCreated`/
`notUpdated`/`notDestroyed`) and are mapped from their stable SetError types,
never from free text.

Mailboxes are `User` accounts; every alias is a `MailingList` (it may have
several and external recipients). Aliases attached to an account
(`Account.aliases`) are left alone. Passwords are sent SHA512-crypt hashed:
whether 0.16 hashes a plaintext `secret` itself is unverified.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from mailctl.model import Alias, DomainState, Kind, Mailbox, normalise_address, normalise_domain
from mailctl.providers.base import AppPassword, Capabilities, ErrorKind, QuotaLimits, norm_addresses
from mailctl.providers.http import HttpClient, HttpProvider, HttpSettings, MailObject, decode
from mailctl.providers.stalwart.legacy import REFUSED_TODO, LegacyApi
from mailctl.secret import Secret

USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]
_SET_ERRORS = {
    "primaryKeyViolation": ErrorKind.CONFLICT, "alreadyExists": ErrorKind.CONFLICT,
    "notFound": ErrorKind.NOT_FOUND, "forbidden": ErrorKind.AUTH,
    "rateLimit": ErrorKind.RATE_LIMITED, "objectIsLinked": ErrorKind.INVALID,
    "validationFailed": ErrorKind.INVALID, "invalidProperties": ErrorKind.INVALID,
    "overQuota": ErrorKind.INVALID, "invalidPatch": ErrorKind.INVALID,
}


# Stalwart stores `maxDiskQuota` (0.15: `quota`) as a u64, but JMAP numbers are
# UnsignedInt, at most 2^53-1 (RFC 8620 section 1.3), and ManageSieve's HAVESPACE
# compares the quota as an i64 (crates/managesieve/src/op/havespace.rs).
QUOTA = QuotaLimits(
    max_bytes=2**53 - 1,
    why_max="Stalwart's API carries quotas as JMAP UnsignedInt numbers, at most 2^53-1 bytes "
        "(RFC 8620)",
)


class StalwartSettings(HttpSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    url: str  # https://mail.example.org
    api_key: str  # an API key or OAuth token (sent as Bearer), as ${env:...}/${file:...}


class StalwartProvider(HttpProvider):
    type_name = "stalwart"
    label = "Stalwart"
    secret_field = "api_key"
    capabilities: ClassVar[Capabilities] = Capabilities(
        mailboxes=True, aliases=True, forwards=False, catch_all=False, quota=True,
        display_name=True, spam=False, external_destinations=True, domains=False,
        quota_limits=QUOTA,
        # Through 0.15's /api/principal; on 0.16 each call says it is not mapped yet.
        set_password=True, app_passwords=True, usage=True,
    )
    settings_model = StalwartSettings
    auth_hint = " with the sysAccount*, sysMailingList* and sysDomainGet permissions"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._api: str | None = None
        self._legacy: LegacyApi | None = None
        self._domain_ids: dict[str, str] = {}
        self._ids: dict[tuple[Kind, str], str] = {}  # (kind, address) -> object id
        self._ids_lock = threading.Lock()
        self._seq = itertools.count()

    def make_client(self) -> HttpClient:
        key = self.secret()
        return HttpClient(
            provider=self.name, label=self.label, settings=self.hs,
            credential=self.credential_ref,
            headers={"Authorization": f"Bearer {key.reveal()}"},
            auth_hint=self.auth_hint)

    # -- JMAP plumbing -------------------------------------------------------------

    def _endpoint(self) -> str:
        """The JMAP API URL of a 0.16 server (after `_detect`)."""
        self._detect()
        assert self._api is not None
        return self._api.lstrip("/")

    def _detect(self) -> LegacyApi | None:
        """Which API line the server speaks: JMAP management (None) or 0.15's REST."""
        if self._api is not None or self._legacy is not None:
            return self._legacy
        resp = self.http.request("GET", ".well-known/jmap", ok=(404,))
        session = decode(resp, self.http) if resp.status_code == 200 else None
        caps = session.get("capabilities", {}) if isinstance(session, dict) else {}
        if "urn:stalwart:jmap" in caps:
            assert isinstance(session, dict)
            api = str(session.get("apiUrl") or "/jmap")
            self._api = api.split("://", 1)[-1].partition("/")[2] if "://" in api else api
            return None
        legacy = self.http.request("GET", "api/principal", params={"limit": "1"},
                                   ok=(404, 405))
        body = decode(legacy, self.http) if legacy.status_code == 200 else None
        if not (isinstance(body, dict) and ("data" in body or "error" in body)):
            raise self.error(
                ErrorKind.INVALID, "this server offers neither Stalwart's JMAP management "
                "API (urn:stalwart:jmap, 0.16 and later) nor its /api/principal (0.15 and "
                "earlier)", detail="check `url`: it must be the Stalwart server itself")
        self._legacy = LegacyApi(self)
        return self._legacy

    def call(self, method: str, args: dict[str, Any], *more: tuple[str, dict[str, Any]],
             obj: str | None = None, idempotent: bool = True) -> list[dict[str, Any]]:
        calls = [[method, args, "c0"]] + [[m, a, f"c{i + 1}"] for i, (m, a) in enumerate(more)]
        resp = self.http.request("POST", self._endpoint(), json={"using": USING,
                                 "methodCalls": calls}, obj=obj, idempotent=idempotent)
        body = decode(resp, self.http, obj)
        out = []
        for name, result, _ in (body or {}).get("methodResponses", []):
            if name == "error":
                kind = _SET_ERRORS.get(str(result.get("type")), ErrorKind.UNKNOWN)
                raise self.error(kind, f"Stalwart refused {method}: {result.get('type')}; "
                                 f"{REFUSED_TODO}", obj,
                                 detail=str(result.get("description") or "") or None)
            out.append(result)
        return out

    def _set(self, type_: str, args: dict[str, Any], key: str,
             idempotent: bool) -> dict[str, Any]:
        result = self.call(f"x:{type_}/set", args, obj=key, idempotent=idempotent)[0]
        for field in ("notCreated", "notUpdated", "notDestroyed"):
            for err in (result.get(field) or {}).values():
                etype = str(err.get("type"))
                props = err.get("properties")
                raise self.error(_SET_ERRORS.get(etype, ErrorKind.UNKNOWN),
                                 f"Stalwart refused it: {etype}; {REFUSED_TODO}", key,
                                 detail=str(err.get("description") or props or "") or None)
        return result

    # -- read --------------------------------------------------------------------

    def _domains(self) -> dict[str, str]:
        result = self.call("x:Domain/get", {"ids": None})[0]
        found = {normalise_domain(str(d["name"])): str(d["id"]) for d in result.get("list", [])}
        self._domain_ids = found
        return found

    def list_domains(self) -> list[str]:
        if legacy := self._detect():
            return legacy.list_domains()
        return sorted(self._domains())

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        if legacy := self._detect():
            held = legacy.list_domains()
            self.require_domains(domains, held)
            return legacy.read(domains, held)
        ids = self._domains()
        self.require_domains(domains, ids)
        return {s.name: s for s in self.map_concurrently(self._read_domain, domains)}

    def _query(self, type_: str, domain: str) -> list[dict[str, Any]]:
        dom_id = self._domain_ids[domain]
        results = self.call(f"x:{type_}/query", {"filter": {"domainId": dom_id}},
                            (f"x:{type_}/get", {"#ids": {"resultOf": "c0", "name":
                                                         f"x:{type_}/query", "path": "/ids"}}),
                            obj=domain)
        return [r for r in results[-1].get("list", []) if isinstance(r, dict)]

    def _read_domain(self, domain: str) -> DomainState:
        state = DomainState(domain)
        for row in self._query("Account", domain):
            if row.get("@type", "User") == "User":
                mb = self._mailbox(row, domain)
                state.mailboxes[mb.address] = mb
        for row in self._query("MailingList", domain):
            al = self._alias(row, domain)
            state.aliases[al.address] = al
        return state

    def _remember(self, kind: Kind, address: str, obj_id: Any) -> None:
        with self._ids_lock:
            self._ids[(kind, address)] = str(obj_id)

    def _mailbox(self, row: dict[str, Any], domain: str) -> Mailbox:
        address = normalise_address(str(row.get("emailAddress") or f"{row['name']}@{domain}"))
        self._remember(Kind.MAILBOX, address, row["id"])
        quotas = row.get("quotas") or {}
        return Mailbox(address, name=row.get("description") or None,  # null = absent
                       quota=int(quotas.get("maxDiskQuota") or 0))

    def _alias(self, row: dict[str, Any], domain: str) -> Alias:
        address = normalise_address(f"{row['name']}@{domain}")
        self._remember(Kind.ALIAS, address, row["id"])
        return Alias(address, norm_addresses(sorted(row.get("recipients") or {})))

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        if legacy := self._detect():
            return legacy.fetch(kind, key)
        local, _, domain = key.rpartition("@")
        if domain not in self._domain_ids:
            self._domains()
        type_ = "Account" if kind is Kind.MAILBOX else "MailingList"
        for row in self._query(type_, domain):
            if str(row.get("name")) == local or row.get("emailAddress") == key:
                return self._mailbox(row, domain) if kind is Kind.MAILBOX \
                    else self._alias(row, domain)
        return None

    # -- write -------------------------------------------------------------------

    def _domain_id(self, key: str) -> str:
        domain = key.rpartition("@")[2]
        if domain not in self._domain_ids:
            self._domains()
        if domain not in self._domain_ids:
            raise self.error(ErrorKind.NOT_FOUND, f"domain {domain} does not exist in "
                             "Stalwart; create it there first", key)
        return self._domain_ids[domain]

    def password(self, mb: Mailbox) -> str:
        """The secret to store: a SHA512-crypt hash. 0.15 stores secrets verbatim (a
        plaintext would stay plaintext) and whether 0.16 hashes one is unverified."""
        if mb.password_hash:
            return mb.password_hash
        if mb.password is None:
            raise self.error(ErrorKind.INVALID, "no password to set", mb.address)
        from mailctl.providers.dms.hashing import DEFAULT_ROUNDS, FAST_ROUNDS, sha512_crypt

        rounds = FAST_ROUNDS if mb.password.source == "generated" else DEFAULT_ROUNDS
        return sha512_crypt(mb.password.reveal(), rounds).removeprefix("{SHA512-CRYPT}")

    def create(self, obj: MailObject) -> None:
        if legacy := self._detect():
            legacy.create(obj)
            return
        local = obj.key.rpartition("@")[0]
        dom_id = self._domain_id(obj.key)
        cid = f"n{next(self._seq)}"
        if isinstance(obj, Mailbox):
            new: dict[str, Any] = {
                "@type": "User", "name": local, "domainId": dom_id,
                "credentials": {"0": {"@type": "Password", "secret": self.password(obj)}},
                "aliases": {}, "memberGroupIds": {}, "roles": {"@type": "User"},
                "permissions": {"@type": "Inherit"},
                "encryptionAtRest": {"@type": "Disabled"},
                "quotas": {"maxDiskQuota": obj.quota} if obj.quota else {}}
            if obj.name is not None:
                new["description"] = obj.name
            type_ = "Account"
        elif isinstance(obj, Alias):
            new = {"name": local, "domainId": dom_id,
                   "recipients": dict.fromkeys(obj.destinations, True)}
            type_ = "MailingList"
        else:
            raise self.error(ErrorKind.INVALID, "Stalwart forwards are not supported", obj.key)
        result = self._set(type_, {"create": {cid: new}}, obj.key, idempotent=False)
        created = (result.get("created") or {}).get(cid) or {}
        if "id" in created:
            self._remember(obj.kind, obj.key, created["id"])

    def _id(self, kind: Kind, key: str) -> str:
        with self._ids_lock:
            found = self._ids.get((kind, key))
        if found is None and self.fetch(kind, key) is not None:
            with self._ids_lock:
                found = self._ids.get((kind, key))
        if found is None:
            raise self.error(ErrorKind.NOT_FOUND, "not found in Stalwart", key)
        return found

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        if legacy := self._detect():
            legacy.update(obj, fields)
            return
        patch: dict[str, Any] = {}
        if isinstance(obj, Mailbox):
            if "name" in fields:
                patch["description"] = fields["name"]
            if "quota" in fields:
                patch["quotas/maxDiskQuota"] = int(fields["quota"]) or None
            type_ = "Account"
        elif isinstance(obj, Alias):
            patch["recipients"] = dict.fromkeys(obj.destinations, True)
            type_ = "MailingList"
        else:
            raise self.error(ErrorKind.INVALID, f"Stalwart {obj.kind.value}s are not "
                             "supported", obj.key)
        if patch:
            self._set(type_, {"update": {self._id(obj.kind, obj.key): patch}}, obj.key,
                      idempotent=True)

    def delete(self, kind: Kind, key: str) -> None:
        if legacy := self._detect():
            legacy.delete(kind, key)
            return
        type_ = "Account" if kind is Kind.MAILBOX else "MailingList"
        self._set(type_, {"destroy": [self._id(kind, key)]}, key, idempotent=True)

    # -- self-service: 0.15's principal secrets (legacy.py) --------------------------------

    def _self_service(self, address: str) -> LegacyApi:
        legacy = self._detect()
        if legacy is None:
            raise self.error(ErrorKind.INVALID, "passwords and app passwords on Stalwart 0.16 "
                             "(its x:AppPassword objects) are not mapped by mailctl yet",
                             address, detail="use Stalwart's own web admin for now")
        return legacy

    def set_password(self, address: str, password: Secret) -> None:
        self._self_service(address).set_password(address, password)

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        return self._self_service(address).list_app_passwords(address)

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        return self._self_service(address).add_app_password(address, name)

    def revoke_app_password(self, address: str, app_id: str) -> None:
        self._self_service(address).revoke_app_password(address, app_id)

    def usage(self, addresses: Sequence[str]) -> dict[str, int | None]:
        legacy = self._detect()
        return legacy.usage(addresses) if legacy else dict.fromkeys(addresses)
