"""api.migadu.com/v1, as documented and as its well-used clients observe it.

Faithful where clients trip: HTTP Basic with the admin email and an API key;
every failure a 400 `{"error": ...}` (duplicates included), 404 for missing
objects; a sliding-window rate limit answered with 403 "Request forbidden by
administrative rules"; write-only passwords; `domain_name` (not `domain`);
the `address_aliases` wrapper; volatile `storage_usage`/`last_login_at`/
`changed_at` that change between reads; partial PUT; destinations accepted as
an array or a comma-separated string and returned as an array. Assumed where
unverified: an empty mailbox name is refused, and a mailbox and an alias may
not share an address.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections import deque
from typing import Any

from tests.emulators.base import Emulator, Reply, Request

MAILBOX_FIELDS = {"name", "is_internal", "may_send", "may_receive", "may_access_imap",
                  "may_access_pop3", "may_access_managesieve", "spam_action",
                  "spam_aggressiveness", "sender_denylist", "sender_allowlist",
                  "recipient_denylist", "password_recovery_email", "footer_active",
                  "footer_plain_body", "footer_html_body", "autorespond_active",
                  "autorespond_subject", "autorespond_body", "autorespond_expires_on"}
SPAM_ACTIONS = {"folder", "subject", "none", "drop"}
SPAM_LEVELS = {"default", "most_permissive", "more_permissive", "permissive", "strict",
               "stricter", "strictest"}
FORBIDDEN = {"error": "Request forbidden by administrative rules"}


def bad(message: str) -> Reply:
    return Reply(400, {"error": message})


class MigaduEmulator(Emulator):
    def __init__(self, user: str, api_key: str, limit: int = 60, window: float = 120.0,
                 latency: float = 0.0) -> None:
        super().__init__(latency)
        self.user, self.api_key = user, api_key
        self.limit, self.window = limit, window
        self.arrivals: deque[float] = deque()
        self.trips = 0  # requests answered 403 for exceeding the limit
        self.delete_answers_500 = False  # [report]: DELETE that succeeds but says 500
        self.domains: dict[str, dict[str, Any]] = {}
        self.mailboxes: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}
        self.aliases: dict[str, dict[str, Any]] = {}
        self._tick = itertools.count()

    def add_domain(self, name: str) -> None:
        self.domains[name] = {"name": name, "state": "active", "description": "",
                              "can_send": True, "can_receive": True}

    def add_mailbox(self, address: str, name: str, password: str = "seeded-password",
                    **fields: Any) -> None:
        local, _, domain = address.partition("@")
        self.mailboxes[address] = {
            "local_part": local, "domain_name": domain, "address": address, "name": name,
            "is_internal": False, "may_send": True, "may_receive": True,
            "may_access_imap": True, "may_access_pop3": True, "may_access_managesieve": True,
            "spam_action": "folder", "spam_aggressiveness": "default",
            "sender_denylist": [], "sender_allowlist": [], "recipient_denylist": [],
            "password_recovery_email": None, "autorespond_active": False,
            "autorespond_subject": "Autoreply: {{subject}}", "autorespond_body": "",
            "autorespond_expires_on": None, "footer_active": False,
            "footer_plain_body": None, "footer_html_body": None, "expireable": False,
            "expires_on": None, "remove_upon_expiry": False, "delegations": [],
            "identities": [], "forwardings": [], **fields}
        self.passwords[address] = password

    def add_alias(self, address: str, destinations: list[str]) -> None:
        local, _, domain = address.partition("@")
        self.aliases[address] = {"local_part": local, "domain_name": domain,
                                 "address": address, "destinations": destinations,
                                 "is_internal": False, "expireable": False,
                                 "expires_on": None, "remove_upon_expiry": False}

    # -- HTTP ---------------------------------------------------------------------

    def arrive(self, req: Request) -> Reply | None:
        now = time.monotonic()
        while self.arrivals and self.arrivals[0] <= now - self.window:
            self.arrivals.popleft()
        self.arrivals.append(now)  # refused requests count too
        if len(self.arrivals) > self.limit:
            self.trips += 1
            return Reply(403, FORBIDDEN)
        auth = req.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.user}:{self.api_key}".encode()).decode()
        if auth != f"Basic {expected}":
            return Reply(401, {"error": "Unauthorized"})
        return None

    def handle(self, req: Request) -> Reply:
        p = req.path.rstrip("/").split("/")
        if p == ["domains"] and req.method == "GET":
            return Reply(200, {"domains": [self.domains[d] for d in sorted(self.domains)]})
        if len(p) < 2 or p[0] != "domains" or p[1] not in self.domains:
            return Reply(404, {"error": "Not Found"})
        domain = p[1]
        if len(p) == 2:
            return Reply(200, self.domains[domain]) if req.method == "GET" else bad("invalid")
        coll = p[2]
        if coll not in ("mailboxes", "aliases"):
            return Reply(404, {"error": "Not Found"})
        try:
            body = req.json() or {}
        except ValueError:
            return bad("invalid JSON")
        if len(p) == 3:
            if req.method == "GET":
                return self._list(domain, coll)
            if req.method == "POST":
                return self._create(domain, coll, body)
            return Reply(404, {"error": "Not Found"})
        return self._one(req.method, f"{p[3]}@{domain}", coll, body)

    def _view_mailbox(self, m: dict[str, Any]) -> dict[str, Any]:
        n = next(self._tick)  # volatile, read-only fields differ between reads
        return {**m, "storage_usage": round(0.01 * n, 2), "changed_at": "07/06/23",
                "last_login_at": f"17:{n % 60:02}", "is_active": True}

    def _list(self, domain: str, coll: str) -> Reply:
        if coll == "mailboxes":
            rows = [self._view_mailbox(m) for m in self.mailboxes.values()
                    if m["domain_name"] == domain]
            return Reply(200, {"mailboxes": rows})
        rows = [a for a in self.aliases.values() if a["domain_name"] == domain]
        return Reply(200, {"address_aliases": rows})

    @staticmethod
    def _dests(value: Any) -> list[str] | None:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not value:
            return None
        return [str(d).strip().lower() for d in value if str(d).strip()]

    def _check_mailbox(self, body: dict[str, Any]) -> Reply | None:
        if "spam_action" in body and body["spam_action"] not in SPAM_ACTIONS:
            return bad("spam_action is invalid")
        if "spam_aggressiveness" in body and body["spam_aggressiveness"] not in SPAM_LEVELS:
            return bad("spam_aggressiveness is invalid")
        if "name" in body and not str(body["name"]).strip():
            return bad("name can't be blank")
        return None

    def _create(self, domain: str, coll: str, body: dict[str, Any]) -> Reply:
        local = str(body.get("local_part", "")).strip().lower()
        if not local:
            return bad("local_part can't be blank")
        address = f"{local}@{domain}"
        if address in self.mailboxes or address in self.aliases:
            return bad("address has already been taken")
        if coll == "mailboxes":
            problem = self._check_mailbox(body)
            if problem is not None or "name" not in body:
                return problem or bad("name can't be blank")
            method = body.get("password_method", "password")
            if method == "password" and not body.get("password"):
                return bad("password can't be blank")
            if method == "invitation" and not body.get("password_recovery_email"):
                return bad("password_recovery_email can't be blank")
            fields = {k: v for k, v in body.items() if k in MAILBOX_FIELDS}
            self.add_mailbox(address, password=str(body.get("password", "")), **fields)
            return Reply(200, self._view_mailbox(self.mailboxes[address]))
        dests = self._dests(body.get("destinations"))
        if dests is None:
            return bad("destinations can't be blank")
        self.add_alias(address, dests)
        return Reply(200, self.aliases[address])

    def _one(self, method: str, address: str, coll: str, body: dict[str, Any]) -> Reply:
        store = self.mailboxes if coll == "mailboxes" else self.aliases
        obj = store.get(address)
        if obj is None:
            return Reply(404, {"error": "Not Found"})
        view = self._view_mailbox if coll == "mailboxes" else dict
        if method == "GET":
            return Reply(200, view(obj))
        if method == "DELETE":
            del store[address]
            self.passwords.pop(address, None)
            if self.delete_answers_500:
                return Reply(500, "Internal Server Error")
            return Reply(200, view(obj))
        if method == "PUT":
            if coll == "mailboxes":
                problem = self._check_mailbox(body)
                if problem is not None:
                    return problem
                obj.update({k: v for k, v in body.items() if k in MAILBOX_FIELDS})
                if body.get("password"):
                    self.passwords[address] = str(body["password"])
            elif "destinations" in body:
                dests = self._dests(body["destinations"])
                if dests is None:
                    return bad("destinations can't be blank")
                obj["destinations"] = dests
            return Reply(200, view(obj))
        return Reply(404, {"error": "Not Found"})
