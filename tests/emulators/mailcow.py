"""mailcow-dockerized `/api/v1`, as json_api.php and functions.mailbox.inc.php behave.

Faithful where clients trip: HTTP 200 with `danger` entries on failure, `{}`
for empty lists and missing objects, "1"/"0" strings, quota written in MiB
and read in bytes, the hidden self-alias of every mailbox, aliases created
inactive without `active`, `access_denied` for an unknown domain or object,
JSON bodies parsed only with a JSON content type, read-only keys, and every
answer encoded like PHP's json_encode (`read\\/write`). `add/alias` stores the
flags it is not given as 0 (`active`, `sogo_visible`, `sender_allowed`), unlike
the UI's form, which ticks the last two. Mailbox
tags: absent from a read when there are none, only ever added by
`edit/mailbox` (removed through `delete/mailbox/tag/{username}`), unique
without regard to case, empty ones ("" and "0", PHP's `empty`) skipped, and
a warning past TAGGING_LIMIT.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

from tests.emulators.base import Emulator, Reply, Request

MIB = 1 << 20
TAGGING_LIMIT = 25  # vars.inc.php; an index above it stops the loop with a warning
_EMAIL = re.compile(r"^[^@\s,]*@[a-z0-9.-]+\.[a-z0-9-]+$")


def php_json(value: Any, pretty: bool = False) -> bytes:
    """PHP's json_encode: `/` escaped as `\\/`, compact; reads (JSON_PRETTY_PRINT |
    JSON_UNESCAPED_UNICODE) are indented by four spaces and keep UTF-8 as is."""
    if pretty:
        text = json.dumps(value, indent=4, ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return text.replace("/", "\\/").encode()


NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n" + b"<!-- a padding to disable MSIE and Chrome friendly "
             b"error page -->\r\n" * 6)


def _intval(value: Any) -> int:
    """PHP's intval of a missing (null) or given value."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def ok(*msg: Any, log: Any = None) -> dict[str, Any]:
    return {"type": "success", "log": log or [], "msg": list(msg)}


def danger(*msg: Any) -> dict[str, Any]:
    return {"type": "danger", "log": [], "msg": list(msg) if len(msg) > 1 else msg[0]}


class MailcowEmulator(Emulator):
    prefix = "api/v1"

    def __init__(self, api_key: str, read_only_key: str | None = None,
                 latency: float = 0.0) -> None:
        super().__init__(latency)
        self.api_key = api_key
        self.read_only_key = read_only_key
        self.auth_failures = 0  # what mailcow would publish to fail2ban
        self.domains: dict[str, dict[str, Any]] = {}
        self.mailboxes: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}  # as received (tests check where they went)
        self.aliases: dict[int, dict[str, Any]] = {}
        self.app_passwords: dict[int, dict[str, Any]] = {}
        self.app_secrets: dict[int, str] = {}  # as received, for `login`
        self._ids = itertools.count(1)
        self._app_ids = itertools.count(1)

    # -- seeding (state as if created in the UI) -----------------------------------

    def add_domain(self, name: str, mailboxes: int = 10, aliases: int = 400,
                   quota_mib: int = 10240, maxquota_mib: int = 10240,
                   defquota_mib: int = 3072) -> None:
        self.domains[name] = {"mailboxes": mailboxes, "aliases": aliases, "quota": quota_mib,
                              "maxquota": maxquota_mib, "defquota": defquota_mib,
                              "active": 1}

    def add_mailbox(self, address: str, name: str = "", quota_mib: int = 1024,
                    password: str = "seeded-password", active: int = 1,
                    tags: list[str] | None = None) -> None:
        local, _, domain = address.partition("@")
        self.mailboxes[address] = {"local_part": local, "domain": domain, "name": name,
                                   "quota": quota_mib, "active": active,
                                   "tags": list(tags or [])}
        self.passwords[address] = password
        self._new_alias(address, address, 1)

    def add_alias(self, address: str, goto: list[str], active: int = 1) -> int:
        """As the UI's "add alias" form creates one: `sogo_visible` and `sender_allowed`
        are ticked by default there (templates/modals/mailbox.twig)."""
        return self._new_alias(address, ",".join(goto), active, sogo_visible=1,
                               sender_allowed=1)

    def _new_alias(self, address: str, goto: str, active: int, sogo_visible: int = 1,
                   sender_allowed: int = 1) -> int:
        i = next(self._ids)
        self.aliases[i] = {"id": i, "address": address, "goto": goto, "active": active,
                           "sogo_visible": sogo_visible, "sender_allowed": sender_allowed,
                           "domain": address.rpartition("@")[2]}
        return i

    def alias_by_address(self, address: str, hidden: bool = False) -> dict[str, Any] | None:
        for a in self.aliases.values():
            if a["address"] == address and (hidden or a["goto"] != address):
                return a
        return None

    # -- HTTP ---------------------------------------------------------------------

    def encode(self, body: Any, method: str) -> bytes:
        return php_json(body, pretty=method == "GET")

    def arrive(self, req: Request) -> Reply | None:
        key = re.sub(r"[^A-Za-z0-9-]", "", req.headers.get("x-api-key", ""))
        if key not in (self.api_key, self.read_only_key) or not key:
            self.auth_failures += 1
            return Reply(401, {"type": "error", "msg": "authentication failed"})
        if req.method == "POST" and key != self.api_key:
            return Reply(403, {"type": "error", "msg": "API read/write access denied"})
        return None

    def handle(self, req: Request) -> Reply:
        parts = req.path.split("/")
        action = parts[0]
        if action == "get":
            if req.method != "GET":
                return Reply(405, {"type": "error", "msg": "only GET method is allowed"})
            return Reply(200, self._get(parts[1:]))
        if action in ("add", "edit", "delete"):
            if req.method != "POST":
                return Reply(405, {"type": "error", "msg": "only POST method is allowed"})
            if "application/json" not in req.headers.get("content-type", ""):
                return Reply(200, {"type": "error", "msg": "Cannot find attributes in post data"})
            try:
                data = req.json()
            except ValueError:
                return Reply(400, {"type": "error", "msg": "Request body doesn't contain "
                                                           "valid json!"})
            if parts[:3] == ["delete", "mailbox", "tag"]:  # delete/mailbox/tag/{username}
                return Reply(200, self._delete_mailbox_tag(
                    parts[3] if len(parts) > 3 else "", data))
            route = (parts[1] if len(parts) > 1 else "").replace("-", "_")
            fn = getattr(self, f"_{action}_{route}", None)
            if fn is None:
                return Reply(404, {"type": "error", "msg": "route not found"})
            result = fn(data)
            return Reply(200, result or {"type": "error", "msg": "Cannot add item"})
        return Reply(404, {"type": "error", "msg": "route not found"})

    # -- reads --------------------------------------------------------------------

    @staticmethod
    def _many(rows: list[dict[str, Any]]) -> Any:
        return rows if rows else {}  # mailcow prints {} for "nothing"

    def _get(self, parts: list[str]) -> Any:
        what = parts[0] if parts else ""
        arg = parts[1] if len(parts) > 1 else ""
        scope = parts[2] if len(parts) > 2 else None
        if what == "domain":
            if arg == "all":
                return self._many([self._domain_row(d) for d in sorted(self.domains)])
            return self._domain_row(arg) if arg in self.domains else {}
        if what == "mailbox":
            if arg == "all":
                rows = [self._mailbox_row(a) for a in sorted(self.mailboxes)
                        if scope is None or self.mailboxes[a]["domain"] == scope]
                return self._many(rows)
            return self._mailbox_row(arg) if arg in self.mailboxes else {}
        if what == "app-passwd" and arg == "all":
            rows = [dict(a) for a in self.app_passwords.values()
                    if scope is None or a["mailbox"] == scope]
            return self._many(rows)  # details rows, `password` (the hash) included
        if what == "alias":
            if arg == "all":
                rows = [self._alias_row(a) for a in self.aliases.values()
                        if a["goto"] != a["address"] and (scope is None or a["domain"] == scope)]
                return self._many(rows)
            found = (self.aliases.get(int(arg)) if arg.isdigit()
                     else self.alias_by_address(arg))
            return self._alias_row(found) if found and found["goto"] != found["address"] else {}
        return {}

    def _domain_row(self, d: str) -> dict[str, Any]:
        dom = self.domains[d]
        boxes = [m for m in self.mailboxes.values() if m["domain"] == d]
        n_alias = sum(1 for a in self.aliases.values()
                      if a["domain"] == d and a["goto"] != a["address"])
        return {"domain_name": d, "active": str(dom["active"]), "active_int": dom["active"],
                "mboxes_in_domain": len(boxes), "mboxes_left": dom["mailboxes"] - len(boxes),
                "aliases_in_domain": n_alias, "aliases_left": dom["aliases"] - n_alias,
                "max_num_mboxes_for_domain": dom["mailboxes"],
                "max_num_aliases_for_domain": dom["aliases"],
                "def_quota_for_mbox": dom["defquota"] * MIB,
                "max_quota_for_mbox": dom["maxquota"] * MIB,
                "max_quota_for_domain": dom["quota"] * MIB,
                "quota_used_in_domain": str(sum(m["quota"] for m in boxes) * MIB),
                "backupmx": "0", "gal": "0", "relay_all_recipients": "0", "tags": []}

    def _mailbox_row(self, addr: str) -> dict[str, Any]:
        m = self.mailboxes[addr]
        return {"username": addr, "local_part": m["local_part"], "domain": m["domain"],
                "name": m["name"], "active": str(m["active"]), "active_int": m["active"],
                "quota": m["quota"] * MIB, "quota_used": 0, "percent_in_use": "0",
                "percent_class": "success", "messages": 0, "authsource": "mailcow",
                "attributes": {"force_pw_update": "0", "imap_access": "1", "pop3_access": "1",
                               "smtp_access": "1", "sieve_access": "1", "sogo_access": "1",
                               "tls_enforce_in": "0", "tls_enforce_out": "0"},
                "last_imap_login": 0, "last_smtp_login": 0,
                "created": "2026-01-01 00:00:00", "modified": None,
                # Only set when there is one: get_mailbox_details appends to it.
                **({"tags": list(m["tags"])} if m["tags"] else {})}

    def _alias_row(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"id": a["id"], "address": a["address"], "goto": a["goto"],
                "domain": a["domain"], "active": str(a["active"]), "active_int": a["active"],
                "sogo_visible": str(a["sogo_visible"]), "sogo_visible_int": a["sogo_visible"],
                "internal": "0", "sender_allowed": str(a["sender_allowed"]),
                "is_catch_all": 1 if a["address"].startswith("@") else 0,
                "public_comment": "", "private_comment": "", "in_primary_domain": "",
                "created": "2026-01-01 00:00:00", "modified": None}

    # -- writes -------------------------------------------------------------------

    def _add_domain(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        name = str(d.get("domain", "")).strip().lower()
        if not re.match(r"^[a-z0-9.-]+\.[a-z0-9-]+$", name):
            return [danger("domain_invalid", name)]
        if name in self.domains:
            return [danger("domain_exists", name)]
        self.add_domain(name, int(d.get("mailboxes", 10)), int(d.get("aliases", 400)),
                        int(d.get("quota", 10240)), int(d.get("maxquota", 10240)),
                        int(d.get("defquota", 3072)))
        return [ok("dkim_added", name), ok("domain_added", name)]

    def _add_mailbox(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        local = str(d.get("local_part", "")).strip().lower()
        domain = str(d.get("domain", "")).strip().lower()
        addr = f"{local}@{domain}"
        if domain not in self.domains:
            return [danger("access_denied")]
        if not local or not _EMAIL.match(addr):
            return [danger("mailbox_invalid", addr)]
        if addr in self.mailboxes:
            return [danger("object_exists", addr)]
        if self.alias_by_address(addr, hidden=True):
            return [danger("is_alias", addr)]
        pw, pw2 = str(d.get("password", "")), str(d.get("password2", ""))
        if not pw:
            return [danger("password_empty")]
        if pw != pw2:
            return [danger("password_mismatch")]
        dom = self.domains[domain]
        quota = int(d.get("quota", dom["defquota"]))
        boxes = [m for m in self.mailboxes.values() if m["domain"] == domain]
        if len(boxes) >= dom["mailboxes"]:
            return [danger("max_mailbox_exceeded", len(boxes), dom["mailboxes"])]
        if quota > dom["maxquota"]:
            return [danger("mailbox_quota_exceeded", dom["maxquota"])]
        if sum(m["quota"] for m in boxes) + quota > dom["quota"]:
            return [danger("mailbox_quota_left_exceeded", dom["quota"])]
        self.mailboxes[addr] = {"local_part": local, "domain": domain,
                                "name": str(d.get("name", "")), "quota": quota,
                                "active": int(d.get("active", 1)), "tags": []}
        self.passwords[addr] = pw
        self._new_alias(addr, addr, 1)
        warnings = self._save_tags(self.mailboxes[addr], d.get("tags"))
        masked = {**d, "password": "*", "password2": "*"}
        return [*warnings, ok("mailbox_added", addr, log=["mailbox", "add", "mailbox", masked])]

    @staticmethod
    def _save_tags(m: dict[str, Any], tags: Any) -> list[dict[str, Any]]:
        """INSERT per tag; the unique key (tag_name, username) is case-insensitive and
        its violation swallowed, so tags are only ever added."""
        out: list[dict[str, Any]] = []
        for index, tag in enumerate(tags if isinstance(tags, list) else []):
            if tag in ("", "0", 0, None, False):
                continue
            if index > TAGGING_LIMIT:
                out.append({"type": "warning", "log": [],
                            "msg": ["tag_limit_exceeded", f"limit {TAGGING_LIMIT}"]})
                break
            if str(tag).casefold() not in {t.casefold() for t in m["tags"]}:
                m["tags"].append(str(tag))
        return out

    def _add_alias(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        gotos = [g.strip().lower() for g in str(d.get("goto", "")).split(",") if g.strip()]
        if not gotos:
            return [danger("goto_empty")]
        for g in gotos:
            if not _EMAIL.match(g) or g.startswith("@"):
                return [danger("goto_invalid", g)]
        for address in re.split(r"[\s,;]+", str(d.get("address", "")).strip().lower()):
            if not address:
                continue
            domain = address.rpartition("@")[2]
            if not _EMAIL.match(address):
                out.append(danger("alias_invalid", address))
            elif domain not in self.domains:
                out.append(danger("domain_not_found", domain))
            elif address in self.mailboxes or self.alias_by_address(address, hidden=True):
                out.append(danger("is_alias_or_mailbox", address))
            else:
                # The API intvals what it is given: a missing flag is 0, unlike the UI.
                i = self._new_alias(address, ",".join(gotos), _intval(d.get("active")),
                                    _intval(d.get("sogo_visible")),
                                    _intval(d.get("sender_allowed")))
                out.append(ok("alias_added", address, i))
        return out

    def _items(self, d: Any) -> list[str]:
        items = d.get("items") if isinstance(d, dict) else d
        return [str(x) for x in (items if isinstance(items, list) else [items])]

    def _edit_mailbox(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        attr = d.get("attr") or {}
        out = []
        for addr in self._items(d):
            m = self.mailboxes.get(addr)
            if m is None:
                out.append(danger("access_denied"))
                continue
            if "quota" in attr:
                q = int(attr["quota"])
                if q > self.domains[m["domain"]]["maxquota"]:
                    out.append(danger("mailbox_quota_exceeded", q))
                    continue
                m["quota"] = q
            for k in ("name", "active"):
                if k in attr:
                    m[k] = int(attr[k]) if k == "active" else str(attr[k])
            if attr.get("password"):
                if str(attr["password"]) != str(attr.get("password2", "")):
                    out.append(danger("password_mismatch"))
                    continue
                self.passwords[addr] = str(attr["password"])
            out.extend(self._save_tags(m, attr.get("tags")))
            out.append(ok("mailbox_modified", addr))
        return out

    def _edit_alias(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        attr = d.get("attr") or {}
        out = []
        for item in self._items(d):
            a = self.aliases.get(int(item)) if item.isdigit() else self.alias_by_address(item)
            if a is None:
                out.append(danger("access_denied"))
                continue
            if attr.get("goto"):  # empty goto = unchanged
                a["goto"] = ",".join(g.strip().lower() for g in str(attr["goto"]).split(","))
            if "active" in attr:
                a["active"] = int(attr["active"])
            out.append(ok("alias_modified", a["address"]))
        return out

    def _delete_mailbox(self, d: Any) -> list[dict[str, Any]]:
        out = []
        for addr in self._items(d):
            if self.mailboxes.pop(addr, None) is None:
                out.append(danger("access_denied"))
                continue
            for i, a in list(self.aliases.items()):
                if a["address"] == addr and a["goto"] == addr:
                    del self.aliases[i]
            out.append(ok("mailbox_removed", addr))
        return out

    def _delete_mailbox_tag(self, username: str, d: Any) -> Any:
        """mailbox('delete', 'tags_mailbox'): the body lists the tags to remove."""
        tags = self._items(d) if isinstance(d, list) else []
        if not _EMAIL.match(username):
            return [danger("email invalid")]
        m = self.mailboxes.get(username)
        if m is None:
            return [danger("access_denied")]
        if not tags:
            return {"type": "error", "msg": "Cannot delete item"}  # nothing was modified
        gone = {t.casefold() for t in tags}  # `tag_name = :tag_name`, without case
        m["tags"] = [t for t in m["tags"] if t.casefold() not in gone]
        return [ok("mailbox_modified", username)]

    def _delete_alias(self, d: Any) -> list[dict[str, Any]]:
        out = []
        for item in self._items(d):
            a = self.aliases.get(int(item)) if item.isdigit() else self.alias_by_address(item)
            if a is None:
                out.append(danger("access_denied"))
                continue
            del self.aliases[a["id"]]
            out.append(ok("alias_removed", a["address"]))
        return out

    def _delete_domain(self, d: Any) -> list[dict[str, Any]]:
        out = []
        for name in self._items(d):
            if any(m["domain"] == name for m in self.mailboxes.values()):
                out.append(danger("domain_not_empty", name))
            elif self.domains.pop(name, None) is None:
                out.append(danger("domain_not_found", name))
            else:
                out.append(ok("domain_removed", name))
        return out

    # -- app passwords (functions.app_passwd.inc.php) ------------------------------------

    _PROTOCOLS = ("imap_access", "dav_access", "smtp_access", "eas_access", "pop3_access",
                  "sieve_access")

    def _add_app_passwd(self, d: dict[str, Any]) -> list[dict[str, Any]]:
        username = str(d.get("username", ""))
        m = self.mailboxes.get(username)
        if m is None:
            return [danger("access_denied")]
        pw, pw2 = str(d.get("app_passwd", "")), str(d.get("app_passwd2", ""))
        if not pw:
            return [danger("password_empty")]
        if pw != pw2:
            return [danger("password_mismatch")]
        name = str(d.get("app_name", "")).strip()
        if not name:
            return [danger("app_name_empty")]
        protocols = d.get("protocols") or []
        protocols = protocols if isinstance(protocols, list) else [protocols]
        i = next(self._app_ids)
        row = {"id": i, "name": name, "mailbox": username, "domain": m["domain"],
               "password": "{BLF-CRYPT}$2y$10$emulated", "active": int(d.get("active") or 0),
               "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "modified": None}
        row.update({p: 1 if p in protocols else 0 for p in self._PROTOCOLS})
        self.app_passwords[i] = row
        self.app_secrets[i] = pw
        masked = {**d, "app_passwd": "*", "app_passwd2": "*"}
        return [ok("app_passwd_added", log=["app_passwd", "add", masked])]

    def _delete_app_passwd(self, d: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in self._items(d):
            i = int(item) if str(item).isdigit() else -1
            if i not in self.app_passwords:
                return [*out, danger("app_passwd_id_invalid")]
            del self.app_passwords[i]
            self.app_secrets.pop(i, None)
            out.append(ok("app_passwd_removed", str(i)))
        return out

    def login(self, address: str, password: str, protocol: str = "imap") -> bool:
        """What mailcow's Dovecot would answer: the mailbox password, or an active app
        password whose `<protocol>_access` is on."""
        m = self.mailboxes.get(address)
        if m is None or int(m["active"]) != 1:
            return False
        if self.passwords.get(address) == password:
            return True
        return any(a["mailbox"] == address and a["active"] == 1
                   and a.get(f"{protocol}_access") == 1 and self.app_secrets.get(i) == password
                   for i, a in self.app_passwords.items())
