"""Migadu's JSON rows <-> mailctl's model, and mailctl's field names -> Migadu's.

Pure functions, no HTTP: what Migadu calls a field, which fields it takes on
create and which only on update, and how its loosely typed answers (CSV or
array lists, null or "" strings, punycode) are made comparable. Strings that
Migadu returns as null are read as "" so that a declared empty footer is not
drift forever; lists are sets, kept sorted.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from mailctl.model import (
    ADDRESS_LISTS,
    Access,
    AddressError,
    Alias,
    Autoresponder,
    Footer,
    Forward,
    Identity,
    Mailbox,
    Rewrite,
    SpamSettings,
    normalise_address,
    normalise_domain,
)
from mailctl.providers.base import norm_addresses

# mailctl's spam vocabulary <-> Migadu's (raycast's labels; the sample payloads agree).
_ACTION_OUT = {"folder": "folder", "tag": "subject", "drop": "drop", "none": "none"}
_LEVEL_OUT = {"most_permissive": "most_permissive", "more_permissive": "more_permissive",
              "permissive": "permissive", "default": "default", "strict": "strict",
              "stricter": "stricter", "most_strict": "strictest"}
_ACTION_IN = {v: k for k, v in _ACTION_OUT.items()}
_LEVEL_IN = {v: k for k, v in _LEVEL_OUT.items()}


def mailctl_word(field: str, value: str) -> str | None:
    """mailctl's spelling of Migadu's spam word `value` (`subject` -> `tag`), or None."""
    table = {"action": _ACTION_IN, "aggressiveness": _LEVEL_IN}.get(field, {})
    word = table.get(value)
    return word if word is not None and word != value else None

# What a Migadu mailbox holds when nobody set it (timharek/migadu-deno's recorded
# mailbox, testdata/mailboxes/show.json): `import` leaves these out. Compared with
# runs of whitespace collapsed, so a reflowed copy of the template still counts.
DEFAULT_AUTORESPOND_SUBJECT = "Autoreply: {{subject}}"
DEFAULT_AUTORESPOND_BODY = (
    "Hi there,\n\nThank you for your message. I will be out of the office from [mm/dd] to "
    "[mm/dd] and will have limited access to email. If this is urgent, please contact "
    "[NAME] at [EMAIL] or [PHONE]. I will do my best to respond promptly to your email "
    "when I return on [mm/dd].\n\nBest,\n\n[MY NAME]\n")
DEFAULT_SPAM = SpamSettings("folder", "default")  # in mailctl's words

# mailctl managed-field name -> Migadu field, for mailboxes and identities alike.
_SAME = ("name", "may_send", "may_receive", "sender_allowlist", "sender_denylist",
         "recipient_denylist", "footer_active")
_RENAMED = {"access_imap": "may_access_imap", "access_pop3": "may_access_pop3",
            "access_sieve": "may_access_managesieve", "footer_plain": "footer_plain_body",
            "footer_html": "footer_html_body", "autoresponder_active": "autorespond_active",
            "autoresponder_subject": "autorespond_subject",
            "autoresponder_body": "autorespond_body",
            "autoresponder_expires_on": "autorespond_expires_on",
            "recovery_email": "password_recovery_email"}
# The docs mark the autoresponder "read/update": it is sent in a PUT after the create.
UPDATE_ONLY = frozenset(v for k, v in _RENAMED.items() if k.startswith("autoresponder_"))


def to_migadu(fields: dict[str, Any]) -> dict[str, Any]:
    """Managed fields (as `managed_fields()` names them) in Migadu's words."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _SAME:
            out[key] = value
        elif key in _RENAMED:
            out[_RENAMED[key]] = value
        elif key == "spam_action":
            out[key] = _ACTION_OUT[value]
        elif key == "spam_aggressiveness":
            out[key] = _LEVEL_OUT[value]
    return out


def patterns(raw: Any) -> tuple[str, ...]:
    """An allow/deny list, read as a CSV string or an array (Migadu sends either)."""
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    out: set[str] = set()
    for item in items:
        text = str(item).strip().lower()
        local, at, dom = text.rpartition("@")
        if at and dom:
            with contextlib.suppress(AddressError):
                text = f"{local}@{normalise_domain(dom)}"
        if text:
            out.add(text)
    return tuple(sorted(out))


def _bool(row: dict[str, Any], key: str) -> bool | None:
    return bool(row[key]) if key in row else None


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _access(row: dict[str, Any]) -> Access:
    return Access(_bool(row, "may_access_imap"), _bool(row, "may_access_pop3"),
                  _bool(row, "may_access_managesieve"))


def _footer(row: dict[str, Any]) -> Footer:
    return Footer(bool(row.get("footer_active")), _text(row, "footer_plain_body"),
                  _text(row, "footer_html_body"))


def mailbox(row: dict[str, Any]) -> Mailbox:
    action = str(row.get("spam_action") or "folder")
    level = str(row.get("spam_aggressiveness") or "default")
    recovery = row.get("password_recovery_email")
    mb = Mailbox(normalise_address(str(row["address"])),
                 name=str(row.get("name") or "") or None,
                 spam=SpamSettings(_ACTION_IN.get(action, action), _LEVEL_IN.get(level, level)),
                 may_send=_bool(row, "may_send"), may_receive=_bool(row, "may_receive"),
                 access=_access(row), footer=_footer(row),
                 autoresponder=Autoresponder(
                     bool(row.get("autorespond_active")), _text(row, "autorespond_subject"),
                     _text(row, "autorespond_body"),
                     str(row["autorespond_expires_on"])[:10]
                     if row.get("autorespond_expires_on") else None),
                 recovery_email=normalise_address(str(recovery)) if recovery else None)
    for name in ADDRESS_LISTS:
        setattr(mb, name, patterns(row.get(name)))
    return mb


def identity(row: dict[str, Any], owner: str) -> Identity:
    domain = owner.rpartition("@")[2]
    address = row.get("address") or f"{row['local_part']}@{row.get('domain_name') or domain}"
    return Identity(normalise_address(str(address)), owner,
                    name=str(row.get("name") or "") or None,
                    may_send=_bool(row, "may_send"), may_receive=_bool(row, "may_receive"),
                    access=_access(row), footer=_footer(row))


def forward(owner: str, rows: Sequence[dict[str, Any]]) -> tuple[Forward | None, list[str]]:
    """A mailbox's forwardings as one Forward, and what is pending about them.

    An unconfirmed forwarding is what was declared, waiting on its target: it is
    reported, never drift. Migadu keeps a copy in the mailbox (keep=True)."""
    dests = norm_addresses([str(r["address"]) for r in rows if r.get("address")])
    pending = []
    for r in rows:
        target = r.get("address")
        if r.get("blocked_at"):
            pending.append(f"forward {owner} -> {target}: blocked by Migadu "
                           f"since {r['blocked_at']}")
        elif not r.get("confirmed_at"):
            sent = r.get("confirmation_sent_at")
            pending.append(f"forward {owner} -> {target}: awaiting confirmation by the "
                           f"target" + (f" (asked {sent})" if sent else ""))
        elif r.get("is_active") is False:
            pending.append(f"forward {owner} -> {target}: confirmed but inactive")
    return (Forward(owner, dests, keep=True) if dests else None), pending


def alias(row: dict[str, Any]) -> Alias:
    return Alias(normalise_address(str(row["address"])), norm_addresses(row.get("destinations")
                                                                        or []))


def rewrite(row: dict[str, Any], domain: str) -> Rewrite:
    order = row.get("order_num")
    return Rewrite(f"{domain}/{row['name']}", str(row.get("local_part_rule") or ""),
                   norm_addresses(row.get("destinations") or []),
                   int(order) if order is not None else None)


def rewrite_body(fields: dict[str, Any]) -> dict[str, Any]:
    """Rewrite destinations go out as CSV: metio re-encodes arrays for rewrites only,
    which suggests arrays are refused there (unverified)."""
    out: dict[str, Any] = {}
    if "local_part_rule" in fields:
        out["local_part_rule"] = fields["local_part_rule"]
    if "destinations" in fields:
        out["destinations"] = ",".join(fields["destinations"])
    if "order" in fields:
        out["order_num"] = fields["order"]
    return out


def _same_text(a: str | None, b: str) -> bool:
    return a is not None and a.split() == b.split()


def without_defaults(mb: Mailbox) -> Mailbox:
    """`mb` as `import` writes it: what Migadu (or mailctl, for the name) puts there
    by itself is left out — the template autoreply, the default spam settings, a name
    that is just the local part (what mailctl sends when none is declared)."""
    ar = mb.autoresponder
    if ar is not None:
        ar = dataclasses.replace(
            ar, subject=None if _same_text(ar.subject, DEFAULT_AUTORESPOND_SUBJECT) else
            ar.subject, body=None if _same_text(ar.body, DEFAULT_AUTORESPOND_BODY) else ar.body)
    spam = mb.spam
    if spam is not None:
        spam = SpamSettings(None if spam.action == DEFAULT_SPAM.action else spam.action,
                            None if spam.aggressiveness == DEFAULT_SPAM.aggressiveness
                            else spam.aggressiveness)
        if spam == SpamSettings():
            spam = None
    name = None if mb.name == mb.address.rpartition("@")[0] else mb.name
    return dataclasses.replace(mb, autoresponder=ar, spam=spam, name=name)


def identity_without_defaults(ident: Identity) -> Identity:
    name = None if ident.name == ident.address.rpartition("@")[0] else ident.name
    return dataclasses.replace(ident, name=name)
