"""Each way a request must be refused, with a page that says why, and nothing changed."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.fixtures.mailstack import MailStack, imap_login
from tests.fixtures.oidc import OidcProvider
from tests.web.conftest import Site, add_people, make_site, sign_in, stop_site


def _cookie(site: Site, value: str) -> list[dict[str, str]]:
    return [{"name": "mailctl_console", "value": value, "url": site.url + "/"}]


def test_tampered_state_is_refused(site: Site, browser_page) -> None:
    page = browser_page

    def tamper(route) -> None:
        resp = route.fetch(max_redirects=0)
        location = re.sub(r"state=[^&]+", "state=forged-by-an-attacker",
                          resp.headers["location"])
        route.fulfill(response=resp, headers={**resp.headers, "location": location})

    page.route(f"{site.url}/login", tamper)
    sign_in(page, site, "admin", expect="/auth/callback")
    assert page.inner_text("#error-title") == "Sign-in failed"
    assert "state mismatch" in page.inner_text("#error-message")
    page.goto(site.url + "/admin")
    assert page.inner_text("#error-title") == "Please sign in"


def test_callback_replayed_in_another_browser_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    resp = page.goto(f"{site.url}/auth/callback?code=stolen-code&state=stolen-state")
    assert resp is not None and resp.status == 400
    assert "state mismatch" in page.inner_text("#error-message")


@pytest.fixture(scope="module")
def wrong_secret_site(mailstack: MailStack, oidc_provider: OidcProvider) -> Iterator[Site]:
    s = make_site(mailstack, oidc_provider, ["alice"], wrong_secret="not-the-client-secret")
    add_people(s)
    yield s
    stop_site(s)


def test_wrong_client_secret_is_refused(wrong_secret_site: Site, browser_page) -> None:
    page = browser_page
    sign_in(page, wrong_secret_site, "admin", expect="/auth/callback")
    assert page.inner_text("#error-title") == "Sign-in failed"
    assert "invalid_client" in page.inner_text("#error-message")
    page.goto(wrong_secret_site.url + "/admin")
    assert page.inner_text("#error-title") == "Please sign in"


def test_expired_session_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    idle = site.console.settings.session.idle_timeout
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin", age=idle + 60)))
    resp = page.goto(site.url + "/admin")
    assert resp is not None and resp.status == 401
    assert page.inner_text("#error-title") == "Your session has expired"
    assert "without activity" in page.inner_text("#error-message")


def test_session_past_its_maximum_age_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin", expires_in=-5)))
    resp = page.goto(site.url + "/admin")
    assert resp is not None and resp.status == 401
    assert page.inner_text("#error-title") == "Your session has expired"


def test_a_fresh_session_cookie_is_accepted(site: Site, browser_page) -> None:
    """The control for the two tests above: the forged cookie itself is well made."""
    page = browser_page
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin")))
    resp = page.goto(site.url + "/admin")
    assert resp is not None and resp.status == 200
    assert site.domain in page.inner_text("#domains")


def test_tampered_session_cookie_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    value = site.forge_cookie("alice")
    body, _, sig = value.partition(".")
    page.context.add_cookies(_cookie(site, body + "x." + sig))
    resp = page.goto(site.url + "/me")
    assert resp is not None and resp.status == 401
    assert "not valid" in page.inner_text("#error-message")


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
def test_form_without_the_csrf_token_is_refused(site: Site, browser_page,
                                                csrf: str | None) -> None:
    page = browser_page
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin")))
    alice = f"alice@{site.domain}"
    form = {"address": alice} if csrf is None else {"address": alice, "csrf": csrf}
    resp = page.request.post(site.url + "/admin/reset-password", form=form)
    assert resp.status == 403
    assert "This form could not be accepted" in resp.text()
    assert "Nothing was changed" in resp.text()
    assert imap_login(site.stack.info, alice, site.passwords[alice])


def test_form_from_another_site_is_refused(site: Site, browser_page) -> None:
    page = browser_page
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin")))
    resp = page.request.post(site.url + "/admin/reset-password",
                             form={"address": f"alice@{site.domain}", "csrf": "forged-csrf-token"},
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    assert "sent from another site" in resp.text()


def test_every_post_route_checks_the_csrf_token(site: Site, browser_page) -> None:
    """By construction (Console.post), but checked: a route added without it fails here."""
    page = browser_page
    page.context.add_cookies(_cookie(site, site.forge_cookie("admin")))
    app = site.server.server.config.app
    posts = [r for r in app.state.console_routes
             if "POST" in (getattr(r, "methods", None) or ())]
    assert len(posts) >= 10
    for route in posts:
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", site.domain if name == "domain" else "x")
        resp = page.request.post(site.url + path, form={"address": f"alice@{site.domain}"})
        assert resp.status == 403, (route.path, resp.status)
