"""The user page follows the provider's capabilities (real providers, emulated servers)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailctl.config.load import load_config
from mailctl.web.app import ConsoleSecrets, create_app
from mailctl.web.auth import SESSION_KEY, Identity
from mailctl.web.live import ConfigServices
from mailctl.web.session import SessionMiddleware
from tests.emulators.mailcow import MailcowEmulator
from tests.emulators.migadu import MigaduEmulator

KEY = b"k" * 32


def _client(tmp_path: Path, provider: str, address: str) -> TestClient:
    path = tmp_path / "mailctl.yaml"
    path.write_text(textwrap.dedent(f"""\
        providers:
          p: {provider}
        domains:
          example.org:
            provider: p
            mailboxes: [{{local_part: alice}}]
        console:
          oidc: {{issuer: "http://127.0.0.1:9", client_id: c, client_secret: "${{env:X}}"}}
        """))
    config = load_config(path)
    assert config.file.console is not None
    services = ConfigServices(config, config.file.console)
    app = create_app(services, config.file.console, ConsoleSecrets(None, KEY),
                     public_url="http://testserver")
    now = time.time()
    who = Identity("s", "Alice", address, (), False, (), address, "oidc", now, now + 600)
    cookie = SessionMiddleware(None, KEY, idle_timeout=600, path="/",  # type: ignore[arg-type]
                               secure=False).dump({SESSION_KEY: who.as_session()})
    return TestClient(app, cookies={"mailctl_console": cookie})


@pytest.fixture
def mig() -> Iterator[MigaduEmulator]:
    with MigaduEmulator("admin@example.org", "migadu-key") as emu:
        emu.add_domain("example.org")
        emu.add_mailbox("alice@example.org", "Alice")
        yield emu


def test_migadu_user_page_has_no_app_passwords(tmp_path: Path, mig: MigaduEmulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGADU_KEY", "migadu-key")
    monkeypatch.setenv("X", "x")
    client = _client(tmp_path, f'{{type: migadu, user: admin@example.org, url: "{mig.url}", '
                               'api_key: "${env:MIGADU_KEY}"}', "alice@example.org")
    page = client.get("/me")
    assert page.status_code == 200
    assert "does not offer app passwords" in page.text and 'id="app-create"' not in page.text
    assert 'id="pw-change"' in page.text  # the password can still be changed
    assert "imap.migadu.com" in page.text and "not reported by this provider" in page.text
    r = client.post("/me/app-passwords", data={"csrf": client.get("/me").text.split(
        'name="csrf" value="')[1].split('"')[0], "name": "Phone"})
    assert r.status_code == 409 and "cannot manage app passwords" in r.text


@pytest.fixture
def cow() -> Iterator[MailcowEmulator]:
    with MailcowEmulator("cow-key-0123456789") as emu:
        emu.add_domain("example.org")
        emu.add_mailbox("alice@example.org", quota_mib=2048)
        yield emu


def test_mailcow_user_page_shows_usage(tmp_path: Path, cow: MailcowEmulator,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILCOW_KEY", "cow-key-0123456789")
    monkeypatch.setenv("X", "x")
    client = _client(tmp_path, f'{{type: mailcow, url: "{cow.url}", '
                               'api_key: "${env:MAILCOW_KEY}"}', "alice@example.org")
    page = client.get("/me")
    assert page.status_code == 200
    assert 'id="usage">0' in page.text  # mailcow reports quota_used (0 bytes here)
    assert 'id="app-create"' in page.text and 'id="no-app-passwords"' in page.text
