"""Response headers, CSRF tokens and the sign-in rate limit.

Pages are served with a Content-Security-Policy that allows no script at all
(the console needs none), forbids framing, and limits where forms may go (the
identity provider's origin is allowed for the sign-out redirect). Every HTML
page is `Cache-Control: no-store`: several show a secret once (a new password,
an app password, a token's QR code), and one rule for all pages cannot forget one.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailctl.web.errors import CsrfRejected

CSRF_FIELD = "csrf"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(form_targets: list[str]) -> str:
    forms = " ".join(["'self'", *sorted(set(form_targets))])
    return ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
            f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'")


class HeadersMiddleware:
    def __init__(self, app: ASGIApp, csp: str, hsts: bool, static_prefix: str) -> None:
        self.app = app
        self.static = static_prefix
        self.fixed = [
            ("Content-Security-Policy", csp),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            self.fixed.append(("Strict-Transport-Security", "max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(self.static)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.fixed:
                    headers[name] = value
                if static:
                    headers["Cache-Control"] = "public, max-age=3600"
                else:
                    headers["Cache-Control"] = "no-store"
                    headers["Pragma"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_wrapper)


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's token, made on first use (anonymous sessions get one for the
    break-glass form too)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf(session: MutableMapping[str, Any], submitted: object,
               origin: str | None, expected_origin: str) -> None:
    """Raise CsrfRejected unless the form carries this session's token (and, when the
    browser says where the form came from, it came from the console's own origin)."""
    token = session.get(CSRF_FIELD)
    if origin and origin != "null" and origin != expected_origin:
        raise CsrfRejected("the form was sent from another site. Nothing was changed.")
    if not isinstance(token, str) or not isinstance(submitted, str) or not submitted:
        raise CsrfRejected("the form's security token is missing or your session changed "
                           "since the page was loaded. Nothing was changed: go back, reload "
                           "the page and try again.")
    if not hmac.compare_digest(token.encode(), submitted.encode()):
        raise CsrfRejected("the form's security token does not match your session. Nothing "
                           "was changed: go back, reload the page and try again.")


class RateLimiter:
    """A token bucket per client address, in this process.

    In memory on purpose: it guards sign-in attempts and callbacks of one console
    process (which holds no other state to share), and a restart forgets nothing
    that matters. The table is pruned of full buckets when it grows past `MAX`."""

    MAX = 10000

    def __init__(self, per_minute: float, burst: int) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0 if allowed, else seconds to wait."""
        if not self.interval:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) / self.interval)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                return (1.0 - tokens) * self.interval
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX:
                self._prune(now)
            return 0.0

    def _prune(self, now: float) -> None:
        full = [c for c, (t, at) in self._buckets.items()
                if t + (now - at) / self.interval >= self.burst]
        for c in full:
            del self._buckets[c]
