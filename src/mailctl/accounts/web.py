"""The public API Delta Chat talks to: `POST /?t=TOKEN` and `POST /new_email?t=TOKEN`.

Answers like mailadm so existing QR codes keep working, but every error is
JSON (`status_code`, `type: "error"`, `reason`) — the app shows `reason` and
nothing useful otherwise. The blocking work runs on a thread pool; a request
that outlives `provider_timeout` gets 504 and its half-made account is undone
by the worker (see service.Ticket). The query string holds the token secret,
so uvicorn's access log is off and our own log line omits it.
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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


def error_response(status: int, reason: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return JSONResponse({"status_code": status, "type": "error", "reason": reason},
                        status_code=status, headers=headers)


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


def create_app(service: AccountService, settings: AccountsSettings | None = None) -> Starlette:
    cfg = settings or service.settings
    limiter = RateLimiter(service.store, cfg.rate_limit)
    pool = ThreadPoolExecutor(max_workers=cfg.web.threads, thread_name_prefix="redeem")
    timeout = cfg.web.provider_timeout

    async def redeem(request: Request) -> JSONResponse:
        started = time.monotonic()
        client = client_address(request, cfg.web.trusted_proxies, cfg.web.client_address_header)
        try:
            wait = await asyncio.to_thread(limiter.take, client)  # a short store transaction
        except AccountsError as exc:
            resp = _from_error(exc)
            _log(request, client, resp.status_code, started)
            return resp
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
                resp = _from_error(ProviderTimeout("the mail provider did not answer in time; "
                                                   "try again later"))
                _log(request, client, resp.status_code, started)
                return resp
            creds = await asyncio.wrap_future(fut)  # already committed: deliver it
        except AccountsError as exc:
            resp = _from_error(exc)
            _log(request, client, resp.status_code, started)
            return resp
        _log(request, client, 200, started)
        return JSONResponse(creds.as_api())

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        reason = "use POST /?t=TOKEN" if exc.status_code == 405 else str(exc.detail)
        return error_response(exc.status_code, reason)

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal error")

    app = Starlette(
        routes=[Route("/", redeem, methods=["POST"]),
                Route("/new_email", redeem, methods=["POST"]),
                Route("/health", health, methods=["GET"])],
        exception_handlers={HTTPException: http_error, Exception: crash},
    )
    app.state.service = service
    app.state.pool = pool
    return app


def _retrieve(fut: Future[Any]) -> None:
    """Abandoned requests still finish; their exceptions are expected, not 'unretrieved'."""
    if not fut.cancelled():
        fut.exception()


def _log(request: Request, client: str, status: int, started: float) -> None:
    log.info("%s %s %s %d %.0fms", client, request.method, request.url.path, status,
             (time.monotonic() - started) * 1000)


def app_from_env() -> Starlette:
    """Factory for `mailctl serve --workers N`: each worker process opens its own store."""
    from mailctl.accounts.context import open_service
    from mailctl.config.load import load_config

    config = load_config(Path(os.environ["MAILCTL_CONFIG"]))
    return create_app(open_service(config))
