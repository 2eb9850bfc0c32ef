"""Admin pages: the dashboard, a domain, its tokens, and the admin actions.

Actions are the ones the YAML deliberately does not hold (a password reset,
invite tokens, a DNS check or probe now). A change to declared objects is a
proposal: the page shows the YAML diff and offers it for download; nothing
here writes mailctl.yaml or asks the provider to create a mailbox.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailctl.web import errors as E
from mailctl.web.qr import qr_data_uri

if TYPE_CHECKING:
    from mailctl.web.app import Console
    from mailctl.web.yamledit import YamlChange

PAGE_SIZE = 200
_TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9._+-]{0,32}$")


def _field(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise E.BadInput(f"{name} is too long (at most {limit} characters).")
    return value.strip()


def _quota(text: str) -> str:
    from mailctl.util.sizes import format_size, parse_size

    try:
        return format_size(parse_size(text))
    except ValueError:
        raise E.BadInput(f"quota {text!r}: expected a size like 2G, 500M or 0 "
                         "(unlimited).") from None


def routes(c: Console) -> list[Route]:
    s = c.services

    async def dashboard(request: Request) -> Response:
        who = c.require_admin(request)
        domains = who.visible(s.domain_names())
        summaries = s.cached_overview(domains)  # on the event loop when nothing is due
        if summaries is None:
            summaries = await c.call(s.overview, domains)
        jobs = s.jobs()
        recent = c.audit_log.tail(15) if who.admin else []
        return c.page(request, "dashboard.html", summaries=summaries, jobs=jobs,
                      recent=recent)

    async def refresh(request: Request, form: FormData) -> Response:
        who = c.require_admin(request)
        await c.call(s.overview, who.visible(s.domain_names()), True)
        c.audit(request, who, "refresh provider state")
        back = _field(form, "domain")
        return c.redirect(f"/admin/domains/{back}" if back and who.can_admin(back) else "/admin")

    async def domain(request: Request) -> Response:
        name = request.path_params["domain"]
        c.require_admin(request, name)
        summary = (await c.call(s.overview, [name]))[0]
        boxes = await c.call(s.mailboxes, name)
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        pages = max(1, -(-len(boxes) // PAGE_SIZE))
        page = min(page, pages)
        tokens = await c.call(s.tokens, name)
        return c.page(request, "domain.html", d=summary,
                      boxes=boxes[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], page=page,
                      pages=pages, total=len(boxes), tokens=tokens)

    async def dns_check(request: Request, form: FormData) -> Response:
        name = request.path_params["domain"]
        who = c.require_admin(request, name)
        result = await c.call(s.run_dns_check, name)
        c.audit(request, who, "dns check", name, result.status)
        return c.redirect(f"/admin/domains/{name}#dns")

    async def probe(request: Request, form: FormData) -> Response:
        name = request.path_params["domain"]
        who = c.require_admin(request, name)
        runs = await c.call(s.run_probe, name)
        c.audit(request, who, "probe", name, "ok" if all(r.ok for r in runs) else "failed")
        return c.redirect(f"/admin/domains/{name}#probe")

    async def token_add(request: Request, form: FormData) -> Response:
        from mailctl.accounts.expiry import ExpiryError, normalise_expiry

        name = request.path_params["domain"]
        who = c.require_admin(request, name)
        tname, prefix = _field(form, "name", 64), _field(form, "prefix", 32)
        if not _TOKEN_NAME.match(tname):
            raise E.BadInput("a token name is letters, digits and . _ - (at most 64), "
                             "starting with a letter or digit.")
        if not _PREFIX.match(prefix) or ".." in prefix or prefix.startswith("."):
            raise E.BadInput("a prefix is lower-case letters, digits and . _ + - (at most 32, "
                             "not starting with a dot, no '..').")
        try:
            expiry = normalise_expiry(_field(form, "expiry", 16) or "1d")
            maxuse = int(_field(form, "maxuse", 9) or "50")
        except (ExpiryError, ValueError) as exc:
            raise E.BadInput(f"{exc} (expiry like 1h, 7d, 2w, 1y or never; uses a number)"
                             ) from None
        if not 1 <= maxuse <= 1_000_000:
            raise E.BadInput("uses must be between 1 and 1000000.")
        row, invite = await c.call(s.add_token, name, tname, expiry, maxuse, prefix)
        c.audit(request, who, "create token", f"{name}/{tname}")
        return c.page(request, "token.html", domain=name, t=row, invite=invite,
                      qr=qr_data_uri(invite), created=True)

    async def token(request: Request) -> Response:
        name, tname = request.path_params["domain"], request.path_params["token"]
        c.require_admin(request, name)
        rows = [t for t in await c.call(s.tokens, name) if t.name == tname]
        if not rows:
            raise E.NotFound(f"no token {tname} for {name}")
        invite = await c.call(s.token_invite, name, tname)
        return c.page(request, "token.html", domain=name, t=rows[0], invite=invite,
                      qr=qr_data_uri(invite) if invite else None, created=False)

    async def token_disable(request: Request, form: FormData) -> Response:
        name, tname = request.path_params["domain"], request.path_params["token"]
        who = c.require_admin(request, name)
        await c.call(s.disable_token, name, tname)
        c.audit(request, who, "disable token", f"{name}/{tname}")
        return c.redirect(f"/admin/domains/{name}#tokens")

    async def reset_password(request: Request, form: FormData) -> Response:
        address = _field(form, "address", 320).lower()
        name = address.rpartition("@")[2]
        who = c.require_admin(request, name)
        if not s.is_mailbox(address):
            raise E.NotFound(f"{address} is not a declared mailbox")
        try:
            secret = await c.call(s.reset_password, address)
        except E.ConsoleError as exc:
            c.audit(request, who, "reset password", address, "failed", exc.message)
            raise
        c.audit(request, who, "reset password", address)
        return c.page(request, "secret.html", heading=f"New password for {address}",
                      label="Password", secret=secret.reveal(), address=address,
                      note="Shown once: copy it now. The old password no longer works.",
                      back=f"/admin/domains/{name}")

    async def _proposal(request: Request, form: FormData) -> tuple[str, YamlChange]:
        from mailctl.model import AddressError, normalise_local_part

        name = request.path_params["domain"]
        c.require_admin(request, name)
        action = _field(form, "action", 20)
        if action == "add_mailbox":
            try:
                local = normalise_local_part(_field(form, "local_part", 64))
            except AddressError as exc:
                raise E.BadInput(str(exc)) from None
            fields = {}
            if _field(form, "quota", 20):
                fields["quota"] = _quota(_field(form, "quota", 20))
            if _field(form, "display_name"):
                fields["name"] = _field(form, "display_name")
            change = await c.call(s.propose_mailbox, name, local, fields)
        elif action == "set_quota":
            address = _field(form, "address", 320).lower()
            if address.rpartition("@")[2] != name:
                raise E.BadInput(f"{address} is not in {name}")
            change = await c.call(s.propose_mailbox_field, address, "quota",
                                  _quota(_field(form, "quota", 20)))
        else:
            raise E.BadInput("unknown change; choose 'add a mailbox' or 'change a quota'.")
        return name, change

    async def propose(request: Request, form: FormData) -> Response:
        name, change = await _proposal(request, form)
        c.audit(request, c.identity(request), "propose change", name, "ok", change.summary)
        fields = {k: v for k, v in form.items() if k != "csrf" and isinstance(v, str)}
        return c.page(request, "proposal.html", domain=name, change=change, fields=fields)

    async def download(request: Request, form: FormData) -> Response:
        _, change = await _proposal(request, form)
        full = form.get("format") == "yaml"
        body = change.new if full else change.diff
        fname = change.filename if full else f"{change.filename}.patch"
        return PlainTextResponse(body, media_type="text/yaml" if full else "text/x-diff",
                                 headers={"Content-Disposition":
                                          f'attachment; filename="{fname}"'})

    d = "/admin/domains/{domain}"
    return [c.get("/admin", dashboard), c.post("/admin/refresh", refresh),
            c.get(d, domain), c.post(f"{d}/dns-check", dns_check), c.post(f"{d}/probe", probe),
            c.post(f"{d}/tokens", token_add), c.get(f"{d}/tokens/{{token}}", token),
            c.post(f"{d}/tokens/{{token}}/disable", token_disable),
            c.post("/admin/reset-password", reset_password),
            c.post(f"{d}/propose", propose), c.post(f"{d}/propose/download", download)]
