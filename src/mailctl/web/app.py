"""`create_app(services, settings, secrets)`: the console as an ASGI app.

Everything the pages need is injected (STYLE 2.7): the services seam, the
settings, the resolved secrets and the audit log; nothing is a module global,
so tests and the benchmark build consoles over real sandboxes side by side.
Every POST route is registered through `Console.post`, which checks the CSRF
token before the handler runs: a state-changing route without the check
cannot be written by accident.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mailctl.web import errors as E
from mailctl.web.audit import AuditLog
from mailctl.web.auth import SESSION_KEY, Identity, OidcClient
from mailctl.web.security import (
    CSRF_FIELD,
    HeadersMiddleware,
    RateLimiter,
    check_csrf,
    content_security_policy,
    csrf_token,
    origin_of,
)
from mailctl.web.session import EXPIRED, INVALID, SessionMiddleware

if TYPE_CHECKING:
    from mailctl.secret import Secret
    from mailctl.web.services import ConsoleServices
    from mailctl.web.settings import ConsoleSettings

log = logging.getLogger("mailctl.web")
HERE = Path(__file__).parent
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
FormHandler = Callable[[Request, FormData], Awaitable[Response]]


@dataclass(frozen=True)
class ConsoleSecrets:
    client_secret: Secret | None
    session_key: bytes
    break_glass_hash: str | None = None


class Console:
    """What every page handler shares; one per app."""

    def __init__(self, services: ConsoleServices, settings: ConsoleSettings,
                 secrets: ConsoleSecrets, audit: AuditLog, public_url: str) -> None:
        self.services = services
        self.settings = settings
        self.secrets = secrets
        self.audit_log = audit
        self.public_url = public_url.rstrip("/")
        self.base = urlsplit(self.public_url).path.rstrip("/")
        self.origin = origin_of(self.public_url)
        self.secure = self.public_url.startswith("https://") or settings.tls_proxy
        self.limiter = RateLimiter(settings.rate_limit.per_minute, settings.rate_limit.burst)
        self.oidc: OidcClient | None = None
        if settings.oidc is not None and secrets.client_secret is not None:
            self.oidc = OidcClient(settings.oidc, secrets.client_secret,
                                   f"{self.public_url}/auth/callback", f"{self.public_url}/")
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.auto_reload = False  # templates ship with the package: no stat() per render
        env.filters.update(when=_when, size=_size, ago=_ago)
        env.globals.update(base=self.base, csrf_field=CSRF_FIELD,
                           break_glass=settings.break_glass.enabled, oidc=self.oidc is not None)

    # -- pages -------------------------------------------------------------------
    def page(self, request: Request, template: str, status: int = 200,
             **context: Any) -> HTMLResponse:
        context.setdefault("who", self.identity(request))
        context["csrf"] = csrf_token(request.session)
        response: HTMLResponse = self.templates.TemplateResponse(
            request, template, context, status_code=status)
        return response

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(f"{self.base}{path}", status_code=303)

    def error_page(self, request: Request, exc: E.ConsoleError) -> HTMLResponse:
        response = self.page(request, "error.html", exc.status, error=exc,
                             who=self.identity(request))
        if exc.retry_after:
            response.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        return response

    # -- who ---------------------------------------------------------------------
    def identity(self, request: Request) -> Identity | None:
        who = Identity.from_session(request.session.get(SESSION_KEY))
        if who is not None and who.expires < time.time():
            request.session.clear()
            request.scope["session_problem"] = EXPIRED
            return None
        return who

    def require(self, request: Request) -> Identity:
        who = self.identity(request)
        if who is not None:
            return who
        problem = request.scope.get("session_problem")
        if problem == EXPIRED:
            minutes = int(self.settings.session.idle_timeout // 60)
            raise E.SessionExpired(f"you were signed out after {minutes} minutes without "
                                   "activity (or your session reached its maximum age). "
                                   "Sign in again to continue.")
        if problem == INVALID:
            raise E.NotSignedIn("your session cookie was not valid (it was changed, or the "
                                "console's key changed). Sign in again.")
        raise E.NotSignedIn("this page needs you to sign in first.")

    def require_admin(self, request: Request, domain: str | None = None) -> Identity:
        who = self.require(request)
        if not who.is_admin:
            raise E.Forbidden("this page is for administrators.")
        if domain is not None:
            if domain not in self.services.domain_names():
                raise E.NotFound(f"no domain {domain} is declared")
            if not who.can_admin(domain):
                raise E.Forbidden(f"you do not administer {domain}.")
        return who

    def require_user(self, request: Request) -> tuple[Identity, str]:
        who = self.require(request)
        if who.mailbox is None:
            raise E.Forbidden("no mailbox declared in mailctl belongs to your address.")
        return who, who.mailbox

    # -- plumbing ----------------------------------------------------------------
    def client(self, request: Request) -> str:
        from mailctl.accounts.web import client_address

        return client_address(request, self.settings.trusted_proxies)

    def limit(self, request: Request) -> None:
        wait = self.limiter.take(self.client(request))
        if wait:
            raise E.TooManyRequests("too many sign-in attempts from your address; wait a "
                                    "little and try again.", wait)

    def audit(self, request: Request, who: Identity | None, action: str, target: str = "",
              outcome: str = "ok", detail: str = "") -> None:
        self.audit_log.record(who.actor if who else "anonymous", action, target, outcome,
                              via=who.via if who else "", client=self.client(request),
                              detail=detail)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking service call on a worker thread; library errors become pages."""
        try:
            return await run_in_threadpool(fn, *args)
        except E.ConsoleError:
            raise
        except Exception as exc:
            mapped = E.from_library(exc)
            if type(mapped) is E.ConsoleError:
                from mailctl.secret import scrub

                log.error("console: %s failed: %s: %s", getattr(fn, "__name__", "call"),
                          type(exc).__name__, scrub(str(exc)))
            raise mapped from None

    def get(self, path: str, handler: Handler) -> Route:
        return Route(path, handler, methods=["GET"])

    def post(self, path: str, handler: FormHandler) -> Route:
        async def checked(request: Request) -> Response:
            form = await request.form(max_files=0, max_fields=64)
            check_csrf(request.session, form.get(CSRF_FIELD), request.headers.get("origin"),
                       self.origin)
            return await handler(request, form)

        checked.__name__ = handler.__name__
        return Route(path, checked, methods=["POST"])


def _when(ts: float | None) -> str:
    return "never" if not ts else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    s = max(0, int(time.time() - ts))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return "just now"


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n == 0:
        return "0"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def create_app(services: ConsoleServices, settings: ConsoleSettings,
               secrets: ConsoleSecrets, *, audit: AuditLog | None = None,
               public_url: str | None = None) -> Starlette:
    """The console (under the public URL's path prefix) plus autoconfig/autodiscover at /."""
    from mailctl.web import views_admin, views_auth, views_mailapps, views_user

    url = public_url or settings.public_url or f"http://{settings.host}:{settings.port}"
    c = Console(services, settings, secrets, audit or AuditLog(None), url)
    routes: list[BaseRoute] = [*views_auth.routes(c), *views_admin.routes(c),
                               *views_user.routes(c),
                               Mount("/static", StaticFiles(directory=HERE / "static"),
                                     name="static")]

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            err: E.ConsoleError = (E.NotFound("there is no such page.") if exc.status_code == 404
                                   else E.BadInput(str(exc.detail)))
            err.status = exc.status_code
        else:
            err = exc if isinstance(exc, E.ConsoleError) else E.from_library(exc)
        return c.error_page(request, err)

    async def crash(request: Request, exc: Exception) -> Response:
        from mailctl.secret import scrub

        log.error("console: internal error: %s: %s", type(exc).__name__, scrub(str(exc)))
        return c.error_page(request, E.ConsoleError("internal error; the console's log has "
                                                    "the details."))

    inner = Starlette(routes=routes, exception_handlers={
        E.ConsoleError: on_error, HTTPException: on_error, Exception: crash})
    form_targets = [origin_of(settings.oidc.issuer)] if settings.oidc else []
    console_app: Any = HeadersMiddleware(inner, content_security_policy(form_targets),
                                         c.secure, f"{c.base}/static/")
    console_app = SessionMiddleware(console_app, secrets.session_key,
                                    idle_timeout=settings.session.idle_timeout,
                                    path=c.base or "/", secure=c.secure,
                                    skip_prefix=f"{c.base}/static/")
    app = Starlette(routes=[*views_mailapps.routes(services), Mount(c.base, app=console_app)])
    app.state.console = c
    app.state.console_routes = routes
    return app
