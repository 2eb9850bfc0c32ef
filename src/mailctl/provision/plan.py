"""Desired vs actual -> an ordered, deterministic Plan, with octoDNS-style safety limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from mailctl.model import DomainState, Kind
from mailctl.providers.base import comparable as _comparable
from mailctl.provision.changes import Action, Change

_KINDS = (Kind.MAILBOX, Kind.IDENTITY, Kind.ALIAS, Kind.FORWARD, Kind.REWRITE)


def is_unmanaged(address: str, globs: tuple[str, ...]) -> bool:
    local = address.rpartition("@")[0]
    return bool(local) and any(fnmatchcase(local, g) for g in globs)


def diff_domain(
    desired: DomainState,
    actual: DomainState,
    provider: str,
    explicit_domains: bool = False,
    unmanaged: tuple[str, ...] = (),
) -> list[Change]:
    name = desired.name
    changes: list[Change] = []
    if explicit_domains and not actual.exists:
        changes.append(Change(Action.CREATE, Kind.DOMAIN, name, name, provider))
    for kind in _KINDS:
        want: dict[str, Any] = desired.objects(kind)
        have: dict[str, Any] = actual.objects(kind)
        for key, obj in want.items():
            cur = have.get(key)
            if cur is None:
                changes.append(Change(Action.CREATE, kind, name, key, provider, desired=obj))
                continue
            wf = _comparable(obj.managed_fields())
            cf = _comparable(cur.managed_fields())
            # Only fields the YAML declares are owned; the rest is left alone.
            diff = {f: (cf.get(f), v) for f, v in wf.items() if cf.get(f) != v}
            if diff:
                changes.append(
                    Change(Action.UPDATE, kind, name, key, provider, obj, cur, diff)
                )
        for key, cur in have.items():
            if key not in want and not (unmanaged and is_unmanaged(key, unmanaged)):
                changes.append(Change(Action.DELETE, kind, name, key, provider, current=cur))
    return changes


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)  # what apply will do
    held: list[Change] = field(default_factory=list)  # drift apply will not touch
    existing: dict[str, int] = field(default_factory=dict)  # objects per domain
    providers: dict[str, str] = field(default_factory=dict)  # domain -> provider

    @classmethod
    def build(
        cls,
        diffs: Iterable[tuple[str, str, int, list[Change]]],
        *,
        reconcile: bool,
        prune: bool,
    ) -> Plan:
        plan = cls()
        for domain, provider, existing, changes in diffs:
            # A domain with a mirror comes twice (its provider, then the mirror): the
            # safety limits count the objects of both.
            plan.existing[domain] = plan.existing.get(domain, 0) + existing
            plan.providers.setdefault(domain, provider)
            for ch in changes:
                allowed = (
                    ch.action is Action.CREATE
                    or (ch.action is Action.UPDATE and reconcile)
                    or (ch.action is Action.DELETE and prune)
                )
                (plan.changes if allowed else plan.held).append(ch)
        plan.changes.sort(key=Change.sort_key)
        plan.held.sort(key=Change.sort_key)
        return plan

    @property
    def empty(self) -> bool:
        """Nothing to apply with the options given (held drift may remain)."""
        return not self.changes

    @property
    def in_sync(self) -> bool:
        """The provider matches the config: nothing to apply and no drift held back."""
        return not self.changes and not self.held

    def counts(self, changes: list[Change] | None = None) -> dict[str, int]:
        c = Counter(ch.action.value for ch in (self.changes if changes is None else changes))
        return {a.value: c.get(a.value, 0) for a in Action}

    def by_provider(self) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {}
        for ch in self.changes:
            out.setdefault(ch.provider, []).append(ch)
        return out

    def safety_violations(
        self, max_update_share: float, max_delete_share: float, min_existing: int
    ) -> list[str]:
        """As octoDNS does: a share of existing objects per domain, above a floor."""
        out: list[str] = []
        per: dict[str, Counter[str]] = {}
        for ch in self.changes:
            per.setdefault(ch.domain, Counter())[ch.action.value] += 1
        for domain, counts in sorted(per.items()):
            existing = self.existing.get(domain, 0)
            if existing < min_existing:
                continue
            for action, limit in (("update", max_update_share), ("delete", max_delete_share)):
                n = counts.get(action, 0)
                if n and n / existing > limit:
                    out.append(
                        f"{domain}: {n} of {existing} existing objects would be {action}d "
                        f"({n / existing:.0%} > the {limit:.0%} limit, safety.max_{action}_share)"
                    )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "in_sync": self.in_sync,
            "summary": self.counts(),
            "held": self.counts(self.held),
            "changes": [change_dict(ch) for ch in self.changes],
            "held_changes": [change_dict(ch) for ch in self.held],
        }


def change_dict(ch: Change) -> dict[str, Any]:
    d: dict[str, Any] = {
        "action": ch.action.value,
        "kind": ch.kind.value,
        "domain": ch.domain,
        "address": ch.key,
        "provider": ch.provider,
    }
    obj = ch.desired if ch.desired is not None else ch.current
    if obj is not None:
        d["fields"] = obj.managed_fields()
    if ch.diff:
        d["diff"] = {k: {"from": a, "to": b} for k, (a, b) in ch.diff.items()}
    return d
