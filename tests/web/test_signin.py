"""Signing in through a real OP in a real browser, and who is refused."""

from __future__ import annotations

from tests.web.conftest import Site, sign_in


def test_admin_sees_the_dashboard_with_sandbox_data(site: Site, browser_page) -> None:
    page = browser_page
    sign_in(page, site, "admin", expect="/admin")
    row = page.locator(f"[id='domain-{site.domain}']")
    text = row.inner_text()
    assert "3 declared, 3 present" in text
    assert "in sync" in text
    assert "sandbox (dms)" in text
    assert page.inner_text("#who").startswith("root@")


def test_user_lands_on_their_mailbox(site: Site, browser_page) -> None:
    page = browser_page
    sign_in(page, site, "alice", expect="/me")
    assert page.inner_text("#mailbox") == f"alice@{site.domain}"
    assert page.locator("a[href$='/admin']").count() == 0
    page.goto(site.url + "/admin")
    assert "Not allowed" in page.inner_text("#error-title")


def test_user_outside_the_allowed_claims_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    sign_in(page, site, "outsider", expect="/auth/callback")
    assert page.inner_text("#error-title") == "Not allowed"
    assert "has no access to this console" in page.inner_text("#error-message")
    page.goto(site.url + "/me")
    assert page.inner_text("#error-title") == "Please sign in"


def test_a_sign_in_makes_no_new_tls_context(site: Site, browser_page, monkeypatch) -> None:
    """Authlib makes an httpx client per call (authorization URL, token, userinfo); each
    loaded the CA bundle into a new TLS context, 50-60 ms of CPU apiece, most of the
    console's CPU per sign-in. The console makes one context when it starts, with
    httpx's defaults, and every call uses it: certificates are still checked."""
    import ssl

    tls = site.console.oidc.tls
    assert tls.verify_mode is ssl.CERT_REQUIRED and tls.check_hostname
    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    sign_in(browser_page, site, "admin", expect="/admin")
    assert browser_page.locator("#domains").count() == 1
    assert loads == []
