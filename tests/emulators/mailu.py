"""Mailu's `/api/v1` (flask-restx), as core/admin/mailu/api/v1/*.py behave.

Faithful where clients trip: `Authorization: <token>` with an optional
`Bearer ` prefix, 401 without it, 403 for a wrong one and 429 once an IP has
failed too often; 500 when API_TOKEN is not configured; `{"code", "message"}`
bodies with real statuses (400 validation, 404 missing, 409 duplicate);
payload validation (unknown or mis-typed fields are a 400); alias
destinations that must be existing users; plaintext `raw_password` in, the
hash out in `password`.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import Any

from tests.emulators.base import Emulator, Reply, Request

USER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "email": str, "raw_password": str, "comment": str, "quota_bytes": int,
    "global_admin": bool, "enabled": bool, "change_pw_next_login": bool, "enable_imap": bool,
    "enable_pop": bool, "allow_spoofing": bool, "forward_enabled": bool,
    "forward_destination": list, "forward_keep": bool, "reply_enabled": bool,
    "reply_subject": str, "reply_body": str, "displayed_name": str, "spam_enabled": bool,
    "spam_mark_as_read": bool, "spam_threshold": int}
ALIAS_FIELDS: dict[str, type | tuple[type, ...]] = {
    "email": str, "destination": list, "comment": str, "wildcard": bool}
DOMAIN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "comment": str, "max_users": int, "max_aliases": int,
    "max_quota_bytes": int, "signup_enabled": bool, "alternatives": list}


def msg(code: int, message: str) -> Reply:
    return Reply(code, {"code": code, "message": message})


def invalid(payload: Any, fields: dict[str, Any]) -> Reply | None:
    if not isinstance(payload, dict):
        return Reply(400, {"errors": {"": "payload must be an object"},
                           "message": "Input payload validation failed"})
    errors = {}
    for k, v in payload.items():
        want = fields.get(k)
        if want is None:
            errors[k] = "Additional properties are not allowed"
        elif not isinstance(v, want) or (want is int and isinstance(v, bool)):
            errors[k] = f"{v!r} is not of type '{getattr(want, '__name__', want)}'"
    if errors:
        return Reply(400, {"errors": errors, "message": "Input payload validation failed"})
    return None


class MailuEmulator(Emulator):
    prefix = "api/v1"

    def __init__(self, token: str | None, latency: float = 0.0, max_failures: int = 3) -> None:
        super().__init__(latency)
        self.token = token  # None: API_TOKEN not configured
        self.max_failures = max_failures
        self.failures = 0
        self.domains: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}
        self.aliases: dict[str, dict[str, Any]] = {}
        self.tokens: dict[int, dict[str, Any]] = {}  # authentication tokens (app passwords)
        self._token_ids = 0

    def add_domain(self, name: str, max_users: int = -1, max_aliases: int = -1) -> None:
        self.domains[name] = {"name": name, "comment": "", "max_users": max_users,
                              "max_aliases": max_aliases, "max_quota_bytes": 0,
                              "signup_enabled": False, "alternatives": []}

    def add_user(self, email: str, password: str = "seeded-password", **fields: Any) -> None:
        self.users[email] = {
            "email": email, "comment": "", "quota_bytes": 1_000_000_000, "global_admin": False,
            "enabled": True, "change_pw_next_login": False, "enable_imap": True,
            "enable_pop": True, "allow_spoofing": False, "forward_enabled": False,
            "forward_destination": [], "forward_keep": True, "reply_enabled": False,
            "displayed_name": "", "spam_enabled": True, "spam_mark_as_read": False,
            "spam_threshold": 80, **fields}
        self.passwords[email] = password

    # -- HTTP ---------------------------------------------------------------------

    def arrive(self, req: Request) -> Reply | None:
        if self.token is None:
            return msg(500, "API_TOKEN is not configured")
        if self.failures >= self.max_failures:
            return msg(429, "Too many attempts from your IP (rate-limit)")
        header = req.headers.get("authorization")
        if header is None:
            return msg(401, "Authorization header missing")
        value = header.removeprefix("Bearer ")
        if value != self.token:
            self.failures += 1
            return msg(403, "Invalid authorization header")
        return None

    def handle(self, req: Request) -> Reply:
        p = req.path.rstrip("/").split("/")
        try:
            data = req.json()
        except ValueError:
            return msg(400, "The browser (or proxy) sent a request that this server could "
                            "not understand.")
        m = req.method
        if p[0] == "domain":
            return self._domain(m, p[1:], data)
        if p[0] == "user":
            return self._user(m, p[1] if len(p) > 1 else None, data)
        if p[0] == "token":
            return self._token(m, p[1:], data)
        if p[0] == "alias":
            if len(p) == 3 and p[1] == "destination" and m == "GET":
                d = p[2]
                if d not in self.domains:
                    return msg(404, f"Domain {d} cannot be found")
                return Reply(200, [a for a in self.aliases.values()
                                   if a["email"].endswith("@" + d)])
            return self._alias(m, p[1] if len(p) > 1 else None, data)
        return msg(404, "not found")

    def _view_user(self, u: dict[str, Any]) -> dict[str, Any]:
        digest = hashlib.sha256(self.passwords.get(u["email"], "").encode()).hexdigest()
        return {"quota_bytes_used": 0, **u,
                "password": f"$bcrypt-sha256$v=2,t=2b,r=12${digest[:40]}"}

    # -- tokens (api/v1/token.py) ----------------------------------------------------

    def _token_view(self, t: dict[str, Any], created_only: bool = False) -> dict[str, Any]:
        out = {"id": t["id"], "email": t["email"], "comment": t["comment"],
               "AuthorizedIP": t["ip"], "Created": t["created"]}
        if not created_only:
            out["Last edit"] = str(t["updated"])
        return out

    def _new_token(self, email: str, data: Any) -> Reply:
        if not isinstance(data, dict):
            data = {}
        bad = invalid(data, {"comment": str, "AuthorizedIP": list, "email": str})
        if bad:
            return bad
        self._token_ids += 1
        secret = secrets.token_hex(16)  # pwd.genword(entropy=128, length=32, charset="hex")
        t = {"id": self._token_ids, "email": email, "comment": data.get("comment"),
             "ip": data.get("AuthorizedIP") or [], "created": str(datetime.date.today()),
             "updated": None, "secret": secret}
        self.tokens[t["id"]] = t
        return Reply(200, {**self._token_view(t, created_only=True), "token": secret})

    def _token(self, m: str, rest: list[str], data: Any) -> Reply:
        if not rest:
            if m == "GET":
                return Reply(200, [self._token_view(t) for t in self.tokens.values()])
            if m == "POST":
                email = str((data or {}).get("email", ""))
                if email not in self.users:
                    return msg(404, f"User {email} cannot be found")
                return self._new_token(email, data)
        if rest[0] == "user" and len(rest) == 2:
            email = rest[1]
            if "@" not in email:
                return msg(400, f"Provided email address {email} is not a valid email address")
            if email not in self.users:
                return msg(404, f"User {email} cannot be found")
            if m == "GET":
                return Reply(200, [self._token_view(t) for t in self.tokens.values()
                                   if t["email"] == email])
            if m == "POST":
                return self._new_token(email, data)
            return msg(405, "The method is not allowed for the requested URL.")
        t = self.tokens.get(int(rest[0])) if rest[0].isdigit() else None
        if t is None:
            return msg(404, f"Record cannot be found for id {rest[0]} or invalid id provided")
        if m == "GET":
            return Reply(200, self._token_view(t))
        if m == "DELETE":
            del self.tokens[t["id"]]
            return msg(200, f"Token with id {t['id']} has been deleted")
        return msg(405, "The method is not allowed for the requested URL.")

    def login(self, email: str, password: str) -> bool:
        """What Mailu's auth answers: an enabled user's password, or one of its tokens."""
        u = self.users.get(email)
        if u is None or not u.get("enabled", True):
            return False
        return self.passwords.get(email) == password or any(
            t["email"] == email and t["secret"] == password for t in self.tokens.values())

    def _domain(self, m: str, rest: list[str], data: Any) -> Reply:
        if not rest:
            if m == "GET":
                return Reply(200, list(self.domains.values()))
            if m == "POST":
                bad = invalid(data, DOMAIN_FIELDS)
                if bad:
                    return bad
                name = str(data.get("name", "")).lower()
                if name in self.domains:
                    return msg(409, f"Domain {name} already exists")
                self.add_domain(name, data.get("max_users", -1), data.get("max_aliases", -1))
                return msg(200, f"Domain {name} has been created")
        d = rest[0]
        if d not in self.domains:
            return msg(404, f"Domain {d} cannot be found")
        if len(rest) == 2 and rest[1] == "users" and m == "GET":
            return Reply(200, [self._view_user(u) for u in self.users.values()
                               if u["email"].endswith("@" + d)])
        if m == "GET":
            return Reply(200, self.domains[d])
        return msg(405, "The method is not allowed for the requested URL.")

    def _user(self, m: str, email: str | None, data: Any) -> Reply:
        if email is None:
            if m == "GET":
                return Reply(200, [self._view_user(u) for u in self.users.values()])
            bad = invalid(data, USER_FIELDS)
            if bad:
                return bad
            if "email" not in data or "raw_password" not in data:
                return Reply(400, {"errors": {"raw_password": "'raw_password' is a required "
                                              "property"}, "message": "Input payload "
                                   "validation failed"})
            email = str(data["email"]).lower()
            domain = email.rpartition("@")[2]
            if domain not in self.domains:
                return msg(404, f"Domain {domain} does not exist")
            if email in self.users:
                return msg(409, f"User {email} already exists")
            limit = self.domains[domain]["max_users"]
            if limit != -1 and sum(1 for u in self.users if u.endswith("@" + domain)) >= limit:
                return msg(409, f"Too many users for domain {domain}")
            fields = {k: v for k, v in data.items() if k not in ("email", "raw_password")}
            self.add_user(email, str(data["raw_password"]), **fields)
            return msg(200, f"User {email} has been created")
        u = self.users.get(email)
        if u is None:
            return msg(404, f"User {email} cannot be found")
        if m == "GET":
            return Reply(200, self._view_user(u))
        if m == "DELETE":
            del self.users[email]
            return msg(200, f"User {email} has been deleted")
        if m == "PATCH":
            bad = invalid(data, {k: v for k, v in USER_FIELDS.items() if k != "email"})
            if bad:
                return bad
            if "raw_password" in data:
                self.passwords[email] = str(data.pop("raw_password"))
            u.update(data)
            return msg(200, f"User {email} has been updated")
        return msg(405, "The method is not allowed for the requested URL.")

    def _alias(self, m: str, email: str | None, data: Any) -> Reply:
        if email is None:
            if m == "GET":
                return Reply(200, list(self.aliases.values()))
            bad = invalid(data, ALIAS_FIELDS)
            if bad:
                return bad
            email = str(data.get("email", "")).lower()
            domain = email.rpartition("@")[2]
            if domain not in self.domains:
                return msg(404, f"Domain {domain} does not exist ({email})")
            for dest in data.get("destination", []):
                if dest not in self.users:
                    return msg(404, f"Provided destination email address {dest} does not "
                                    "exist")
            if email in self.aliases:
                return msg(409, f"Duplicate alias {email}")
            self.aliases[email] = {"email": email, "destination": list(data["destination"]),
                                   "comment": data.get("comment", ""),
                                   "wildcard": data.get("wildcard", False)}
            return msg(200, f"Alias {email} has been created")
        a = self.aliases.get(email)
        if a is None:
            return msg(404, f"Alias {email} cannot be found")
        if m == "GET":
            return Reply(200, a)
        if m == "DELETE":
            del self.aliases[email]
            return msg(200, f"Alias {email} has been deleted")
        if m == "PATCH":
            bad = invalid(data, {k: v for k, v in ALIAS_FIELDS.items() if k != "email"})
            if bad:
                return bad
            for dest in data.get("destination", []):
                if dest not in self.users:
                    return msg(404, f"Provided destination email address {dest} does not "
                                    "exist")
            a.update(data)
            return msg(200, f"Alias {email} has been updated")
        return msg(405, "The method is not allowed for the requested URL.")
