"""Sign in, sign out, break-glass: the only pages an anonymous visitor reaches."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailctl.web import errors as E
from mailctl.web.auth import (
    SESSION_KEY,
    Identity,
    break_glass_identity,
    resolve_identity,
    verify_password,
)
from mailctl.web.security import csrf_token

if TYPE_CHECKING:
    from mailctl.web.app import Console

log = logging.getLogger("mailctl.web")


def _home(c: Console, who: Identity) -> Response:
    return c.redirect("/admin" if who.is_admin else "/me")


def _sign_in(request: Request, who: Identity) -> None:
    """A fresh session for the new identity (nothing of the anonymous one carries over)."""
    request.session.clear()
    request.session[SESSION_KEY] = who.as_session()
    csrf_token(request.session)


def routes(c: Console) -> list[Route]:
    async def landing(request: Request) -> Response:
        who = c.identity(request)
        if who is not None:
            return _home(c, who)
        return c.page(request, "landing.html", problem=request.scope.get("session_problem"))

    async def login(request: Request) -> Response:
        if c.oidc is None:
            raise E.NotFound("single sign-on is not configured for this console.")
        c.limit(request)
        return await c.oidc.start(request)

    async def callback(request: Request) -> Response:
        if c.oidc is None:
            raise E.NotFound("single sign-on is not configured for this console.")
        c.limit(request)
        try:
            claims, id_token = await c.oidc.finish(request)
            assert c.settings.oidc is not None
            who = resolve_identity(
                claims, c.settings.access, c.settings.oidc.roles_claim,
                c.services.domain_names(), c.services.is_mailbox,
                c.settings.session.max_age, id_token)
        except E.ConsoleError as exc:
            request.session.clear()
            c.audit(request, None, "sign-in", "", "refused", exc.message)
            raise
        _sign_in(request, who)
        c.audit(request, who, "sign-in", who.mailbox or "")
        return _home(c, who)

    async def logout(request: Request, form: FormData) -> Response:
        who = c.identity(request)
        request.session.clear()
        c.audit(request, who, "sign-out")
        if who is not None and who.via == "oidc" and c.oidc is not None:
            url = await c.oidc.logout_url(who.id_token)
            if url:
                return RedirectResponse(url, status_code=303)
        return c.redirect("/signed-out")

    async def signed_out(request: Request) -> Response:
        return c.page(request, "signed_out.html", who=None)

    async def break_glass_form(request: Request) -> Response:
        if not c.settings.break_glass.enabled:
            raise E.NotFound("there is no such page.")
        return c.page(request, "break_glass.html", who=None)

    async def break_glass(request: Request, form: FormData) -> Response:
        bg = c.settings.break_glass
        if not bg.enabled or c.secrets.break_glass_hash is None:
            raise E.NotFound("there is no such page.")
        c.limit(request)
        user, password = str(form.get("username", "")), str(form.get("password", ""))
        ok = await run_in_threadpool(verify_password, password, c.secrets.break_glass_hash)
        if not ok or user != bg.username:
            c.audit(request, None, "break-glass sign-in", user[:64], "refused")
            raise E.SignInFailed("wrong username or password.")
        who = break_glass_identity(bg.username, c.settings.session.max_age)
        _sign_in(request, who)
        log.warning("console: break-glass sign-in by %s from %s", bg.username, c.client(request))
        c.audit(request, who, "break-glass sign-in")
        return _home(c, who)

    return [c.get("/", landing), c.get("/login", login), c.get("/auth/callback", callback),
            c.post("/logout", logout), c.get("/signed-out", signed_out),
            c.get("/break-glass", break_glass_form), c.post("/break-glass", break_glass)]
