"""Change and outcome types shared by the planner and the providers.

Kept free of provider code so that providers can import it without pulling
in the planner, and the planner can import it without any provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailctl.model import Kind, MailObject


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-"}[self.value]


_ACTION_ORDER = {Action.CREATE: 0, Action.UPDATE: 1, Action.DELETE: 2}


@dataclass(slots=True)
class Change:
    action: Action
    kind: Kind
    domain: str
    key: str  # the address (or the domain, for Kind.DOMAIN)
    provider: str  # name of the provider instance in the config
    desired: MailObject | None = None
    current: MailObject | None = None
    # field -> (current, desired); only for updates
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, str, str, int, str]:
        """Creates and updates go domain -> mailbox -> identity -> alias -> forward ->
        rewrite (`Kind.order`); deletes come last,
        in the reverse kind order, so nothing points at an object being removed.
        A domain with a mirror has two providers: their changes are grouped."""
        order = _ACTION_ORDER[self.action]
        if self.action is Action.DELETE:
            return (order, self.domain, self.provider, -self.kind.order, self.key)
        return (order, self.domain, self.provider, self.kind.order, self.key)

    def describe(self) -> str:
        return f"{self.action.value} {self.kind.value} {self.key}"


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(slots=True)
class Outcome:
    change: Change
    status: Status
    error: str | None = None  # the failure, or a note on success
    # The object already existed exactly as declared and was taken over as is:
    # nothing was created (so, e.g., no password of ours was set).
    adopted: bool = False
    # On failure, the ProviderError kind (auth, conflict, unavailable, ...), so
    # callers branch on it instead of on message text.
    kind: str | None = None
