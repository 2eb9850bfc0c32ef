"""Admin actions in a real browser: YAML changes, invite tokens, DNS check and probe now."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mailctl.config.load import load_config
from tests.fixtures.dnsserver import DnsLab
from tests.fixtures.mailstack import MailStack
from tests.fixtures.oidc import OidcProvider
from tests.web.conftest import Site, add_people, make_site, sign_in, stop_site

PROBE = """\
probe:
  routes:
    inbox:
      smtp: {{host: "{host}", port: {submission}, tls: starttls, ca_file: "{ca}",
             username: "alice@{domain}", password: "${{file:pw/alice}}"}}
      imap: {{host: "{host}", port: {imaps}, tls: tls, ca_file: "{ca}",
             username: "alice@{domain}", password: "${{file:pw/alice}}"}}
      sender: "alice@{domain}"
      timeout: 20
"""


@pytest.fixture(scope="module")
def admin_site(mailstack: MailStack, oidc_provider: OidcProvider,
               dns_lab: DnsLab) -> Iterator[Site]:
    s = make_site(mailstack, oidc_provider, ["alice", "bob"], top=PROBE,
                  extra=f"dns_resolver: \"{dns_lab.resolver}\"")
    add_people(s)
    yield s
    stop_site(s)


def _domain_page(page, site: Site) -> None:
    page.goto(f"{site.url}/admin/domains/{site.domain}")


def test_new_mailbox_is_a_yaml_change_never_applied(admin_site: Site, browser_page,
                                                    tmp_path: Path) -> None:
    site, page = admin_site, browser_page
    before = site.config_path.read_text()
    sign_in(page, site, "admin", expect="/admin")
    _domain_page(page, site)
    page.click("text=Add a mailbox")
    page.fill("#p-local", "dave")
    page.fill("#p-name", "Dave Example")  # dms has no display names: refused, not proposed
    page.click("#propose-mailbox")
    assert "does not support display names" in page.inner_text("#error-message")
    page.go_back()
    page.click("text=Add a mailbox")
    page.fill("#p-local", "dave")
    page.fill("#p-name", "")
    page.fill("#p-quota", "2G")
    page.click("#propose-mailbox")
    diff = page.inner_text("#diff")
    assert "+      - local_part: dave" in diff and "+        quota: 2G" in diff
    with page.expect_download() as dl:
        page.click("#download-patch")
    patch = tmp_path / "change.patch"
    dl.value.save_as(patch)
    # Never applied: the file and the provider are as they were.
    assert site.config_path.read_text() == before
    assert f"dave@{site.domain}" not in (site.stack.dms_dir / "postfix-accounts.cf").read_text()
    # The patch applies to the committed file and the result is a valid config.
    work = tmp_path / "repo"
    shutil.copytree(site.config_path.parent, work, ignore=shutil.ignore_patterns(".mailctl"))
    subprocess.run(["git", "apply", str(patch)], cwd=work, check=True)
    config = load_config(work / "mailctl.yaml")
    mb = config.desired.domains[site.domain].mailboxes[f"dave@{site.domain}"]
    assert mb.quota == 2 << 30


def test_quota_change_is_a_yaml_change(admin_site: Site, browser_page) -> None:
    site, page = admin_site, browser_page
    sign_in(page, site, "admin", expect="/admin")
    _domain_page(page, site)
    page.click("text=Change a quota")
    page.fill("#q-address", f"bob@{site.domain}")
    page.fill("#q-quota", "5G")
    page.click("#propose-quota")
    diff = page.inner_text("#diff")
    assert "+        quota: 5G" in diff and "local_part: bob" in diff
    page.go_back()
    page.click("text=Change a quota")
    page.fill("#q-address", f"nobody@{site.domain}")
    page.fill("#q-quota", "5G")
    page.click("#propose-quota")
    assert "is not a mailbox declared" in page.inner_text("#error-message")


def test_invite_token_with_its_qr_code(admin_site: Site, browser_page, tmp_path: Path) -> None:
    site, page = admin_site, browser_page
    sign_in(page, site, "admin", expect="/admin")
    _domain_page(page, site)
    page.click("text=Create a token")
    page.fill("#t-name", "party")
    page.fill("#t-maxuse", "5")
    page.click("#token-create")
    assert page.inner_text("h1") == "Token party"
    shot = tmp_path / "qr.png"
    page.locator("#token-qr").screenshot(path=str(shot))
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(shot)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert decoded.startswith("DCACCOUNT:") and decoded.endswith("&n=party")
    secret = parse_qs(urlsplit(decoded.removeprefix("DCACCOUNT:")).query)["t"][0]
    store = site.console.services._service().store
    found = store.find_secret(secret)
    assert found is not None and found.name == "party"  # the code redeems this token
    page.click("#token-disable")
    assert "party" in page.inner_text("#tokens ~ ul")
    row = next(t for t in site.console.services.tokens(site.domain) if t.name == "party")
    assert row.disabled and row.maxuse == 5


def test_dns_check_now(admin_site: Site, browser_page, dns_lab: DnsLab) -> None:
    site, page = admin_site, browser_page
    dns_lab.publish(site.domain, f"@ MX 10 mail.{site.domain}.\nmail A 127.0.0.1\n")
    sign_in(page, site, "admin", expect="/admin")
    _domain_page(page, site)
    page.click("#dns-check")
    assert page.inner_text("#dns-status") == "problems"
    text = page.inner_text("main")
    assert "spf.missing" in text and "dmarc.missing" in text
    assert "mx.missing" not in text
    page.goto(site.url + "/admin")
    assert "problems" in page.inner_text(f"[id='domain-{site.domain}']")


def test_probe_now_shows_last_success_and_latency(admin_site: Site, browser_page) -> None:
    site, page = admin_site, browser_page
    if not site.stack.postfix:
        pytest.fail("the probe needs the sandbox's Postfix (run as root)")
    sign_in(page, site, "admin", expect="/admin")
    _domain_page(page, site)
    page.click("#probe-now")
    text = page.inner_text("main")
    assert "inbox: ok in" in text and "last success" in text
    page.goto(site.url + "/admin")
    cell = page.inner_text(f"[id='domain-{site.domain}']")
    assert "ok" in cell and " s" in cell and "just now" in cell


def test_domain_admin_sees_only_their_domain(admin_site: Site, site: Site,
                                             browser_page) -> None:
    page = browser_page
    sign_in(page, admin_site, "domain_admin", expect="/admin")
    text = page.inner_text("#domains")
    assert admin_site.domain in text and site.domain not in text
    resp = page.goto(f"{admin_site.url}/admin/domains/{site.domain}")
    assert resp is not None and resp.status == 404  # not declared in this console's config
