"""Actual provider state -> mailctl.yaml, so adopting an existing domain is one command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mailctl.model import ADDRESS_LISTS, Access, DomainState, Footer, Identity, Mailbox, domain_of


def _short(address: str, domain: str) -> str:
    return address.rpartition("@")[0] if domain_of(address) == domain else address


def _size(n: int) -> str | int:
    from mailctl.util.sizes import format_size

    text = format_size(n)
    return text if not text.endswith("B") else n


def _access(access: Access | None) -> dict[str, bool] | None:
    """Only the refused protocols: allowing is every provider's default."""
    if access is None:
        return None
    off = {k: False for k in ("imap", "pop3", "sieve") if getattr(access, k) is False}
    return off or None


def _footer(footer: Footer | None) -> dict[str, Any] | None:
    if footer is None or not (footer.active or footer.plain or footer.html):
        return None
    return {k: v for k, v in (("active", footer.active), ("plain", footer.plain),
                              ("html", footer.html)) if v is not None}


def _common(entry: dict[str, Any], obj: Mailbox | Identity) -> None:
    """Settings mailboxes and identities share; defaults (allowed, empty) are left out,
    which is safe: what the YAML does not declare is never compared."""
    for flag in ("may_send", "may_receive"):
        if getattr(obj, flag) is False:
            entry[flag] = False
    access = _access(obj.access)
    if access:
        entry["access"] = access
    footer = _footer(obj.footer)
    if footer:
        entry["footer"] = footer


def _mailbox_settings(entry: dict[str, Any], mb: Mailbox, name: str) -> None:
    _common(entry, mb)
    for lst in ADDRESS_LISTS:
        value = getattr(mb, lst)
        if value:
            entry[lst] = list(value)
    ar = mb.autoresponder
    if ar is not None and (ar.active or ar.body):
        entry["autoresponder"] = {k: v for k, v in (
            ("active", ar.active), ("subject", ar.subject), ("body", ar.body),
            ("expires_on", ar.expires_on)) if v is not None}
    if mb.recovery_email:
        entry["recovery_email"] = mb.recovery_email
    if mb.enabled is False:  # switched on is the default, left out like the others
        entry["enabled"] = False
    if mb.tags:
        entry["tags"] = list(mb.tags)


def _identities(state: DomainState) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(state.identities):
        ident = state.identities[key]
        entry: dict[str, Any] = {"local_part": _short(key, state.name)}
        if ident.name:
            entry["name"] = ident.name
        _common(entry, ident)
        out.setdefault(ident.mailbox, []).append(entry)
    return out


def export_domain(state: DomainState, provider: str) -> tuple[dict[str, Any], list[str]]:
    """The domain block, and warnings about what the YAML will not validate as is."""
    name = state.name
    warnings: list[str] = []
    known = set(state.mailboxes) | set(state.aliases)
    attached: dict[str, list[str]] = {}
    free: list[dict[str, Any]] = []
    catch_all: list[str] | None = None
    for key in sorted(state.aliases):
        alias = state.aliases[key]
        for d in alias.destinations:
            if domain_of(d) == name and d not in known:
                warnings.append(f"{key} -> {d}: {d} is neither a mailbox nor an alias")
        if alias.is_catch_all:
            catch_all = [_short(d, name) for d in alias.destinations]
        elif len(alias.destinations) == 1 and alias.destinations[0] in state.mailboxes:
            attached.setdefault(alias.destinations[0], []).append(_short(key, name))
        else:
            free.append({"local_part": _short(key, name),
                         "destinations": [_short(d, name) for d in alias.destinations]})
    identities = _identities(state)
    for owner in identities:
        if owner not in state.mailboxes:
            warnings.append(f"identities of {owner}: {owner} is not a mailbox here")
    mailboxes: list[dict[str, Any]] = []
    for key in sorted(state.mailboxes):
        mb = state.mailboxes[key]
        entry: dict[str, Any] = {"local_part": _short(key, name)}
        if mb.name:
            entry["name"] = mb.name
        if mb.quota:
            entry["quota"] = _size(mb.quota)
        if mb.spam is not None:
            entry["spam"] = {k: v for k, v in
                             (("action", mb.spam.action),
                              ("aggressiveness", mb.spam.aggressiveness)) if v}
        _mailbox_settings(entry, mb, name)
        if key in attached:
            entry["aliases"] = attached[key]
        fw = state.forwards.get(key)
        if fw is not None:
            entry["forwards"] = [_short(d, name) for d in fw.destinations]
            if not fw.keep:
                entry["forward_only"] = True
        if key in identities:
            entry["identities"] = identities[key]
        mailboxes.append(entry)
    block: dict[str, Any] = {"provider": provider}
    if mailboxes:
        block["mailboxes"] = mailboxes
    if free:
        block["aliases"] = free
    if catch_all:
        block["catch_all"] = catch_all if len(catch_all) > 1 else catch_all[0]
    if state.rewrites:
        block["rewrites"] = [
            {"name": rw.name, "local_part_rule": rw.rule,
             "destinations": [_short(d, name) for d in rw.destinations],
             **({"order": rw.order} if rw.order is not None else {})}
            for _, rw in sorted(state.rewrites.items())]
    return block, warnings


def export_config(
    provider_name: str, provider_block: dict[str, Any], states: list[DomainState]
) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    domains: dict[str, Any] = {}
    for st in states:
        block, warns = export_domain(st, provider_name)
        domains[st.name] = block
        warnings.extend(warns)
    return {"providers": {provider_name: provider_block}, "domains": domains}, warnings


# Provider settings that name a folder, relative to the config file's folder.
# (Only docker-mailserver has one; hosted providers are reached by URL.)
_FOLDER_SETTINGS = {"dms": ("path",)}


def relocate_paths(block: dict[str, Any], base_dir: Path,
                   out_dir: Path | None) -> dict[str, Any]:
    """The settings block with folder paths that work from the YAML's new home.

    A path is relative to the folder of the file it is written in, so copying it
    unchanged into a YAML kept elsewhere points at the wrong folder. Written to
    a known file, it becomes relative to that file's folder; to stdout, where the
    YAML will live is unknown, so it becomes absolute."""
    keys = _FOLDER_SETTINGS.get(str(block.get("type")), ())
    out = dict(block)
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or value.startswith("${"):
            continue
        target = (base_dir / Path(value).expanduser()).resolve()
        if out_dir is None:
            out[key] = str(target)
        else:
            rel = os.path.relpath(target, out_dir)
            out[key] = rel if rel.startswith("..") or os.path.isabs(rel) else f"./{rel}"
    return out
