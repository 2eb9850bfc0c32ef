"""Actual provider state -> mailctl.yaml, so adopting an existing domain is one command."""

from __future__ import annotations

from typing import Any

from mailctl.model import DomainState, domain_of


def _short(address: str, domain: str) -> str:
    return address.rpartition("@")[0] if domain_of(address) == domain else address


def _size(n: int) -> str | int:
    from mailctl.util.sizes import format_size

    text = format_size(n)
    return text if not text.endswith("B") else n


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
        if key in attached:
            entry["aliases"] = attached[key]
        fw = state.forwards.get(key)
        if fw is not None:
            entry["forwards"] = [_short(d, name) for d in fw.destinations]
            if not fw.keep:
                entry["forward_only"] = True
        mailboxes.append(entry)
    block: dict[str, Any] = {"provider": provider}
    if mailboxes:
        block["mailboxes"] = mailboxes
    if free:
        block["aliases"] = free
    if catch_all:
        block["catch_all"] = catch_all if len(catch_all) > 1 else catch_all[0]
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
