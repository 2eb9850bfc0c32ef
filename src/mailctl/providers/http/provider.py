"""What every hosted provider shares: credentials, phased concurrent apply, adoption.

An apply runs in phases that follow the change order (domains, then
mailboxes, then aliases and forwards; deletes afterwards in reverse), each
phase concurrently within the client's concurrency and rate limit. When a
failure says later calls cannot succeed either — bad credentials, a rate
limit that persists, a server gone away (every retry of a request failed to
connect or get an answer) — the apply stops starting new calls and reports
the rest as not attempted, so the report is exact and a re-run finishes the
job.

A single lost answer is not that: the object is re-read. A create that got
through is adopted (and completed if part of it is missing); one the re-read
shows absent is sent again, which cannot duplicate it because it was just
seen not to exist. Updates and deletes are settled the same way.
"""

from __future__ import annotations

import random
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from mailctl.model import Kind, MailObject
from mailctl.providers.base import ErrorKind, Provider, ProviderError, comparable
from mailctl.providers.http.client import (
    AmbiguousError,
    HttpClient,
    HttpSettings,
    LostAnswer,
    RateLimit,
    TransportFailure,
)
from mailctl.provision.changes import Action, Change, Outcome, Status
from mailctl.secret import Secret, scrub

_STOPPING = (ErrorKind.AUTH, ErrorKind.RATE_LIMITED)


def field_diff(desired: MailObject, current: MailObject) -> dict[str, tuple[Any, Any]]:
    want = comparable(desired.managed_fields())
    have = comparable(current.managed_fields())
    return {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}


def phases(changes: Sequence[Change]) -> list[list[int]]:
    """Indexes of `changes` grouped into consecutive steps that may run concurrently."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, ch in enumerate(changes):
        kind = ch.kind.order if ch.action is not Action.DELETE else -ch.kind.order
        step = 1 if ch.action is Action.DELETE else 0
        groups.setdefault((step, kind), []).append(i)
    return [groups[k] for k in sorted(groups)]


class HttpProvider(Provider):
    """Base for REST providers; subclasses implement reads and one change at a time."""

    label: ClassVar[str]
    secret_field: ClassVar[str]
    default_rate_limit: ClassVar[RateLimit | None] = None
    auth_hint: ClassVar[str] = ""

    def __init__(self, name: str, settings: Any, base_dir: Path) -> None:
        super().__init__(name, settings, base_dir)
        self._client: HttpClient | None = None
        self._lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------

    @property
    def hs(self) -> HttpSettings:
        assert isinstance(self.settings, HttpSettings)
        return self.settings

    @property
    def credential_ref(self) -> str:
        return str(getattr(self.settings, self.secret_field))

    def secret(self) -> Secret:
        from mailctl.config.refs import RefError, Resolver

        try:
            return Resolver(self.base_dir).resolve(self.credential_ref)
        except RefError as exc:
            raise ProviderError(ErrorKind.AUTH, str(exc), provider=self.name,
                                detail=exc.hint) from None

    def rate_limit(self) -> RateLimit | None:
        rl = self.hs.rate_limit or self.default_rate_limit
        return rl if rl is not None and rl.enabled else None

    @property
    def http(self) -> HttpClient:
        with self._lock:
            if self._client is None:
                self._client = self.make_client()
            return self._client

    @abstractmethod
    def make_client(self) -> HttpClient:
        """The configured client (auth, headers, response classifier)."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def error(self, kind: ErrorKind, message: str, obj: str | None = None,
              detail: str | None = None) -> ProviderError:
        return ProviderError(kind, message, provider=self.name, obj=obj, detail=detail)

    def require_domains(self, wanted: Sequence[str], held: Collection[str]) -> None:
        """For providers that cannot create domains: one clear error for the domains the
        account does not hold, found by the read, instead of a plan of creates that
        would each fail (and each spend a rate-limited request) at apply."""
        missing = [d for d in wanted if d not in held]
        if missing:
            what = "domain " + missing[0] if len(missing) == 1 else \
                "domains " + ", ".join(missing)
            raise self.error(
                ErrorKind.NOT_FOUND,
                f"{self.label} does not hold {what}{self.account_hint()}: add it in "
                f"{self.label}'s admin first (mailctl does not create {self.label} domains), "
                "or fix the domain's name or `provider:` in the config",
                ", ".join(missing))

    def account_hint(self) -> str:
        """Which account at the provider, for messages (`` for the account admin@...``)."""
        return ""

    def map_concurrently(self, fn: Callable[[str], Any], items: Sequence[str]) -> list[Any]:
        """Reads of several domains at once; the first failure is raised."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.hs.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- apply -------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(changes)
        stop: list[str] = []

        def run(i: int) -> None:
            ch = changes[i]
            if stop:
                outcomes[i] = Outcome(ch, Status.NOT_ATTEMPTED, f"not attempted: {stop[0]}")
                return
            try:
                note = self.apply_one(ch)
            except ProviderError as exc:
                if isinstance(exc, TransportFailure) or exc.kind in _STOPPING:
                    stop.append(self._stop_reason(exc))
                outcomes[i] = Outcome(ch, Status.FAILED, scrub(str(exc)), kind=exc.kind.value)
            except Exception as exc:  # a bug in one change must not hide the others
                outcomes[i] = Outcome(ch, Status.FAILED, scrub(
                    f"{self.name}: {ch.key}: internal error ({type(exc).__name__}: {exc}); "
                    "please report it — the other changes went on"))
            else:
                outcomes[i] = Outcome(ch, Status.DONE, note,
                                      adopted=bool(note) and "adopted" in str(note))

        with ThreadPoolExecutor(max_workers=self.hs.concurrency) as pool:
            for step in phases(changes):
                list(pool.map(run, step))
        return [o if o is not None else Outcome(changes[i], Status.NOT_ATTEMPTED, "skipped")
                for i, o in enumerate(outcomes)]

    def _stop_reason(self, exc: ProviderError) -> str:
        why = {ErrorKind.AUTH: f"{self.label} refused the credential",
               ErrorKind.RATE_LIMITED: f"{self.label} kept refusing requests (rate limit)",
               }.get(exc.kind, f"{self.label} stopped answering")
        return (f"{why} on an earlier change ({exc.obj or 'a read'}); re-run `mailctl apply` "
                "once that is fixed: what was done is not repeated")

    def apply_one(self, ch: Change) -> str | None:
        """Perform one change; a returned note is shown next to `done`."""
        if ch.kind is Kind.DOMAIN:
            if ch.action is Action.CREATE:
                return self.create_or_adopt(ch, lambda: self.create_domain(ch.key),
                                            lambda: None)
            raise self.error(ErrorKind.INVALID, "mailctl does not delete domains; delete it "
                             f"in {self.label}'s admin if that is really wanted", ch.key)
        if ch.action is Action.CREATE:
            obj = ch.desired
            assert obj is not None
            return self.create_or_adopt(ch, lambda: self.create(obj),
                                        lambda: self.fetch(ch.kind, ch.key))
        if ch.action is Action.UPDATE:
            return self.update_checked(ch)
        return self.delete_checked(ch)

    def _resend(self, failure: ProviderError, attempt: int) -> bool:
        """Whether to send a change again after `failure` (the re-read has settled that
        doing so cannot duplicate anything): only after a lost answer, after the usual
        backoff, and not past `retries`. When every attempt lost its connection the
        server is failing, not blinking: that stops the apply, like a server gone."""
        if not isinstance(failure, LostAnswer):
            return False
        if attempt >= self.hs.retries:
            raise TransportFailure(
                ErrorKind.UNAVAILABLE,
                f"{self.label} dropped the connection on all {attempt + 1} attempts to "
                "send this change; check that it is up and healthy, then re-run: what was "
                "done is not repeated", provider=self.name, obj=failure.obj,
                retryable=True, detail=failure.detail) from None
        time.sleep(self.hs.retry_backoff * (2 ** attempt) * random.uniform(0.5, 1.0))
        return True

    def _reread(self, failure: ProviderError, fetch: Callable[[], Any]) -> Any:
        """Re-read after `failure`; a server gone away wins over the original error."""
        try:
            return fetch()
        except TransportFailure:
            raise
        except ProviderError:
            raise failure from None

    def create_or_adopt(
        self, ch: Change, create: Callable[[], None], fetch: Callable[[], MailObject | None]
    ) -> str | None:
        """Create; when the provider says it exists (or the answer was lost), re-read.

        A match is adopted as a no-op; a difference is drift, reported and left alone
        (create-only by default, like the rest of mailctl) — unless it was our own create
        whose answer was lost, which is completed. A lost create the re-read does not
        find is sent again (verified absent: it cannot be duplicated)."""
        lost_once = False
        for attempt in range(self.hs.retries + 1):
            try:
                create()
                return "created (an earlier answer was lost)" if lost_once else None
            except ProviderError as exc:
                failure = exc
            if not (failure.kind is ErrorKind.CONFLICT or isinstance(failure, AmbiguousError)
                    or self.maybe_conflict(failure)):
                raise failure
            lost = isinstance(failure, AmbiguousError) or lost_once
            lost_once = lost_once or isinstance(failure, LostAnswer)
            if ch.kind is Kind.DOMAIN:
                if self._reread(failure, lambda: self.domain_exists(ch.key)):
                    return None if lost else "already existed; adopted"
                if self._resend(failure, attempt):
                    continue
                raise failure
            current = self._reread(failure, fetch)
            if current is None:
                if self._resend(failure, attempt):
                    continue
                raise failure
            assert ch.desired is not None
            diff = field_diff(ch.desired, current)
            if diff and lost:
                # Ours, half done (e.g. Migadu's autoresponder goes in a second call).
                self.update(ch.desired, {k: v for k, (_, v) in diff.items()})
                return None
            if diff:
                shown = "; ".join(f"{k}: {a!r} here, {b!r} declared"
                                  for k, (a, b) in diff.items())
                raise self.error(
                    ErrorKind.CONFLICT,
                    f"already exists with different settings ({shown}); left unchanged "
                    "— run `mailctl apply --reconcile` to make it match", ch.key)
            if lost:
                return None  # our own create got through; only its answer was lost
            return "already existed with the declared settings; adopted"
        raise AssertionError("unreachable")  # pragma: no cover

    def update_checked(self, ch: Change) -> str | None:
        """Update only what differs; after a lost answer, re-read and send what is left."""
        assert ch.desired is not None
        fields = {k: v for k, (_, v) in ch.diff.items()}
        for attempt in range(self.hs.retries + 1):
            try:
                self.update(ch.desired, fields)
                return None
            except LostAnswer as exc:
                current = self._reread(exc, lambda: self.fetch(ch.kind, ch.key))
                if current is None:
                    raise
                diff = field_diff(ch.desired, current)
                if not diff:
                    return None
                self._resend(exc, attempt)
                fields = {k: v for k, (_, v) in diff.items()}
        raise AssertionError("unreachable")  # pragma: no cover

    def maybe_conflict(self, exc: ProviderError) -> bool:
        """Providers whose "exists" is indistinguishable from other errors re-read on these."""
        return False

    def domain_exists(self, domain: str) -> bool:
        return False

    def delete_checked(self, ch: Change) -> str | None:
        """Delete; any failure is checked by re-reading, since gone is what was wanted.
        A lost answer with the object still there is sent again (deleting is repeatable)."""
        for attempt in range(self.hs.retries + 1):
            try:
                self.delete(ch.kind, ch.key)
                return None
            except ProviderError as exc:
                if exc.kind in _STOPPING or isinstance(exc, TransportFailure):
                    raise
                gone = self._reread(exc, lambda: self.fetch(ch.kind, ch.key)) is None
                if gone:
                    return None if isinstance(exc, AmbiguousError) else "was already gone"
                if not self._resend(exc, attempt):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def create_domain(self, domain: str) -> None:
        raise self.error(ErrorKind.INVALID, "this provider does not create domains", domain)

    @abstractmethod
    def create(self, obj: MailObject) -> None: ...

    @abstractmethod
    def update(self, obj: MailObject, fields: dict[str, Any]) -> None: ...

    @abstractmethod
    def delete(self, kind: Kind, key: str) -> None: ...

    @abstractmethod
    def fetch(self, kind: Kind, key: str) -> MailObject | None:
        """The object as the provider holds it now, or None."""
