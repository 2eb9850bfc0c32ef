"""api.migadu.com/v1, as documented and as its well-used clients observe it.

Faithful where clients trip: HTTP Basic with the admin email and an API key;
every failure a 400 `{"error": ...}` (duplicates included), 404 for missing
objects; a sliding-window rate limit answered with 403 "Request forbidden by
administrative rules"; write-only passwords; `domain_name` (not `domain`);
the `address_aliases` wrapper; volatile `storage_usage`/`last_login_at`/
`changed_at` that change between reads; partial PUT; destinations accepted as
an array or a comma-separated string and returned as an array. Identities and
forwardings embedded in mailbox rows and under `mailboxes/{lp}/...`; write-only
`password_use`; forwardings that wait for their target's confirmation
(`confirm()`); rewrites with `order_num`. Assumed where unverified: an empty
mailbox name is refused; a mailbox, an alias and an identity may not share an
address; the autoresponder (documented read/update) is ignored on create;
rewrite destinations must be a comma-separated string (metio re-encodes arrays
for rewrites only). A new mailbox holds Migadu's template autoreply (inactive).
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
# Documented "read/update": a create silently ignores them.
UPDATE_ONLY = {"autorespond_active", "autorespond_subject", "autorespond_body",
               "autorespond_expires_on"}
IDENTITY_FIELDS = {"name", "may_send", "may_receive", "may_access_imap", "may_access_pop3",
                   "may_access_managesieve", "footer_active", "footer_plain_body",
                   "footer_html_body"}
SPAM_ACTIONS = {"folder", "subject", "none", "drop"}
SPAM_LEVELS = {"default", "most_permissive", "more_permissive", "permissive", "strict",
               "stricter", "strictest"}
FORBIDDEN = {"error": "Request forbidden by administrative rules"}
# A new mailbox's autoresponder holds this template (inactive), as recorded from the
# API in timharek/migadu-deno testdata/mailboxes/show.json.
TEMPLATE_SUBJECT = "Autoreply: {{subject}}"
TEMPLATE_BODY = ("Hi there,\n\nThank you for your message. I will be out of the office from "
                 "[mm/dd] to [mm/dd] and will have limited access to email. If this is urgent, "
                 "please contact [NAME] at [EMAIL] or [PHONE]. I will do my best to respond "
                 "promptly to your email when I return on [mm/dd].\n\nBest,\n\n[MY NAME]\n")


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
        self.identities: dict[str, dict[str, Any]] = {}  # address -> row (+ "mailbox")
        self.identity_passwords: dict[str, str] = {}
        self.forwardings: dict[tuple[str, str], dict[str, Any]] = {}  # (mailbox, target)
        self.rewrites: dict[tuple[str, str], dict[str, Any]] = {}  # (domain, name)
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
            "autorespond_subject": TEMPLATE_SUBJECT, "autorespond_body": TEMPLATE_BODY,
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

    def add_identity(self, mailbox: str, address: str, name: str, **fields: Any) -> None:
        local, _, domain = address.partition("@")
        self.identities[address] = {
            "local_part": local, "domain_name": domain, "address": address, "name": name,
            "may_send": True, "may_receive": True, "may_access_imap": True,
            "may_access_pop3": True, "may_access_managesieve": True, "footer_active": False,
            "footer_plain_body": None, "footer_html_body": None, **fields,
            "mailbox": mailbox}

    def add_forwarding(self, mailbox: str, target: str, confirmed: bool = False) -> None:
        self.forwardings[(mailbox, target)] = {
            "address": target, "is_active": True, "blocked_at": None,
            "confirmation_sent_at": "2026-08-01T10:00:00Z",
            "confirmed_at": "2026-08-01T10:05:00Z" if confirmed else None,
            "expires_on": None, "remove_upon_expiry": False}

    def confirm(self, mailbox: str, target: str) -> None:
        """The target clicked the link in Migadu's confirmation mail."""
        self.forwardings[(mailbox, target)]["confirmed_at"] = "2026-08-02T09:00:00Z"

    def add_rewrite(self, domain: str, name: str, rule: str, destinations: list[str],
                    order: int = 0) -> None:
        self.rewrites[(domain, name)] = {"name": name, "domain_name": domain,
                                         "local_part_rule": rule, "order_num": order,
                                         "destinations": destinations}

    def taken(self, address: str) -> bool:
        return address in self.mailboxes or address in self.aliases \
            or address in self.identities

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
        if coll not in ("mailboxes", "aliases", "rewrites"):
            return Reply(404, {"error": "Not Found"})
        try:
            body = req.json() or {}
        except ValueError:
            return bad("invalid JSON")
        if coll == "rewrites":
            return self._rewrites(req.method, domain, p[3] if len(p) > 3 else None, body)
        if coll == "mailboxes" and len(p) >= 5:
            owner = f"{p[3]}@{domain}"
            if owner not in self.mailboxes:
                return Reply(404, {"error": "Not Found"})
            if p[4] == "identities":
                return self._identities(req.method, owner, p[5] if len(p) > 5 else None, body)
            if p[4] == "forwardings":
                return self._forwardings(req.method, owner, p[5] if len(p) > 5 else None,
                                         body)
            return Reply(404, {"error": "Not Found"})
        if len(p) == 3:
            if req.method == "GET":
                return self._list(domain, coll)
            if req.method == "POST":
                return self._create(domain, coll, body)
            return Reply(404, {"error": "Not Found"})
        return self._one(req.method, f"{p[3]}@{domain}", coll, body)

    def _view_identity(self, address: str) -> dict[str, Any]:
        return {k: v for k, v in self.identities[address].items() if k != "mailbox"}

    def _view_mailbox(self, m: dict[str, Any]) -> dict[str, Any]:
        n = next(self._tick)  # volatile, read-only fields differ between reads
        address = m["address"]
        return {**m, "storage_usage": round(0.01 * n, 2), "changed_at": "07/06/23",
                "last_login_at": f"17:{n % 60:02}", "is_active": True,
                "identities": [self._view_identity(a) for a, i in self.identities.items()
                               if i["mailbox"] == address],
                "forwardings": [dict(f) for (mb, _), f in self.forwardings.items()
                                if mb == address]}

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
        if self.taken(address):
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
            fields = {k: v for k, v in body.items()
                      if k in MAILBOX_FIELDS and k not in UPDATE_ONLY}
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
            if coll == "mailboxes":  # its identities and forwardings go with it
                for a in [a for a, i in self.identities.items() if i["mailbox"] == address]:
                    del self.identities[a]
                for k in [k for k in self.forwardings if k[0] == address]:
                    del self.forwardings[k]
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

    # -- identities, forwardings, rewrites --------------------------------------------

    def _identities(self, method: str, owner: str, local: str | None,
                    body: dict[str, Any]) -> Reply:
        domain = owner.partition("@")[2]
        if local is None:
            if method == "GET":
                return Reply(200, {"identities": [
                    self._view_identity(a) for a, i in self.identities.items()
                    if i["mailbox"] == owner]})
            if method != "POST":
                return Reply(404, {"error": "Not Found"})
            lp = str(body.get("local_part", "")).strip().lower()
            if not lp:
                return bad("local_part can't be blank")
            if not str(body.get("name", "")).strip():
                return bad("name can't be blank")
            address = f"{lp}@{domain}"
            if self.taken(address):
                return bad("address has already been taken")
            use = body.get("password_use")
            if use not in ("none", "mailbox", "custom"):
                return bad("password_use is invalid")
            if (use == "custom") != bool(body.get("password")):
                return bad("password is required with password_use custom, and only then")
            self.add_identity(owner, address, **{k: v for k, v in body.items()
                                                 if k in IDENTITY_FIELDS})
            if use == "custom":
                self.identity_passwords[address] = str(body["password"])
            return Reply(200, self._view_identity(address))
        address = f"{local}@{domain}"
        ident = self.identities.get(address)
        if ident is None or ident["mailbox"] != owner:
            return Reply(404, {"error": "Not Found"})
        if method == "GET":
            return Reply(200, self._view_identity(address))
        if method == "DELETE":
            view = self._view_identity(address)
            del self.identities[address]
            return Reply(200, view)
        if method == "PUT":
            if "name" in body and not str(body["name"]).strip():
                return bad("name can't be blank")
            ident.update({k: v for k, v in body.items() if k in IDENTITY_FIELDS})
            return Reply(200, self._view_identity(address))
        return Reply(404, {"error": "Not Found"})

    def _forwardings(self, method: str, owner: str, target: str | None,
                     body: dict[str, Any]) -> Reply:
        if target is None:
            if method == "GET":
                return Reply(200, {"forwardings": [dict(f) for (mb, _), f in
                                                   self.forwardings.items() if mb == owner]})
            if method != "POST":
                return Reply(404, {"error": "Not Found"})
            address = str(body.get("address", "")).strip().lower()
            if "@" not in address or address.startswith("@"):
                return bad("address is invalid")
            if (owner, address) in self.forwardings:
                return bad("address has already been taken")
            self.add_forwarding(owner, address)  # a confirmation mail goes out
            return Reply(200, dict(self.forwardings[(owner, address)]))
        fw = self.forwardings.get((owner, target.lower()))
        if fw is None:
            return Reply(404, {"error": "Not Found"})
        if method == "GET":
            return Reply(200, dict(fw))
        if method == "DELETE":
            del self.forwardings[(owner, target.lower())]
            return Reply(200, fw)
        if method == "PUT":
            fw.update({k: v for k, v in body.items()
                       if k in ("is_active", "expires_on", "remove_upon_expiry")})
            return Reply(200, dict(fw))
        return Reply(404, {"error": "Not Found"})

    @staticmethod
    def _rewrite_dests(value: Any) -> list[str] | None:
        if not isinstance(value, str):  # arrays refused here (assumed, see the docstring)
            return None
        dests = [d.strip().lower() for d in value.split(",") if d.strip()]
        return dests or None

    def _rewrites(self, method: str, domain: str, name: str | None,
                  body: dict[str, Any]) -> Reply:
        if name is None:
            if method == "GET":
                return Reply(200, {"rewrites": [r for (d, _), r in sorted(self.rewrites.items())
                                                if d == domain]})
            if method != "POST":
                return Reply(404, {"error": "Not Found"})
            slug = str(body.get("name", "")).strip()
            if not slug or not str(body.get("local_part_rule", "")).strip():
                return bad("name and local_part_rule can't be blank")
            if (domain, slug) in self.rewrites:
                return bad("name has already been taken")
            dests = self._rewrite_dests(body.get("destinations"))
            if dests is None:
                return bad("destinations is invalid")
            self.add_rewrite(domain, slug, str(body["local_part_rule"]), dests,
                             int(body.get("order_num") or 0))
            return Reply(200, self.rewrites[(domain, slug)])
        rw = self.rewrites.get((domain, name))
        if rw is None:
            return Reply(404, {"error": "Not Found"})
        if method == "GET":
            return Reply(200, rw)
        if method == "DELETE":
            del self.rewrites[(domain, name)]
            return Reply(200, rw)
        if method == "PUT":
            if "destinations" in body:
                dests = self._rewrite_dests(body["destinations"])
                if dests is None:
                    return bad("destinations is invalid")
                rw["destinations"] = dests
            if "local_part_rule" in body:
                rw["local_part_rule"] = str(body["local_part_rule"])
            if "order_num" in body:
                rw["order_num"] = int(body["order_num"])
            return Reply(200, rw)
        return Reply(404, {"error": "Not Found"})

    def login(self, address: str, password: str) -> bool:
        """What Migadu's IMAP would answer for the mailbox's own password."""
        return address in self.mailboxes and self.passwords.get(address) == password
