"""The `mailcow` provider: mailcow-dockerized's `/api/v1` with an `X-API-Key`.

mailcow answers every add/edit/delete with HTTP 200 and a list of result
entries, so success is decided by reading every entry, never the status
line. Reads answer `{}` for "nothing" (an empty list and a missing object
alike), booleans come as "1"/"0", and quotas are written in MiB but read in
bytes. All of that is absorbed here so the planner sees plain values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field

from mailctl.model import (
    AddressError,
    Alias,
    DomainState,
    Kind,
    Mailbox,
    domain_of,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import (
    AppPassword,
    Capabilities,
    ErrorKind,
    ProviderError,
    QuotaLimits,
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
from mailctl.secret import Secret, generate_password

MIB = 1 << 20
# mailcow takes `quota` as an integer of MiB (functions.mailbox.inc.php: intval, then
# * 1048576 into a BIGINT of bytes) and gives Dovecot 2.3.21 `*:bytes=N` plus its own
# `quota_rule2 = Trash:storage=+100%%`: Dovecot computes that rule as N * 100 in a
# signed 64-bit integer (quota-util.c), so N * 100 must fit.
QUOTA = QuotaLimits(
    max_bytes=(2**63 - 1) // 100 // MIB * MIB, step=MIB,
    why_max="mailcow's Dovecot works out the Trash allowance (+100% of the quota) as a "
            "signed 64-bit byte count, which overflows past this",
    why_step="mailcow's API takes quotas as a whole number of MiB",
)

# Result codes from mailcow's functions.mailbox.inc.php, by what they mean to us.
_CODES: dict[str, ErrorKind] = {
    **dict.fromkeys(("object_exists", "is_alias", "is_spam_alias", "is_alias_or_mailbox",
                     "domain_exists", "alias_exists"), ErrorKind.CONFLICT),
    **dict.fromkeys(("domain_not_found", "domain_invalid", "domain_not_empty",
                     "mailbox_invalid", "username_invalid", "alias_invalid", "alias_empty",
                     "goto_invalid", "goto_empty", "comment_too_long", "password_complexity",
                     "password_mismatch", "password_empty", "quarantine_category_invalid",
                     "max_mailbox_exceeded", "max_alias_exceeded", "mailbox_quota_exceeded",
                     "mailbox_quota_left_exceeded", "unlimited_quota_acl", "access_denied",
                     "max_quota_exceeded"), ErrorKind.INVALID),
}
_HINTS = {
    "access_denied": "mailcow also answers this when the domain does not exist: check that "
                     "the domain is at mailcow, then re-run",
    "is_alias_or_mailbox": "at mailcow an address cannot be both a mailbox and an alias: "
                           "remove one of them (in the config or at mailcow)",
    "max_mailbox_exceeded": "raise the domain's mailbox limit at mailcow (new_domain.mailboxes "
                            "for domains mailctl creates)",
    "max_alias_exceeded": "raise the domain's alias limit at mailcow (new_domain.aliases for "
                          "domains mailctl creates)",
    "mailbox_quota_exceeded": "the quota is above the domain's largest mailbox quota: raise "
                              "its maxquota at mailcow (new_domain.maxquota) or lower `quota`",
    "mailbox_quota_left_exceeded": "the domain's total quota is used up: raise it at mailcow "
                                   "(new_domain.quota) or lower the mailbox quotas",
}


class MailcowSettings(HttpSettings):
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    url: str  # https://mail.example.org (the /api/v1 prefix is added)
    api_key: str  # a read-write key, as ${env:...} or ${file:...}
    # Attributes for domains mailctl creates (add/domain), e.g. mailboxes, aliases,
    # quota, maxquota, defquota (MiB). mailcow's defaults allow only 10 mailboxes.
    new_domain: dict[str, int | str] = Field(default_factory=dict)


def as_list(body: Any) -> list[dict[str, Any]]:
    """`{}` means empty; a single object (some versions) means a list of one."""
    if isinstance(body, list):
        return [x for x in body if isinstance(x, dict)]
    if isinstance(body, dict) and body:
        return [body]
    return []


def as_bool(value: Any) -> bool:
    """mailcow's "1"/"0" (or 1/0, or a JSON bool). A mailbox's `active` may also be 2,
    "disallow login" (mail is still received): not switched on, so False."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return text in ("1", "true")


def as_tags(value: Any) -> tuple[str, ...]:
    """`tags` is absent when a mailbox has none (a list otherwise); a set, kept sorted."""
    if not isinstance(value, list):
        return ()
    return tuple(sorted({str(t) for t in value if str(t)}))


def check_result(body: Any, client: HttpClient, obj: str | None) -> None:
    """Raise unless every entry of an add/edit/delete answer is success or warning."""
    entries = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    if not entries:
        raise client.error(ErrorKind.UNKNOWN, "mailcow gave an empty answer", obj=obj)
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") in ("success", "warning"):
            continue
        msg = entry.get("msg")
        parts = [str(x) for x in msg] if isinstance(msg, list) else [str(msg)]
        code = parts[0] if parts else "unknown"
        args = ", ".join(parts[1:])
        kind = _CODES.get(code, ErrorKind.UNKNOWN)
        hint = _HINTS.get(code) or ("look at it in mailcow's admin, then re-run"
                                     if kind is ErrorKind.CONFLICT else
                                     "fix what it names (in the config or at mailcow), then "
                                     "re-run")
        raise client.error(
            kind, f"mailcow refused it: {code}" + (f" ({args})" if args else "") + f"; {hint}",
            obj=obj)


def _classify(resp: httpx.Response, client: HttpClient) -> ProviderError | None:
    # PHP's json_encode escapes slashes (`read\/write`): match the decoded message.
    if resp.status_code == 403 and "read/write access denied" in provider_message(resp):
        return client.error(
            ErrorKind.AUTH,
            f"mailcow accepted {client.credential} but it is a read-only key "
            "(HTTP 403: API read/write access denied); plan and status work with it, "
            f"apply needs a read-write key: put mailcow's read-write API key in "
            f"{client.credential} (System → Configuration → Access → API)")
    return None


class MailcowProvider(HttpProvider):
    type_name = "mailcow"
    label = "mailcow"
    secret_field = "api_key"
    capabilities: ClassVar[Capabilities] = Capabilities(
        mailboxes=True, aliases=True, forwards=False, catch_all=True, quota=True,
        display_name=True, spam=False, external_destinations=True, domains=True,
        enabled=True, tags=True, quota_limits=QUOTA,
        set_password=True, app_passwords=True, usage=True,
    )
    settings_model = MailcowSettings
    auth_hint = (" and that this machine's IP is in the API allow-list (System → "
                 "Configuration → Access → API); mailcow reports failed keys to fail2ban")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._default_quota: dict[str, int] = {}  # domain -> def_quota_for_mbox (bytes)

    def make_client(self) -> HttpClient:
        key = self.secret()
        base = self.hs.url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        return HttpClient(
            provider=self.name, label=self.label, settings=self.hs,
            credential=self.credential_ref, headers={"X-API-Key": key.reveal()},
            limiter=None, classify=_classify, auth_hint=self.auth_hint, base_url=base)

    def _post(self, path: str, body: Any, obj: str, idempotent: bool) -> None:
        resp = self.http.request("POST", path, json=body, obj=obj, idempotent=idempotent)
        check_result(decode(resp, self.http, obj), self.http, obj)

    # -- read --------------------------------------------------------------------

    def list_domains(self) -> list[str]:
        rows = as_list(self.http.get_json("get/domain/all"))
        names = {normalise_domain(str(r["domain_name"])): r for r in rows
                 if r.get("domain_name")}
        # A new mailbox without a quota gets its domain's default (bytes on read).
        self._default_quota.update({d: int(r.get("def_quota_for_mbox") or 0)
                                    for d, r in names.items()})
        return sorted(names)

    def without_defaults(self, state: DomainState) -> DomainState:
        default = self._default_quota.get(state.name)
        if not default:
            return state
        return dataclasses.replace(state, mailboxes={
            k: dataclasses.replace(m, quota=None) if m.quota == default else m
            for k, m in state.mailboxes.items()})

    def read(self, domains: Sequence[str]) -> dict[str, DomainState]:
        existing = set(self.list_domains())
        present = [d for d in domains if d in existing]
        states = self.map_concurrently(self._read_domain, present)
        out = {s.name: s for s in states}
        for d in domains:
            out.setdefault(d, DomainState(d, exists=False))
        return out

    def _read_domain(self, domain: str) -> DomainState:
        state = DomainState(domain)
        for row in as_list(self.http.get_json(f"get/mailbox/all/{domain}", obj=domain)):
            mb = self._mailbox(row)
            state.mailboxes[mb.address] = mb
        for row in as_list(self.http.get_json(f"get/alias/all/{domain}", obj=domain)):
            al = self._alias(row)
            if al is not None and domain_of(al.address) == domain:
                state.aliases[al.address] = al
        return state

    @staticmethod
    def _mailbox(row: dict[str, Any]) -> Mailbox:
        quota = row.get("quota")
        return Mailbox(normalise_address(str(row["username"])),
                       name=str(row.get("name") or "") or None,
                       quota=int(quota) if quota not in (None, "") else 0,  # bytes on read
                       enabled=as_bool(row.get("active_int", row.get("active", "1"))),
                       tags=as_tags(row.get("tags")))

    @staticmethod
    def _alias(row: dict[str, Any]) -> Alias | None:
        address = str(row.get("address", ""))
        goto = norm_addresses(str(row.get("goto", "")))
        try:
            key = normalise_address(address)
        except AddressError:
            return None
        if goto == (key,):
            return None  # the implicit self-alias every mailbox has
        return Alias(key, goto)

    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        if kind is Kind.MAILBOX:
            rows = as_list(self.http.get_json(f"get/mailbox/{key}", obj=key))
            return self._mailbox(rows[0]) if rows else None
        if kind is Kind.ALIAS:
            rows = as_list(self.http.get_json(f"get/alias/{key}", obj=key))
            return self._alias(rows[0]) if rows else None
        return None

    def domain_exists(self, domain: str) -> bool:
        return bool(as_list(self.http.get_json(f"get/domain/{domain}", obj=domain)))

    # -- write -------------------------------------------------------------------

    def _mib(self, quota: int, key: str) -> int:
        if quota % MIB:
            raise self.error(ErrorKind.INVALID,
                             f"mailcow stores quotas in whole MiB; {quota} bytes is not", key)
        return quota // MIB

    def create_domain(self, domain: str) -> None:
        body = {"domain": domain, "active": "1", **self.settings.new_domain}
        self._post("add/domain", body, domain, idempotent=False)

    def create(self, obj: MailObject) -> None:
        if isinstance(obj, Mailbox):
            local, _, domain = obj.address.rpartition("@")
            if obj.password_hash:
                password = obj.password_hash  # mailcow accepts {SCHEME}hash as is
            elif obj.password is not None:
                password = obj.password.reveal()
            else:
                raise self.error(ErrorKind.INVALID, "no password to set", obj.address)
            body: dict[str, Any] = {"local_part": local, "domain": domain,
                                    "active": 0 if obj.enabled is False else 1,
                                    "password": password, "password2": password}
            if obj.name is not None:
                body["name"] = obj.name
            if obj.quota is not None:
                body["quota"] = self._mib(obj.quota, obj.address)
            if obj.tags:
                body["tags"] = list(obj.tags)
            self._post("add/mailbox", body, obj.address, idempotent=False)
        elif isinstance(obj, Alias):
            # What mailcow's own "add alias" form sends (templates/modals/mailbox.twig):
            # the API stores a flag it is not given as 0, so without these the alias
            # would be switched off, hidden in SOGo and not usable as a sender.
            body = {"address": obj.address, "goto": ",".join(obj.destinations), "active": "1",
                    "sogo_visible": "1", "sender_allowed": "1"}
            self._post("add/alias", body, obj.address, idempotent=False)
        else:
            raise self.error(ErrorKind.INVALID, "mailcow forwards are not supported", obj.key)

    def update(self, obj: MailObject, fields: dict[str, Any]) -> None:
        attr: dict[str, Any] = {}
        if isinstance(obj, Mailbox):
            if "name" in fields:
                attr["name"] = fields["name"]
            if "quota" in fields:
                attr["quota"] = self._mib(int(fields["quota"]), obj.address)
            if "enabled" in fields:
                attr["active"] = 1 if fields["enabled"] else 0
            if "tags" in fields:
                added = self._retag(obj.address, set(fields["tags"]))
                if added:
                    attr["tags"] = added
            path = "edit/mailbox"
        elif isinstance(obj, Alias):
            attr["goto"] = ",".join(obj.destinations)  # an empty goto would mean "unchanged"
            path = "edit/alias"
        else:
            raise self.error(ErrorKind.INVALID, "mailcow forwards are not supported", obj.key)
        if attr:
            self._post(path, {"items": [obj.key], "attr": attr}, obj.key, idempotent=True)

    def _retag(self, address: str, want: set[str]) -> list[str]:
        """Remove the tags `address` should not have; return those still to add.

        `edit/mailbox` only ever adds tags (a tag it already has is ignored), so the
        current set is re-read and the extra ones go to `delete/mailbox/tag/{address}`.
        Removing first also turns `Foo` into `foo` (mailcow compares tags without case)."""
        rows = as_list(self.http.get_json(f"get/mailbox/{address}", obj=address))
        if not rows:
            raise self.error(ErrorKind.NOT_FOUND, "the mailbox is gone", address)
        have = set(as_tags(rows[0].get("tags")))
        drop = sorted(have - want)
        if drop:
            self._post(f"delete/mailbox/tag/{address}", drop, address, idempotent=True)
        return sorted(want - have)

    def delete(self, kind: Kind, key: str) -> None:
        path = {Kind.MAILBOX: "delete/mailbox", Kind.ALIAS: "delete/alias"}.get(kind)
        if path is None:
            raise self.error(ErrorKind.INVALID, f"cannot delete a {kind.value} here", key)
        self._post(path, [key], key, idempotent=True)

    # -- self-service --------------------------------------------------------------

    # Every protocol an app password may log in with. Created through the API without
    # `protocols`, an app password has them all switched off and logs in nowhere (and
    # without `active` it is inactive): mailcow's functions.app_passwd.inc.php.
    APP_PROTOCOLS = ("imap_access", "smtp_access", "pop3_access", "sieve_access",
                     "dav_access", "eas_access")

    def set_password(self, address: str, password: Secret) -> None:
        pw = password.reveal()
        self._post("edit/mailbox", {"items": [address], "attr": {"password": pw,
                                                                 "password2": pw}},
                   address, idempotent=True)

    def list_app_passwords(self, address: str) -> list[AppPassword]:
        rows = as_list(self.http.get_json(f"get/app-passwd/all/{address}", obj=address))
        return [self._app_password(r) for r in rows
                if str(r.get("mailbox", address)).lower() == address]

    def _app_password(self, row: dict[str, Any]) -> AppPassword:
        protocols = tuple(p.removesuffix("_access") for p in self.APP_PROTOCOLS
                          if as_bool(row.get(p)))
        return AppPassword(str(row.get("id")), str(row.get("name") or ""),
                           _timestamp(row.get("created")), None, protocols)

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        before = {a.id for a in self.list_app_passwords(address)}
        secret = generate_password(32)
        pw = secret.reveal()
        self._post("add/app-passwd", {"username": address, "app_name": name,
                                      "app_passwd": pw, "app_passwd2": pw, "active": "1",
                                      "protocols": list(self.APP_PROTOCOLS)},
                   address, idempotent=False)
        # The answer names no id: the new entry is the one that was not there before.
        new = [a for a in self.list_app_passwords(address) if a.id not in before
               and a.name == name]
        if not new:
            raise self.error(ErrorKind.UNKNOWN, "mailcow accepted the app password but does "
                             "not list it", address)
        return max(new, key=lambda a: int(a.id) if a.id.isdigit() else 0), secret

    def revoke_app_password(self, address: str, app_id: str) -> None:
        self._post("delete/app-passwd", [app_id], address, idempotent=True)

    def usage(self, addresses: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for address in addresses:
            rows = as_list(self.http.get_json(f"get/mailbox/{address}", obj=address))
            used = str(rows[0].get("quota_used", "")) if rows else ""
            out[address] = int(used) if used.isdigit() else None
        return out


def _timestamp(value: Any) -> float | None:
    """mailcow's `2019-12-21 16:04:55` (the server's MySQL time, taken as UTC)."""
    import datetime as dt

    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None
