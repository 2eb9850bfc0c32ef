"""Autoconfig (Thunderbird, Delta Chat, K-9/Thunderbird for Android, ...) and Microsoft
autodiscover for every declared domain, at the paths mail apps ask for.

These routes sit at the root, outside the console's path prefix and its
session: mail apps ask `https://autoconfig.DOMAIN/mail/config-v1.1.xml`,
`https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml` and POST to
`https://autodiscover.DOMAIN/autodiscover/autodiscover.xml`. The domain comes
from the address the app sends, else from the Host header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailctl.model import AddressError, domain_of, normalise_address, normalise_domain
from mailctl.web.mailapps import (
    AUTOCONFIG_PATHS,
    AUTODISCOVER_PATHS,
    MAX_AUTODISCOVER_BODY,
    autoconfig_xml,
    autodiscover_address,
    autodiscover_xml,
    domain_from_host,
)

if TYPE_CHECKING:
    from mailctl.web.services import ConsoleServices

_XML = "application/xml; charset=utf-8"


def _not_found(why: str) -> Response:
    return PlainTextResponse(why + "\n", status_code=404)


def routes(services: ConsoleServices) -> list[Route]:
    def declared(name: str) -> str | None:
        try:
            dom = normalise_domain(name)
        except AddressError:
            return None
        return dom if dom in services.domain_names() else None

    async def autoconfig(request: Request) -> Response:
        given = request.query_params.get("emailaddress", "")
        if given:
            try:
                name = domain_of(normalise_address(given))
            except AddressError:
                return _not_found("emailaddress is not a valid address")
        else:
            name = domain_from_host(request.headers.get("host", ""))
        dom = declared(name)
        if dom is None:
            return _not_found(f"no mail domain {name} here")
        servers = await run_in_threadpool(services.mail_servers, dom)
        return Response(autoconfig_xml(servers), media_type=_XML,
                        headers={"Cache-Control": "public, max-age=3600"})

    async def autodiscover(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_AUTODISCOVER_BODY:
                return PlainTextResponse("request too large\n", status_code=413)
        given = autodiscover_address(body)
        if not given:
            return PlainTextResponse("expected an Autodiscover request with EMailAddress\n",
                                     status_code=400)
        try:
            address = normalise_address(given)
        except AddressError:
            return PlainTextResponse("EMailAddress is not a valid address\n", status_code=400)
        dom = declared(domain_of(address))
        if dom is None:
            return _not_found(f"no mail domain {domain_of(address)} here")
        servers = await run_in_threadpool(services.mail_servers, dom)
        return Response(autodiscover_xml(servers, address), media_type=_XML,
                        headers={"Cache-Control": "no-store"})

    return ([Route(p, autoconfig, methods=["GET"]) for p in AUTOCONFIG_PATHS]
            + [Route(p, autodiscover, methods=["POST"]) for p in AUTODISCOVER_PATHS])
