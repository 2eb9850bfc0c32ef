"""Whole flows in a browser: behind a path prefix, sign-out at the OP, and the logs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.mailstack import MailStack
from tests.fixtures.oidc import OidcProvider
from tests.web.conftest import Site, add_people, make_site, sign_in, stop_site


@pytest.fixture(scope="module")
def prefixed(mailstack: MailStack, oidc_provider: OidcProvider) -> Iterator[Site]:
    s = make_site(mailstack, oidc_provider, ["alice"], path="/mail/console")
    add_people(s)
    yield s
    stop_site(s)


def test_under_a_path_prefix_with_rp_initiated_logout(prefixed: Site, browser_page) -> None:
    site, page = prefixed, browser_page
    assert site.url.endswith("/mail/console")
    sign_in(page, site, "admin", expect="/admin")
    assert site.domain in page.inner_text("#domains")
    page.click(f"a[href='/mail/console/admin/domains/{site.domain}']")
    assert page.url == f"{site.url}/admin/domains/{site.domain}"
    page.click("#signout")
    page.wait_for_url(f"{site.op.issuer}/session/end**")
    page.click("#op-logout")
    page.wait_for_url(f"{site.url}/")
    assert page.locator("#signin").is_visible()
    resp = page.goto(site.url + "/admin")
    assert resp is not None and resp.status == 401
    # The audit log has the whole story, without a secret.
    text = (site.state_dir / "audit.log").read_text()
    assert '"action":"sign-in"' in text and '"action":"sign-out"' in text
    # Mail apps still find autoconfig at the root, outside the prefix.
    root = site.url.removesuffix("/mail/console")
    r = httpx.get(f"{root}/.well-known/autoconfig/mail/config-v1.1.xml",
                  params={"emailaddress": f"alice@{site.domain}"})
    assert r.status_code == 200


def test_unverified_email_gets_no_mailbox(site: Site, browser_page) -> None:
    """An OP account claiming alice's address without verifying it is not alice."""
    page = browser_page
    sign_in(page, site, "unverified", expect="/auth/callback")
    assert page.inner_text("#error-title") == "Not allowed"
    assert "not verified" in page.inner_text("#error-message")


def test_no_secret_in_any_log(site: Site, prefixed: Site) -> None:
    """Runs last in this module: every log line the flows above produced, scanned."""
    for s in (site, prefixed):
        texts = ["\n".join(s.logs.lines), s.op.log_text()]
        audit = s.state_dir / "audit.log"
        if audit.exists():
            texts.append(audit.read_text())
        blob = "\n".join(texts)
        assert blob.strip(), "no logs were captured: the scan would prove nothing"
        for secret in s.secrets_seen():
            assert secret not in blob
