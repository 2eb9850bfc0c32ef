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
