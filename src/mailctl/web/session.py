"""Signed session cookies with an idle timeout, and why a session was not accepted.

Why not Starlette's SessionMiddleware: it silently drops an expired or
tampered cookie, and the console must tell "your session expired" apart from
"you never signed in" to show a clear page. The cookie holds the session
itself (JSON, signed with itsdangerous, not encrypted: it carries no secret),
re-signed on every response, so its signature's age is the idle time; the
absolute lifetime is checked by the app (`Identity.expires`). HttpOnly,
SameSite=Lax (the OIDC callback is a top-level cross-site GET) and Secure
when the console is reached over HTTPS.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "mailctl_console"  # not `_session`: the OP on the same host may use that name

# What `scope["session_problem"]` can say about the cookie that came in.
EXPIRED = "expired"
INVALID = "invalid"


class SessionMiddleware:
    def __init__(self, app: ASGIApp, secret: bytes, *, idle_timeout: float, path: str,
                 secure: bool, skip_prefix: str = "/static/") -> None:
        self.app = app
        self.signer = TimestampSigner(secret, salt="mailctl.console.session")
        self.idle = idle_timeout
        self.path = path
        self.secure = secure
        self.skip = skip_prefix

    def load(self, raw: str | None) -> tuple[dict[str, Any], str | None]:
        if not raw:
            return {}, None
        try:
            data = self.signer.unsign(raw.encode(), max_age=int(self.idle))
        except SignatureExpired:
            return {}, EXPIRED
        except BadSignature:
            return {}, INVALID
        try:
            value = json.loads(base64.urlsafe_b64decode(data))
        except ValueError:
            return {}, INVALID
        return (value, None) if isinstance(value, dict) else ({}, INVALID)

    def dump(self, session: dict[str, Any]) -> str:
        data = base64.urlsafe_b64encode(json.dumps(session, separators=(",", ":")).encode())
        return self.signer.sign(data).decode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = HTTPConnection(scope).cookies.get(COOKIE)
        scope["session"], scope["session_problem"] = self.load(raw)
        quiet = scope["path"].startswith(self.skip)  # static files: no cookie churn

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and not quiet:
                session = scope["session"]
                headers = MutableHeaders(scope=message)
                if session:
                    headers.append("Set-Cookie", self._cookie(self.dump(session),
                                                              int(self.idle)))
                elif raw:
                    headers.append("Set-Cookie", self._cookie("", 0))
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _cookie(self, value: str, max_age: int) -> str:
        flags = f"; Path={self.path}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        if max_age == 0:
            flags += "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        if self.secure:
            flags += "; Secure"
        return f"{COOKIE}={value}{flags}"
