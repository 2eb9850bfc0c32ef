"""The public API Delta Chat talks to: `POST /?t=TOKEN` and `POST /new_email?t=TOKEN`.

Answers like mailadm so existing QR codes keep working, but every error is
JSON (`status_code`, `type: "error"`, `reason`) — the app shows `reason` and
nothing useful otherwise. The blocking work runs on a thread pool; a request
that outlives `provider_timeout` gets 504 and its half-made account is undone
by the worker (see service.Ticket). The query string holds the token secret,
so uvicorn's access log is off and our own log line (AccessLog, one per
answer, refusals included) omits it; no answer is ever a redirect, which
would repeat the secret to wherever it points.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailctl.accounts.errors import AccountsError, ProviderTimeout, RateLimited
from mailctl.accounts.service import AccountService, Credentials, Ticket
from mailctl.accounts.settings import AccountsSettings, RateLimitSettings
from mailctl.accounts.store import Store

log = logging.getLogger("mailctl.accounts.web")


class RateLimiter:
    """Redemptions per client address, counted in the store: the limit holds across
    every API worker process and host that share it (see Store.take_rate).

    `take` returns the seconds to wait, or 0. Addresses are stored only as an HMAC
    keyed with a random per-store salt, and only while the client's bucket is not
    full again; those rows are pruned here at most once a minute per process."""

    PRUNE_EVERY = 60.0

    def __init__(self, store: Store, settings: RateLimitSettings) -> None:
        self.store = store
        self.interval = 60.0 / settings.per_minute if settings.per_minute > 0 else 0.0
        self.burst = settings.burst
        self._salt: bytes | None = None
        self._next_prune = 0.0
        self._lock = threading.Lock()

    def key(self, client: str) -> str:
        with self._lock:
            if self._salt is None:
                self._salt = self.store.rate_limit_salt()
            salt = self._salt
        return hmac.new(salt, client.encode(), hashlib.sha256).hexdigest()

    def take(self, client: str, now: float | None = None) -> float:
        if not self.interval:
            return 0.0
        wait = self.store.take_rate(self.key(client), self.interval, self.burst, now)
        self._maybe_prune(now)
        return wait

    def _maybe_prune(self, now: float | None) -> None:
        t = time.monotonic()
        with self._lock:
            if t < self._next_prune:
                return
            self._next_prune = t + self.PRUNE_EVERY
        with contextlib.suppress(AccountsError):  # busy: the next prune will do
            self.store.prune_rate_limits(now)


# On every answer: a password must not sit in a cache, and no browser may sniff a type.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ROUTES = ("/", "/new_email", "/new_email/")  # both spellings: no redirect (see create_app)
_KNOWN_PATHS = frozenset((*ROUTES, "/health"))
_SECRET_LIKE = re.compile(r"[A-Za-z0-9_-]{12,}")


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def error_response(status: int, reason: str, retry_after: float | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if retry_after:
        extra["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return json_response({"status_code": status, "type": "error", "reason": reason}, status,
                         extra)


def _from_error(exc: AccountsError) -> JSONResponse:
    return error_response(exc.status, exc.reason, exc.retry_after)


def client_address(request: Request, trusted: list[str],
                   header: str = "X-Forwarded-For") -> str:
    """The peer; or, only when the peer is one of our trusted proxies, the last hop of
    `header` (X-Forwarded-For by default) added before our trusted proxies."""
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get(header, "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return peer


def _in(addr: str, nets: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in nets)


class AccessLog:
    """One log line per answer, whoever produced it (route, 404, 405, 429, a crash).

    The query string, where the token travels, is never logged. A path we do not
    serve is the client's free text: it is escaped, cut short, and long runs of
    token-like characters in it are masked."""

    def __init__(self, app: ASGIApp, trusted: list[str], header: str) -> None:
        self.app = app
        self.trusted = trusted
        self.header = header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # unless a response starts: an exception goes on to the crash handler

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = client_address(Request(scope), self.trusted, self.header)
            log.info("%s %s %s %d %.0fms", client, _printable(scope["method"], 16),
                     _log_path(scope["path"]), status, (time.monotonic() - started) * 1000)


def _printable(text: str, limit: int) -> str:
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return cut.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")


def _log_path(path: str) -> str:
    if path in _KNOWN_PATHS:
        return path
    return _printable(_SECRET_LIKE.sub("***", path), 64)


def create_app(service: AccountService, settings: AccountsSettings | None = None,
               prune_interval: float = 0.0) -> Starlette:
    """`prune_interval` > 0: prune expired accounts that often while the app runs
    (see schedule.py); `mailctl serve` passes `accounts.prune_interval`."""
    cfg = settings or service.settings
    limiter = RateLimiter(service.store, cfg.rate_limit)
    pool = ThreadPoolExecutor(max_workers=cfg.web.threads, thread_name_prefix="redeem")
    timeout = cfg.web.provider_timeout

    async def redeem(request: Request) -> JSONResponse:
        client = client_address(request, cfg.web.trusted_proxies, cfg.web.client_address_header)
        try:
            wait = await asyncio.to_thread(limiter.take, client)  # a short store transaction
        except AccountsError as exc:
            return _from_error(exc)
        if wait:
            return _from_error(RateLimited("too many requests from your address; "
                                           "try again later", wait))
        secret = request.query_params.get("t", "")
        ticket = Ticket()
        fut: Future[Credentials] = pool.submit(service.redeem, secret, ticket)
        fut.add_done_callback(_retrieve)
        try:
            creds = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
        except TimeoutError:
            if ticket.abandon():
                return _from_error(ProviderTimeout("the mail provider did not answer in time; "
                                                   "try again later"))
            creds = await asyncio.wrap_future(fut)  # already committed: deliver it
        except AccountsError as exc:
            return _from_error(exc)
        return json_response(creds.as_api())

    async def health(request: Request) -> JSONResponse:
        return json_response({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        reason = "use POST /?t=TOKEN" if exc.status_code == 405 else str(exc.detail)
        return error_response(exc.status_code, reason, headers=exc.headers)  # 405: Allow

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal error")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if prune_interval > 0:
            from mailctl.accounts.schedule import ScheduledPrune

            task = asyncio.create_task(ScheduledPrune(service, prune_interval).loop())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[*(Route(path, redeem, methods=["POST"]) for path in ROUTES),
                Route("/health", health, methods=["GET"])],
        middleware=[Middleware(AccessLog, trusted=cfg.web.trusted_proxies,
                               header=cfg.web.client_address_header)],
        exception_handlers={HTTPException: http_error, Exception: crash},
        lifespan=lifespan,
    )
    # Starlette would answer `/new_email/?t=SECRET` with a redirect to http://<Host
    # header>/new_email?t=SECRET: the secret sent in clear to a host the client chose.
    app.router.redirect_slashes = False
    app.state.service = service
    app.state.pool = pool
    return app


def _retrieve(fut: Future[Any]) -> None:
    """Abandoned requests still finish; their exceptions are expected, not 'unretrieved'."""
    if not fut.cancelled():
        fut.exception()


def configure_logging() -> None:
    """Server log lines on stderr, through the secret scrubber, at INFO: the same in the
    `serve` process and in each worker process it spawns (those start with no handlers)."""
    from mailctl.secret import ScrubFilter

    handler = logging.StreamHandler()
    handler.addFilter(ScrubFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mailctl")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.INFO)


def app_from_env() -> Starlette:
    """Factory for `mailctl serve`: each worker process opens its own store.

    $MAILCTL_PRUNE_INTERVAL (set by `serve --prune-interval`) overrides the config."""
    from mailctl.accounts.context import open_service
    from mailctl.config.load import load_config

    if not logging.getLogger("mailctl").handlers:
        configure_logging()
    config = load_config(Path(os.environ["MAILCTL_CONFIG"]))
    service = open_service(config)
    override = os.environ.get("MAILCTL_PRUNE_INTERVAL")
    interval = float(override) if override else service.settings.prune_interval
    return create_app(service, prune_interval=interval)
