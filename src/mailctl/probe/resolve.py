"""Routes with their secret references resolved, ready to dial.

Resolution happens once per command, before any connection: a missing
variable should be one clear error naming the route and field, not a
half-run probe with a confusing auth failure.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from mailctl.config.refs import RefError, Resolver
from mailctl.probe.settings import Endpoint, ProbeSettings, RouteSettings
from mailctl.secret import Secret


class ProbeConfigError(ValueError):
    """The probe section cannot be used (no routes, unknown route, bad reference)."""


@dataclass(frozen=True)
class Route:
    name: str
    settings: RouteSettings
    smtp_password: Secret | None
    imap_password: Secret
    smtp_tls: ssl.SSLContext | None
    imap_tls: ssl.SSLContext | None
    uptime_kuma: Secret | None


@dataclass(frozen=True)
class Plan:
    routes: list[Route]
    settings: ProbeSettings
    uptime_kuma: Secret | None  # the run-wide monitor (push.uptime_kuma)


def tls_context(ep: Endpoint, base_dir: Path) -> ssl.SSLContext | None:
    """A verifying client context (the endpoint's CA file or the system store)."""
    if ep.tls == "none":
        return None
    cafile = None
    if ep.ca_file is not None:
        path = ep.ca_file if ep.ca_file.is_absolute() else base_dir / ep.ca_file
        if not path.is_file():
            raise ProbeConfigError(f"CA file {path} does not exist")
        cafile = str(path)
    ctx = ssl.create_default_context(cafile=cafile)
    if not ep.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _secret(resolver: Resolver, ref: str, where: str) -> Secret:
    try:
        return resolver.resolve(ref)
    except RefError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ProbeConfigError(f"probe.{where}: {exc}{hint}") from None


def plan(settings: ProbeSettings | None, base_dir: Path, only: list[str] | None = None) -> Plan:
    """The routes to run (all, or the ones named), with secrets resolved."""
    if settings is None or not settings.routes:
        raise ProbeConfigError("no probe routes: add a `probe: routes:` section to the config")
    names = list(settings.routes)
    for name in only or []:
        if name not in settings.routes:
            raise ProbeConfigError(f"unknown route {name!r}; configured: {', '.join(names)}")
    resolver = Resolver(base_dir)
    routes = []
    for name in only or names:
        rs = settings.routes[name]
        smtp_pw = (_secret(resolver, rs.smtp.password, f"routes.{name}.smtp.password")
                   if rs.smtp.password else None)
        imap_pw = _secret(resolver, rs.imap.password, f"routes.{name}.imap.password")
        kuma = (_secret(resolver, rs.uptime_kuma, f"routes.{name}.uptime_kuma")
                if rs.uptime_kuma else None)
        routes.append(Route(name, rs, smtp_pw, imap_pw, tls_context(rs.smtp, base_dir),
                            tls_context(rs.imap, base_dir), kuma))
    kuma_all = (_secret(resolver, settings.push.uptime_kuma, "push.uptime_kuma")
                if settings.push.uptime_kuma else None)
    return Plan(routes, settings, kuma_all)
