"""Stalwart 0.16 JMAP management (`POST /jmap`, `x:` objects), or a 0.15 server.

Faithful where clients trip: the session at /.well-known/jmap advertising
`urn:stalwart:jmap`; Bearer auth with 401 `application/problem+json`;
per-object failures inside HTTP 200 (`notCreated`/`notUpdated`/
`notDestroyed` with SetError types such as `primaryKeyViolation`);
method-level `error` responses; `#ids` back-references; sets as JMAP maps;
unset nullable fields returned as `null`; JSON pointer patches on update.

With `legacy=True` it is a 0.15 server: a JMAP session without
`urn:stalwart:jmap`, and `/api/principal` with its quirks — every failure an
HTTP 200 `{"error": ...}` (`fieldAlreadyExists` on a duplicate name or email,
`notFound`, `fieldMissing`), `{"data": ...}` on success, paging by `page`/
`limit` capped at `max_page`, PATCH as a list of set/addItem/removeItem
operations, secrets stored verbatim, and addresses accepted only in domains
that exist as `domain` principals.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.emulators.base import Emulator, Reply, Request

REQUIRED_USER = ("name", "domainId", "credentials", "roles", "permissions",
                 "encryptionAtRest")


class MethodError(Exception):
    """A JMAP method-level error (`["error", {"type": ...}, id]`)."""


class StalwartEmulator(Emulator):
    def __init__(self, token: str, legacy: bool = False, latency: float = 0.0) -> None:
        super().__init__(latency)
        self.token = token
        self.legacy = legacy
        self.domains: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.principals: dict[str, dict[str, Any]] = {}  # legacy: name -> principal
        self.max_page = 1000  # legacy: the server's cap on `limit`

    def add_domain(self, name: str) -> str:
        if self.legacy:
            self.add_principal({"type": "domain", "name": name})
            return name
        i = f"d{next(self._ids)}"
        self.domains[i] = {"id": i, "name": name, "isEnabled": True, "description": None}
        return i

    def domain_id(self, name: str) -> str:
        return next(i for i, d in self.domains.items() if d["name"] == name)

    def account(self, address: str) -> dict[str, Any] | None:
        return next((a for a in self.accounts.values() if a["emailAddress"] == address), None)

    def mailing_list(self, address: str) -> dict[str, Any] | None:
        local, _, domain = address.partition("@")
        return next((m for m in self.lists.values()
                     if m["name"] == local and self.domains[m["domainId"]]["name"] == domain),
                    None)

    # -- HTTP ---------------------------------------------------------------------

    def arrive(self, req: Request) -> Reply | None:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"type": "about:blank", "title": "Unauthorized", "status": 401,
                               "detail": "You have to authenticate first."},
                         {"Content-Type": "application/problem+json",
                          "WWW-Authenticate": 'Bearer realm="Stalwart"'})
        return None

    def handle(self, req: Request) -> Reply:
        if self.legacy:
            return self._legacy(req)
        if req.path == ".well-known/jmap" and req.method == "GET":
            return Reply(200, {"capabilities": {"urn:ietf:params:jmap:core": {},
                                                "urn:stalwart:jmap": {}},
                               "apiUrl": self.url + "/jmap", "accounts": {}})
        if req.path == "jmap" and req.method == "POST":
            if "application/json" not in req.headers.get("content-type", ""):
                return Reply(400, {"type": "urn:ietf:params:jmap:error:notJSON", "status": 400})
            body = req.json()
            out: list[list[Any]] = []
            results: dict[str, Any] = {}
            for name, args, cid in body.get("methodCalls", []):
                try:
                    res = self._method(name, self._resolve(args, results))
                except MethodError as exc:
                    out.append(["error", {"type": str(exc)}, cid])
                    continue
                results[cid] = (name, res)
                out.append([name, res, cid])
            return Reply(200, {"methodResponses": out, "sessionState": "s1"})
        return Reply(404, {"type": "about:blank", "status": 404})

    @staticmethod
    def _resolve(args: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
        out = dict(args)
        for k, v in args.items():
            if k.startswith("#"):
                _, res = results[v["resultOf"]]
                out[k[1:]] = res.get(v["path"].strip("/"))
                del out[k]
        return out

    def _store(self, type_: str) -> dict[str, dict[str, Any]] | None:
        return {"x:Account": self.accounts, "x:MailingList": self.lists,
                "x:Domain": self.domains}.get(type_)

    def _method(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        type_, _, verb = name.partition("/")
        store = self._store(type_)
        if store is None:
            raise MethodError("unknownMethod")
        if verb == "get":
            ids = args.get("ids")
            rows = [store[i] for i in (ids if ids is not None else store) if i in store]
            missing = [i for i in ids or [] if i not in store]
            return {"list": rows, "notFound": missing, "state": "s1"}
        if verb == "query":
            flt = args.get("filter") or {}
            ids = [i for i, o in store.items()
                   if all(o.get(k) == v for k, v in flt.items())]
            return {"ids": ids, "position": 0, "total": len(ids)}
        if verb == "set":
            return self._set(type_, store, args)
        raise MethodError("unknownMethod")

    def _set(self, type_: str, store: dict[str, dict[str, Any]],
             args: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        updated: dict[str, None] = {}
        not_updated: dict[str, Any] = {}
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for cid, new in (args.get("create") or {}).items():
            err = self._check_new(type_, store, new)
            if err:
                not_created[cid] = err
                continue
            i = f"{'a' if type_ == 'x:Account' else 'l'}{next(self._ids)}"
            obj = {"id": i, "description": None, **new}
            if type_ == "x:Account":
                dom = self.domains[new["domainId"]]["name"]
                obj.update(emailAddress=f"{new['name']}@{dom}", usedDiskQuota=0,
                           createdAt="2026-01-01T00:00:00Z")
            store[i] = obj
            created[cid] = {"id": i}
        for i, patch in (args.get("update") or {}).items():
            if i not in store:
                not_updated[i] = {"type": "notFound"}
                continue
            for path, value in patch.items():
                head, _, tail = path.partition("/")
                if tail:
                    sub = store[i].setdefault(head, {})
                    if value is None:
                        sub.pop(tail, None)
                    else:
                        sub[tail] = value
                else:
                    store[i][head] = value
            updated[i] = None
        for i in args.get("destroy") or []:
            if i not in store:
                not_destroyed[i] = {"type": "notFound"}
            elif type_ == "x:Domain" and any(a["domainId"] == i for a in self.accounts.values()):
                not_destroyed[i] = {"type": "objectIsLinked"}
            else:
                del store[i]
                destroyed.append(i)
        return {"created": created or None, "notCreated": not_created or None,
                "updated": updated or None, "notUpdated": not_updated or None,
                "destroyed": destroyed or None, "notDestroyed": not_destroyed or None,
                "newState": "s2"}

    def _check_new(self, type_: str, store: dict[str, dict[str, Any]],
                   new: dict[str, Any]) -> dict[str, Any] | None:
        required = REQUIRED_USER if type_ == "x:Account" else ("name", "domainId")
        missing = [f for f in required if f not in new]
        if missing:
            return {"type": "invalidProperties", "properties": missing}
        if new["domainId"] not in self.domains:
            return {"type": "invalidProperties", "properties": ["domainId"],
                    "description": "Domain does not exist"}
        for o in (*self.accounts.values(), *self.lists.values()):
            if o["name"] == new["name"] and o["domainId"] == new["domainId"]:
                return {"type": "primaryKeyViolation", "description": "name already in use"}
        if type_ == "x:MailingList" and not isinstance(new.get("recipients"), dict):
            return {"type": "invalidProperties", "properties": ["recipients"]}
        return None

    # -- 0.15: /api/principal -------------------------------------------------------

    def add_principal(self, p: dict[str, Any]) -> dict[str, Any]:
        obj = {"id": next(self._ids), "description": None, "emails": [], "secrets": [],
               "quota": 0, "members": [], "externalMembers": [], "memberOf": [],
               "roles": [], **p}
        self.principals[obj["name"]] = obj
        return obj

    def _legacy(self, req: Request) -> Reply:
        if req.path == ".well-known/jmap" and req.method == "GET":  # mail JMAP only
            return Reply(200, {"capabilities": {"urn:ietf:params:jmap:core": {},
                                                "urn:ietf:params:jmap:mail": {}},
                               "apiUrl": self.url + "/jmap", "accounts": {}})
        if req.path == "api/principal":
            if req.method == "GET":
                return self._legacy_list(req)
            if req.method == "POST":
                return Reply(200, self._legacy_create(req.json() or {}))
        elif req.path.startswith("api/principal/"):
            name = req.path.removeprefix("api/principal/")
            obj = self.principals.get(name)
            if obj is None:
                return Reply(200, {"error": "notFound", "item": name})
            if req.method == "GET":
                return Reply(200, {"data": obj})
            if req.method == "DELETE":
                del self.principals[name]
                return Reply(200, {"data": None})
            if req.method == "PATCH":
                for op in req.json() or []:
                    field, value = op["field"], op.get("value")
                    if field == "secrets" and op["action"] in ("addItem", "removeItem"):
                        _patch_secrets(obj, op["action"], str(value or ""))
                    elif op["action"] == "set":
                        obj[field] = value
                    elif op["action"] == "addItem":
                        obj.setdefault(field, []).append(value)
                    elif op["action"] == "removeItem" and value in obj.get(field, []):
                        obj[field].remove(value)
                return Reply(200, {"data": None})
        return Reply(404, {"error": "notFound"})

    def _legacy_list(self, req: Request) -> Reply:
        types = set(",".join(req.query.get("types", req.query.get("type", [""]))).split(","))
        rows = [p for p in self.principals.values() if p["type"] in types or types == {""}]
        page = int(req.query.get("page", ["0"])[0])
        limit = min(int(req.query.get("limit", ["0"])[0]) or len(rows), self.max_page)
        items = rows[(page - 1) * limit:page * limit] if page > 0 else rows
        return Reply(200, {"data": {"items": items, "total": len(rows)}})

    def _legacy_create(self, new: dict[str, Any]) -> dict[str, Any]:
        if not new.get("name"):
            return {"error": "fieldMissing", "field": "name"}
        if new["name"] in self.principals:
            return {"error": "fieldAlreadyExists", "field": "name", "value": new["name"]}
        for email in new.get("emails") or []:
            domain = email.rpartition("@")[2]
            d = self.principals.get(domain)
            if d is None or d["type"] != "domain":
                return {"error": "notFound", "item": domain}
            if any(email in p["emails"] for p in self.principals.values()):
                return {"error": "fieldAlreadyExists", "field": "emails", "value": email}
        return {"data": self.add_principal(new)["id"]}

    def principal_by_email(self, address: str) -> dict[str, Any] | None:
        return next((p for p in self.principals.values() if address in p["emails"]), None)

    def login(self, address: str, password: str) -> bool:
        """What 0.15 checks (directory/core/secret.rs): the password, or an app password
        `$app$NAME$HASH` whose hash matches."""
        from mailctl.providers.dms.hashing import verify

        p = self.principal_by_email(address)
        if p is None:
            return False
        for secret in p.get("secrets") or []:
            if secret.startswith("otpauth://"):
                continue
            if secret.startswith("$app$"):
                secret = secret[5:].partition("$")[2]
            if verify(password, secret) or secret == password:
                return True
        return False


def _patch_secrets(obj: dict[str, Any], action: str, value: str) -> None:
    """0.15.5 manage.rs: addItem replaces the password (app passwords and TOTP kept) or
    adds an app password; removeItem of `$app$NAME` removes by prefix, of "" every app
    password and TOTP (not the password)."""
    secrets: list[str] = obj.setdefault("secrets", [])
    is_app = value.startswith("$app$")
    is_otp = value.startswith("otpauth://")
    if action == "addItem":
        if value in secrets:
            return
        if not is_app:
            keep_app_or_otp = (lambda s: s.startswith("$app$")) if is_otp else (
                lambda s: s.startswith("$app$") or s.startswith("otpauth://"))
            if is_otp:
                secrets[:] = [s for s in secrets if not s.startswith("otpauth://")]
            else:
                secrets[:] = [s for s in secrets if keep_app_or_otp(s)]
        secrets.append(value)
        return
    if is_app or is_otp:
        secrets[:] = [s for s in secrets if not (s == value or (
            (s.startswith("$app$") or s.startswith("otpauth://")) and s.startswith(value)))]
    elif value:
        secrets[:] = [s for s in secrets if s != value]
    else:
        secrets[:] = [s for s in secrets if not (s.startswith("$app$")
                                                 or s.startswith("otpauth://"))]
