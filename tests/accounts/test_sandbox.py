"""Against the real Dovecot + Postfix sandbox through the dms provider."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.accounts.conftest import NO_RATE_LIMIT, Server, Site, make_site, secret_of
from tests.fixtures.mailstack import (
    MailStack,
    imap_login,
    make_message,
    new_marker,
    send_smtp,
    unique_domain,
    wait_for_message,
)


@pytest.fixture
def live(mailstack: MailStack, tmp_path: Path) -> Site:
    return make_site(tmp_path, mailstack.dms_dir, unique_domain("acc"),
                     accounts_yaml=NO_RATE_LIMIT)


def decode_qr(path: Path) -> list[str]:
    if subprocess.run(["which", "zbarimg"], capture_output=True).returncode:
        pytest.skip("zbarimg not installed (apt-get install zbar-tools)")
    r = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if ln]


def test_api_account_logs_in_receives_mail_and_is_pruned(
        live: Site, mailstack: MailStack, serve: Callable[..., Server]) -> None:
    tok = live.json("tokens", "add", "event", "--expiry", "3s", "--maxuse", "5")
    server = serve(live)
    secret = secret_of(tok)

    code, _, body = server.post(f"/new_email?t={secret}")
    assert code == 200, body
    assert set(body) >= {"email", "password", "expiry", "ttl"}
    assert body["expiry"] == "3s" and body["ttl"] == 3
    email, password = body["email"], body["password"]
    assert email.startswith("tmp.") and email.endswith("@" + live.domain)

    assert imap_login(mailstack.info, email, password)
    marker = new_marker()
    refused = send_smtp(mailstack.info, "someone@outside.test", [email],
                        make_message(marker, from_addr="someone@outside.test", to=email))
    assert refused == {}
    assert wait_for_message(mailstack.info, email, password, marker)

    time.sleep(3.5)
    pruned = live.json("accounts", "prune")
    assert pruned["removed"] == [email] and pruned["failed"] == []
    assert not imap_login(mailstack.info, email, password)
    assert live.json("accounts", "list") == []
    # The slot stays used: pruning does not let a token hand out more than maxuse.
    assert live.json("tokens", "show", "event")["usecount"] == 1
    assert secret not in server.log.read_text()


def test_admin_account_dclogin_code_logs_in(live: Site, mailstack: MailStack) -> None:
    address = f"admin.made@{live.domain}"
    png = live.dir / "login.png"
    r = live.cli("accounts", "add", address, "--png", png)
    assert r.code == 0, r.all
    assert "password" not in r.out  # the password only travels inside the code
    [payload] = decode_qr(png)
    info = mailstack.info
    assert payload.startswith(f"DCLOGIN:{quote(address, safe='@')}?p=")
    password = payload.split("?p=")[1].split("&")[0]
    expected = (f"DCLOGIN:{quote(address, safe='@')}?p={password}&v=1"
                f"&ih={info.host}&ip={info.ports.imaps}&is=ssl"
                f"&sh={info.host}&sp={info.ports.submission}&ss=starttls&ic=2")
    assert payload == expected
    assert imap_login(info, address, password, tls=True)


def test_expired_account_stops_working_without_anyone_running_prune(
        live: Site, mailstack: MailStack, serve: Callable[..., Server]) -> None:
    """`serve` prunes on its own schedule: nobody runs `accounts prune` here."""
    secret = secret_of(live.json("tokens", "add", "brief", "--expiry", "3s"))
    server = serve(live, 1, "--prune-interval", "1")
    code, _, body = server.post(f"/?t={secret}")
    assert code == 200, body
    email, password = body["email"], body["password"]
    assert imap_login(mailstack.info, email, password)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"pruned {email}" not in server.log.read_text():
        time.sleep(0.2)
    assert f"pruned {email} (token brief, expired " in server.log.read_text()
    assert not imap_login(mailstack.info, email, password)
    assert live.json("accounts", "list") == [] and email not in live.dms_accounts()
    assert secret not in server.log.read_text() and password not in server.log.read_text()


def test_password_from_secrets_out_logs_in(live: Site, mailstack: MailStack) -> None:
    address = f"filed@{live.domain}"
    out = live.dir / "new.tsv"
    r = live.cli("accounts", "add", address, "--secrets-out", out)
    assert r.code == 0, r.all
    addr, password = out.read_text().rstrip("\n").split("\t")
    assert addr == address and password not in r.all
    assert imap_login(mailstack.info, address, password)
