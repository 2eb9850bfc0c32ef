"""Headers, cookies, rate limits, break-glass, the audit log: what a user relies on."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from starlette.testclient import TestClient

from mailctl.web.app import ConsoleSecrets, create_app
from mailctl.web.audit import AuditLog
from mailctl.web.auth import hash_password
from mailctl.web.settings import BreakGlassSettings, RateSettings
from tests.web.conftest import Site


def _app(site: Site, public_url: str, audit: AuditLog | None = None, **updates: Any) -> Any:
    c = site.console
    settings = c.settings.model_copy(update=updates)
    secrets = ConsoleSecrets(c.secrets.client_secret, c.secrets.session_key,
                             updates.pop("_hash", None) or c.secrets.break_glass_hash)
    return create_app(c.services, settings, secrets, audit=audit, public_url=public_url)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def test_headers_on_every_page(site: Site) -> None:
    r = httpx.get(site.url + "/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert f"form-action 'self' {site.op.issuer}" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    css = httpx.get(site.url + "/static/console.css")
    assert css.status_code == 200 and "public" in css.headers["cache-control"]
    assert "set-cookie" not in css.headers


def test_secure_cookie_and_prefix_behind_a_tls_proxy(site: Site) -> None:
    app = _app(site, "https://mail.example.test/console")
    with TestClient(app, base_url="https://mail.example.test") as client:
        r = client.get("/console/")
        assert r.status_code == 200
        assert 'href="/console/static/console.css"' in r.text
        assert 'href="/console/login"' in r.text
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "Path=/console" in cookie
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert client.get("/admin").status_code == 404  # nothing outside the prefix


def test_sign_in_attempts_are_rate_limited(site: Site) -> None:
    app = _app(site, site.url, rate_limit=RateSettings(per_minute=1, burst=2))
    with TestClient(app, base_url=site.url, follow_redirects=False) as client:
        assert client.get("/login").status_code == 302
        assert client.get("/login").status_code == 302
        r = client.get("/login")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert "Too many attempts" in r.text
        r = client.get("/auth/callback?code=x&state=y")
        assert r.status_code == 429


def test_break_glass_is_off_by_default(site: Site) -> None:
    assert httpx.get(site.url + "/break-glass").status_code == 404
    assert "Emergency" not in httpx.get(site.url + "/").text


def test_break_glass_signs_in_an_admin_and_is_audited(site: Site, tmp_path) -> None:
    password = "correct horse battery staple"
    audit = AuditLog(tmp_path / "audit.log")
    app = _app(site, site.url, audit=audit, _hash=hash_password(password),
               break_glass=BreakGlassSettings(enabled=True, username="admin",
                                              password_hash="${env:UNUSED}"))
    with TestClient(app, base_url=site.url, follow_redirects=False) as client:
        assert "Emergency administrator sign-in" in client.get("/").text
        token = _csrf(client.get("/break-glass").text)
        r = client.post("/break-glass", data={"csrf": token, "username": "admin",
                                              "password": "guess"})
        assert r.status_code == 400 and "wrong username or password" in r.text.lower()
        assert client.get("/admin").status_code == 401
        r = client.post("/break-glass", data={"csrf": token, "username": "admin",
                                              "password": password})
        assert r.status_code == 303 and r.headers["location"] == "/admin"
        page = client.get("/admin")
        assert page.status_code == 200 and site.domain in page.text
        assert "(break-glass)" in page.text
    text = (tmp_path / "audit.log").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("break-glass sign-in", "refused"), ("break-glass sign-in", "ok")]
    assert entries[1]["via"] == "break-glass"
    assert password not in text and "guess" not in text
    assert oct((tmp_path / "audit.log").stat().st_mode & 0o777) == "0o600"
