"""A user's pages and an admin's password reset, proven against the sandbox's IMAP."""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fixtures.mailstack import imap_login, tls_context
from tests.web.conftest import Site, sign_in

SEEN: list[str] = []  # every secret a page showed, for the log scan at the end


def _new_app_password(page, site: Site, name: str) -> str:
    page.goto(site.url + "/me")
    page.fill("#app-name", name)
    page.click("#app-create")
    secret = str(page.inner_text("#secret-value"))
    SEEN.append(secret)
    return secret


def test_app_password_logs_in_until_revoked(site: Site, browser_page) -> None:
    page, info = browser_page, site.stack.info
    alice = f"alice@{site.domain}"
    sign_in(page, site, "alice", expect="/me")
    assert "not reported by this provider" in page.inner_text("#usage")
    settings = page.inner_text("#server-settings")
    assert str(info.ports.imaps) in settings and "SSL/TLS" in settings
    assert page.is_visible("#no-app-passwords")
    secret = _new_app_password(page, site, "Phone")
    assert page.inner_text("#secret-address") == alice
    assert len(secret) >= 32
    assert imap_login(info, alice, secret, tls=True)
    assert imap_login(info, alice, site.passwords[alice])  # the mailbox password still works
    if site.stack.postfix:
        with smtplib.SMTP(info.host, info.ports.submission, timeout=10) as s:
            s.starttls(context=tls_context(info))
            assert s.login(alice, secret)[0] == 235
    page.goto(site.url + "/me")
    table = page.inner_text("#app-password-table")
    assert "Phone" in table and "UTC" in table
    page.click("button[aria-label='Revoke Phone']")
    page.wait_for_url(f"{site.url}/me**")
    assert page.is_visible("#no-app-passwords")
    assert not imap_login(info, alice, secret)
    assert imap_login(info, alice, site.passwords[alice])
    audit = (site.state_dir / "audit.log").read_text()
    assert '"action":"create app password"' in audit and "Phone" in audit
    assert '"action":"revoke app password"' in audit and secret not in audit


def test_delta_chat_code_carries_a_working_login(site: Site, browser_page,
                                                 tmp_path: Path) -> None:
    page, info = browser_page, site.stack.info
    bob = f"bob@{site.domain}"
    sign_in(page, site, "bob", expect="/me")
    page.click("#dclogin")
    shot = tmp_path / "qr.png"
    page.locator("#dclogin-qr").screenshot(path=str(shot))
    payload = subprocess.run(["zbarimg", "--raw", "-q", str(shot)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert payload.startswith(f"DCLOGIN:{bob}?")
    query = parse_qs(urlsplit(payload.replace("DCLOGIN:", "dclogin://", 1)).query)
    password = unquote(query["p"][0])
    SEEN.append(password)
    assert query["ih"] == [info.host] and query["ip"] == [str(info.ports.imaps)]
    assert query["ic"] == ["2"]  # the sandbox's certificate is self-signed
    assert imap_login(info, bob, password, tls=True)
    page.goto(site.url + "/me")
    assert "Delta Chat" in page.inner_text("#app-password-table")


def test_user_changes_their_password(site: Site, browser_page) -> None:
    page, info = browser_page, site.stack.info
    bob = f"bob@{site.domain}"
    old = site.passwords[bob]
    sign_in(page, site, "bob", expect="/me")
    page.fill("#pw-new", "a brand new passphrase")
    page.fill("#pw-again", "a different one entirely")
    page.click("#pw-change")
    assert "differ" in page.inner_text("#error-message")
    assert imap_login(info, bob, old)
    page.goto(site.url + "/me")
    page.fill("#pw-new", "a brand new passphrase")
    page.fill("#pw-again", "a brand new passphrase")
    page.click("#pw-change")
    assert "was changed" in page.inner_text("#done-message")
    SEEN.append("a brand new passphrase")
    assert imap_login(info, bob, "a brand new passphrase")
    assert not imap_login(info, bob, old)
    site.passwords[bob] = "a brand new passphrase"


def test_admin_reset_shows_the_password_once(site: Site, browser_page) -> None:
    page, info = browser_page, site.stack.info
    carol = f"carol@{site.domain}"
    old = site.passwords[carol]
    sign_in(page, site, "admin", expect="/admin")
    page.goto(f"{site.url}/admin/domains/{site.domain}")
    with page.expect_response(f"{site.url}/admin/reset-password") as info_resp:
        page.click(f"button[aria-label='Reset the password of {carol}']")
    response = info_resp.value
    assert response.headers["cache-control"] == "no-store"
    new = page.inner_text("#secret-value")
    SEEN.append(new)
    assert imap_login(info, carol, new)
    assert not imap_login(info, carol, old)
    site.passwords[carol] = new
    # Shown once: nothing shows it again, and a reload of the URL is not a new reset.
    page.goto(f"{site.url}/admin/domains/{site.domain}")
    assert new not in page.content()
    resp = page.goto(f"{site.url}/admin/reset-password")
    assert resp is not None and resp.status == 405 and new not in page.content()
    assert imap_login(info, carol, new)
    page.go_back()


def test_no_secret_in_any_log_or_page_cache(site: Site) -> None:
    """Runs after the flows above: every secret a page showed, searched in every log."""
    assert SEEN, "no secret was shown: the scan would prove nothing"
    blob = "\n".join(["\n".join(site.logs.lines), site.op.log_text(),
                      (site.state_dir / "audit.log").read_text(),
                      (site.stack.info.log_dir / "dovecot.log").read_text(errors="replace")])
    for secret in [*SEEN, *site.secrets_seen()]:
        assert secret not in blob
