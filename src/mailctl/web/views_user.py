"""A user's own mailbox: usage, mail app settings, app passwords, Delta Chat, password.

Only the mailbox of the verified email address the identity provider vouched
for; the address is never taken from the form or the URL. A secret (a new app
password, the DCLOGIN code carrying one) appears once, on a no-store page.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailctl.secret import Secret
from mailctl.web import errors as E
from mailctl.web.qr import qr_data_uri

if TYPE_CHECKING:
    from mailctl.web.app import Console
    from mailctl.web.mailapps import MailServers


def dclogin_payload(address: str, password: str, servers: MailServers) -> str:
    from mailctl.accounts.qr import dclogin
    from mailctl.accounts.settings import ServerEndpoint

    imap = ServerEndpoint(host=servers.imap.host, port=servers.imap.port,
                          security=servers.imap.security)
    smtp = ServerEndpoint(host=servers.smtp.host, port=servers.smtp.port,
                          security=servers.smtp.security)
    return dclogin(address, password, imap, smtp, servers.accept_invalid)


def routes(c: Console) -> list[Route]:
    s = c.services

    async def me(request: Request) -> Response:
        _, address = c.require_user(request)
        domain = address.rpartition("@")[2]
        caps = await c.call(s.capabilities, address)
        quota, used = await c.call(s.usage, address)
        servers = await c.call(s.mail_servers, domain)
        apps = await c.call(s.app_passwords, address) if caps.app_passwords else []
        return c.page(request, "me.html", address=address, caps=caps, quota=quota, used=used,
                      servers=servers, apps=apps)

    async def _new_app_password(request: Request, name: str, action: str
                                ) -> tuple[str, str, Secret]:
        who, address = c.require_user(request)
        try:
            entry, secret = await c.call(s.add_app_password, address, name)
        except E.ConsoleError as exc:
            c.audit(request, who, action, address, "failed", exc.message)
            raise
        c.audit(request, who, action, address, "ok", f"{entry.name} ({entry.id})")
        return address, entry.name, secret

    async def app_add(request: Request, form: FormData) -> Response:
        name = str(form.get("name", "")).strip()
        address, label, secret = await _new_app_password(request, name, "create app password")
        return c.page(request, "secret.html", heading=f"App password “{label}”",
                      label="App password", secret=secret.reveal(), address=address,
                      note="Shown once: type or paste it into the app now, as the password "
                           f"for {address}. Revoke it here when the device is gone.",
                      back="/me")

    async def app_revoke(request: Request, form: FormData) -> Response:
        who, address = c.require_user(request)
        app_id = request.path_params["app_id"]
        try:
            entry = await c.call(s.revoke_app_password, address, app_id)
        except E.ConsoleError as exc:
            c.audit(request, who, "revoke app password", address, "failed", exc.message)
            raise
        c.audit(request, who, "revoke app password", address, "ok", f"{entry.name} ({app_id})")
        return c.redirect("/me#app-passwords")

    async def delta_chat(request: Request, form: FormData) -> Response:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        address, label, secret = await _new_app_password(request, f"Delta Chat {stamp}",
                                                         "create Delta Chat login")
        servers = await c.call(s.mail_servers, address.rpartition("@")[2])
        payload = dclogin_payload(address, secret.reveal(), servers)
        return c.page(request, "dclogin.html", address=address, label=label,
                      qr=qr_data_uri(payload))

    async def password(request: Request, form: FormData) -> Response:
        who, address = c.require_user(request)
        new, again = str(form.get("password", "")), str(form.get("confirm", ""))
        if new != again:
            raise E.BadInput("the two passwords differ; nothing was changed.")
        try:
            await c.call(s.set_password, address, Secret(new, "console"))
        except E.ConsoleError as exc:
            c.audit(request, who, "change own password", address, "failed", exc.message)
            raise
        c.audit(request, who, "change own password", address)
        return c.page(request, "done.html", heading="Password changed",
                      message=f"The password of {address} was changed. Mail apps that use "
                              "it need the new one; app passwords keep working.",
                      back="/me")

    return [c.get("/me", me), c.post("/me/app-passwords", app_add),
            c.post("/me/app-passwords/{app_id}/revoke", app_revoke),
            c.post("/me/delta-chat", delta_chat), c.post("/me/password", password)]
