"""A DNS plan as people review it and machines read it: changes per zone, versioned, checksummed.

Plain data over octoDNS's own plan (kept, private, for `apply_plan` to apply
exactly what was reviewed). The checksum covers every field a reviewer sees,
so `dns apply --checksum` refuses a plan that differs in any of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailctl.dns.serverrelay import RelayChange

PLAN_VERSION = 1


@dataclass
class Change:
    action: str  # create | update | delete
    name: str  # fully qualified, no trailing dot
    rtype: str
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    old_ttl: int | None = None
    new_ttl: int | None = None
    kept: list[str] = field(default_factory=list)  # foreign values of a shared set, unchanged
    why: str = ""
    removes: list[str] = field(default_factory=list)  # mail values removed and not replaced

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "name": self.name, "type": self.rtype, "old": self.old,
                "new": self.new, "old_ttl": self.old_ttl, "new_ttl": self.new_ttl,
                "kept": self.kept, "why": self.why, "removes": self.removes}


@dataclass
class ZonePlan:
    zone: str
    host: str
    host_class: str
    domains: list[str]
    changes: list[Change] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)  # records without a known value
    foreign: int = 0  # records left alone
    managed: int = 0  # mail records found at the host
    limits: tuple[float, float, int] = (0.3, 0.3, 10)
    _octo: Any = field(default=None, repr=False)
    _provider: Any = field(default=None, repr=False)
    _desired: Any = field(default=None, repr=False)
    _scope: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def deletes(self) -> list[Change]:
        return [c for c in self.changes if c.removes]

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for c in self.changes:
            out[c.action] += 1
        return out

    def safety_problem(self) -> str | None:
        """Why octoDNS's limits refuse this plan, or None (shares of the managed records)."""
        max_update, max_delete, min_existing = self.limits
        if self.managed < min_existing or not self.managed:
            return None
        counts = self.counts()
        for action, limit in (("update", max_update), ("delete", max_delete)):
            share = counts[action] / self.managed
            if share > limit:
                return (f"{self.zone} at DNS host {self.host!r}: {counts[action]} {action}s of "
                        f"{self.managed} mail records ({share:.0%}) exceed the limit of "
                        f"{limit:.0%}; review the plan, then pass --force")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"zone": self.zone, "host": self.host, "host_class": self.host_class,
                "domains": self.domains, "counts": self.counts(),
                "changes": [c.as_dict() for c in self.changes],
                "unpublished": self.unpublished, "foreign_records_untouched": self.foreign,
                "managed_records": self.managed}


@dataclass
class DnsPlan:
    zones: list[ZonePlan]
    skipped: list[str] = field(default_factory=list)  # declared domains without a DNS host
    server: list[RelayChange] = field(default_factory=list)  # the mail server's relay files
    notes: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return any(z.changes for z in self.zones) or bool(self.server)

    @property
    def checksum(self) -> str:
        """sha256 of what the user reviews: `apply --checksum` refuses any other plan."""
        body = json.dumps([[z.as_dict() for z in self.zones],
                           [c.as_dict() for c in self.server]], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "checksum": self.checksum,
                "has_changes": self.has_changes, "skipped": self.skipped,
                "zones": [z.as_dict() for z in self.zones],
                "server_relay": [c.as_dict() for c in self.server], "notes": self.notes}


@dataclass
class ZoneOutcome:
    zone: str
    host: str
    applied: bool
    changes: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"zone": self.zone, "host": self.host, "applied": self.applied,
                "changes": self.changes, "error": self.error}
