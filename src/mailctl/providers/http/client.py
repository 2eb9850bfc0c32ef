"""The one HTTP client every hosted provider uses.

Retrying is where provisioning scripts silently create duplicates or lose
track of what happened, so the rule here is strict: a request is retried only
when repeating it cannot change the outcome — a read, a call that is
idempotent by design (PUT/PATCH/DELETE of a named object), a request that
never left this machine (connect failures), or one the server refused
without processing (rate limits, after the pause the server asked for). A
create whose answer was lost raises `LostAnswer`; the provider then re-reads
and adopts, or sends it again only once the re-read shows it is not there.

One failed connection is not a server gone away: `TransportFailure` (which
stops an apply) is raised only once a request has failed on every one of its
`retries`, spread over the doubling `retry_backoff`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from mailctl.providers.base import ErrorKind, ProviderError, ProviderSettings
from mailctl.providers.http.limiter import RateLimiter
from mailctl.secret import scrub

log = logging.getLogger(__name__)


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    requests: int = Field(ge=1, description="at most this many requests ...")
    per_seconds: float = Field(gt=0, description="... in any window of this many seconds")
    backoff_seconds: float = Field(120.0, ge=0, description="pause after the server says 429/403")
    enabled: bool = True


class HttpSettings(ProviderSettings):
    """Settings every hosted provider shares; `url` is overridable (tests, self-hosting)."""

    url: str
    timeout: float = Field(30.0, gt=0)
    concurrency: int = Field(8, ge=1, le=64)
    retries: int = Field(3, ge=0, le=10)
    retry_backoff: float = Field(0.5, ge=0, description="first retry delay; doubles each time")
    rate_limit: RateLimit | None = None  # None: the provider's default
    verify_tls: bool = True


class TransportFailure(ProviderError):
    """The server could not be reached or stopped answering, on every retry over the
    backoff window: later calls will fail too."""


class AmbiguousError(ProviderError):
    """A non-idempotent request may have been applied (a 5xx, or its answer was lost)."""


class LostAnswer(AmbiguousError):
    """One connection failed after a non-idempotent request was sent: whether it was
    applied is settled by re-reading, not by sending it again blindly."""


Classifier = Callable[[httpx.Response, "HttpClient"], ProviderError | None]

_STATUS_KIND = {
    400: ErrorKind.INVALID, 404: ErrorKind.NOT_FOUND, 405: ErrorKind.INVALID,
    409: ErrorKind.CONFLICT, 422: ErrorKind.INVALID, 429: ErrorKind.RATE_LIMITED,
}
_IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


_GONE_HINT = ("; check that it is up and that `url` is right, then re-run: what was done "
              "is not repeated")
# What a refusal means and what to do, by kind (5xx and auth have their own messages).
_WHAT_TO_DO = {
    ErrorKind.INVALID: "it refused the request as invalid; fix what its answer names, then "
                       "re-run",
    ErrorKind.NOT_FOUND: "it does not have it (deleted meanwhile?); run `mailctl plan` to see "
                         "where things stand",
    ErrorKind.CONFLICT: "it conflicts with something it already holds; look at it in the "
                        "provider's admin, then re-run",
    ErrorKind.RATE_LIMITED: "it is rate-limiting these requests; wait a few minutes, then "
                            "re-run",
}
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
MAX_DETAIL = 160


def _short(text: str) -> str:
    """One line, bounded, scrubbed: an error body is never pasted whole into a report."""
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL:
        text = text[:MAX_DETAIL - 1].rstrip() + "…"
    return scrub(text)


def provider_message(resp: httpx.Response) -> str:
    """The provider's own words from an error body: its JSON message, or the title of
    an HTML error page (a proxy's 502), on one bounded line; never the page itself."""
    try:
        body: Any = resp.json()
    except ValueError:
        text = resp.text.strip()
        if not text:
            return f"HTTP {resp.status_code} {resp.reason_phrase}".strip()
        if "html" in resp.headers.get("content-type", "").lower() or text.startswith("<"):
            m = _TITLE.search(text)
            title = _short(_TAGS.sub(" ", m.group(1))) if m else ""
            return f"an HTML error page: {title}" if title else "an HTML error page"
        return _short(text)
    if isinstance(body, dict):
        for key in ("message", "error", "msg", "detail", "title"):
            value = body.get(key)
            if value:
                return _short(" ".join(map(str, value)) if isinstance(value, list)
                              else str(value))
    if isinstance(body, str) and body:
        return _short(body)
    return _short(str(body))


def retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpClient:
    def __init__(
        self,
        *,
        provider: str,
        label: str,
        settings: HttpSettings,
        credential: str,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        limiter: RateLimiter | None = None,
        classify: Classifier | None = None,
        auth_hint: str = "",
        base_url: str | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.provider = provider
        self.label = label  # "Migadu", "mailcow": how the user names the service
        self.settings = settings
        self.credential = credential  # the reference, e.g. ${env:MIGADU_KEY}; never the value
        self.auth_hint = auth_hint
        self.limiter = limiter
        # The provider's effective limit (its default when the YAML has no `rate_limit`):
        # its `backoff_seconds` is how long a refusal pauses everything.
        self.rate_limit = rate_limit if rate_limit is not None else settings.rate_limit
        self.classify = classify
        self.calls = 0
        self._count_lock = threading.Lock()
        self._gate = threading.BoundedSemaphore(settings.concurrency)
        n = settings.concurrency
        self._http = httpx.Client(
            base_url=(base_url or settings.url).rstrip("/") + "/",
            auth=auth,
            headers={"Accept": "application/json", "User-Agent": "mailctl", **(headers or {})},
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            verify=settings.verify_tls,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()
        if self.limiter is not None:
            self.limiter.save()

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        # The gate first: a request must not hold a rate-limit slot while it waits
        # for a connection, or its real send time would drift past the window.
        with self._gate:
            if self.limiter is None:
                yield
            else:
                with self.limiter.slot():
                    yield

    # -- errors ------------------------------------------------------------------

    def error(self, kind: ErrorKind, message: str, *, obj: str | None = None,
              retryable: bool = False, detail: str | None = None) -> ProviderError:
        return ProviderError(kind, message, provider=self.provider, obj=obj,
                             retryable=retryable, detail=detail)

    def auth_error(self, resp: httpx.Response, obj: str | None) -> ProviderError:
        what = "rejected" if resp.status_code == 401 else "refused access for"
        return self.error(
            ErrorKind.AUTH,
            f"{self.label} {what} the credential {self.credential} "
            f"(HTTP {resp.status_code}: {provider_message(resp)}); "
            f"check that {self.credential} holds a valid key{self.auth_hint}. "
            "Not retried: repeated auth failures can get this IP blocked",
            obj=obj,
        )

    def map_response(self, resp: httpx.Response, obj: str | None) -> ProviderError:
        if self.classify is not None:
            custom = self.classify(resp, self)
            if custom is not None:
                custom.obj = custom.obj or obj
                return custom
        code = resp.status_code
        if code in (401, 403):
            return self.auth_error(resp, obj)
        detail = provider_message(resp)
        if code >= 500:
            return self.error(
                ErrorKind.UNAVAILABLE,
                f"{self.label} failed on its side (HTTP {code} {resp.reason_phrase}); "
                "nothing to change in the config: re-run later (what is done is not "
                "repeated), and check the server's logs if it persists",
                obj=obj, retryable=True, detail=detail)
        kind = _STATUS_KIND.get(code, ErrorKind.UNKNOWN)
        todo = _WHAT_TO_DO.get(kind, "re-run; if it persists, look at the object in the "
                                     "provider's admin")
        return self.error(kind, f"{self.label} answered HTTP {code} {resp.reason_phrase}: "
                          f"{todo}", obj=obj, retryable=kind is ErrorKind.RATE_LIMITED,
                          detail=detail)

    # -- the request -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        obj: str | None = None,
        ok: tuple[int, ...] = (),
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send, retrying only where safe; 2xx and statuses in `ok` are returned."""
        safe = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        attempt = 0
        started = time.monotonic()
        while True:
            refused = sent = False
            try:
                with self._slot():
                    with self._count_lock:
                        self.calls += 1
                    resp = self._http.request(method, path, json=json, params=params)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                err: ProviderError = self._gone(f"cannot reach {self.label} at "
                                                f"{self.settings.url}", obj, exc)
            except httpx.TransportError as exc:
                sent = True
                what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                if not safe:
                    # One lost answer says nothing about the server: the provider
                    # re-reads to learn whether this request was applied.
                    raise LostAnswer(
                        ErrorKind.UNAVAILABLE,
                        f"the request to {self.label} {what} before an answer arrived",
                        provider=self.provider, obj=obj, detail=_why(exc)) from None
                err = self._gone(f"{self.label} at {self.settings.url} stopped answering "
                                 f"(the request {what})", obj, exc)
            else:
                if resp.status_code < 400 or resp.status_code in ok:
                    return resp
                sent = True
                err = self.map_response(resp, obj)
                if resp.status_code >= 500 and not safe:
                    err = AmbiguousError(err.kind, err.message, provider=err.provider,
                                         obj=obj, retryable=False, detail=err.detail)
                if err.kind is ErrorKind.RATE_LIMITED:
                    refused = True  # refused unprocessed: repeating it is safe
                    self._back_off(resp, retrying=attempt < self.settings.retries)
            if not (attempt < self.settings.retries and err.retryable
                    and (safe or refused or not sent)):
                if isinstance(err, TransportFailure):
                    tries = f" ({attempt + 1} attempts over " \
                            f"{time.monotonic() - started:.1f} s)" if attempt else ""
                    err.message += tries + _GONE_HINT
                raise err
            delay = self.settings.retry_backoff * (2 ** attempt)
            time.sleep(delay * random.uniform(0.5, 1.0))
            attempt += 1

    def _gone(self, message: str, obj: str | None, exc: Exception) -> TransportFailure:
        """(How often it was tried and what to do are added when it is raised.)"""
        return TransportFailure(ErrorKind.UNAVAILABLE, message, provider=self.provider,
                                obj=obj, retryable=True, detail=_why(exc))

    def _back_off(self, resp: httpx.Response, retrying: bool) -> None:
        """The server said "slow down": nobody sends anything for the pause it asked for
        (Retry-After), else the provider's `backoff_seconds`. The limiter remembers the
        pause at once, so the next process waits too, even when this one gives up."""
        pause = retry_after(resp)
        if pause is None:
            pause = self.rate_limit.backoff_seconds if self.rate_limit is not None else 1.0
        if self.limiter is not None:
            self.limiter.pause(pause)
        if retrying:
            log.warning("%s refused a request with HTTP %d (its rate limit): pausing %.3g s "
                        "before retrying", self.label, resp.status_code, pause)
            if self.limiter is None:
                time.sleep(pause)

    def get_json(self, path: str, *, params: dict[str, str] | None = None,
                 obj: str | None = None) -> Any:
        return decode(self.request("GET", path, params=params, obj=obj), self, obj)


def decode(resp: httpx.Response, client: HttpClient, obj: str | None = None) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise client.error(ErrorKind.UNKNOWN, f"{client.label} answered with invalid JSON",
                           obj=obj, detail=scrub(resp.text[:120])) from None


def _why(exc: Exception) -> str:
    return scrub(str(exc) or type(exc).__name__)[:160]
