"""`mailctl passwd` and `mailctl app-passwords` on every hosted provider, through the
real CLI against each provider's emulator; the emulators answer logins the way the
real server would check them (`login`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulators.mailcow import MailcowEmulator
from tests.emulators.mailu import MailuEmulator
from tests.emulators.migadu import MigaduEmulator
from tests.emulators.stalwart import StalwartEmulator
from tests.providers import test_mailcow as cow_case
from tests.providers import test_mailu as mailu_case
from tests.providers import test_migadu as migadu_case
from tests.providers import test_stalwart as stalwart_case
from tests.providers.conftest import Site, assert_no_secret

ALICE = "alice@example.org"


def _secret(err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.startswith("  ")]
    assert lines, err
    return lines[-1]


def _applied(site: Site) -> dict[str, str]:
    r, _ = site.apply_json()
    assert r.code == 0, r.all
    return site.secrets()


def _cycle(site: Site, login: Any, key: str, *, app_passwords: bool = True) -> None:
    """passwd (old password stops working), then app passwords: add, list, revoke."""
    old = _applied(site)[ALICE]
    assert login(ALICE, old)
    r = site.run("passwd", ALICE)
    assert r.code == 0, r.all
    new = _secret(r.err)
    assert new not in r.out and "password of alice@example.org changed" in r.out
    assert login(ALICE, new) and not login(ALICE, old)
    if not app_passwords:
        r = site.run("app-passwords", "add", ALICE, "--name", "Phone")
        assert r.code == 1 and "cannot manage app passwords" in r.err
        return
    r = site.run("app-passwords", "add", ALICE, "--name", "Phone", "--json")
    assert r.code == 0, r.all
    entry = json.loads(r.out)
    app = _secret(r.err)
    assert app not in r.out and entry["name"] == "Phone"
    assert login(ALICE, app) and login(ALICE, new)
    r = site.run("app-passwords", "list", ALICE, "--json")
    listed = json.loads(r.out)["app_passwords"]
    assert [a["id"] for a in listed] == [entry["id"]] and listed[0]["name"] == "Phone"
    # Changing the password leaves app passwords alone.
    r = site.run("passwd", ALICE)
    newer = _secret(r.err)
    assert login(ALICE, app) and login(ALICE, newer)
    r = site.run("app-passwords", "revoke", ALICE, entry["id"])
    assert r.code == 0, r.all
    assert not login(ALICE, app) and login(ALICE, newer)
    r = site.run("app-passwords", "revoke", ALICE, entry["id"])
    assert r.code == 1 and "has no app password" in r.err
    assert_no_secret(r, key, old, new, newer, app)


@pytest.fixture
def cow() -> Iterator[MailcowEmulator]:
    with MailcowEmulator(cow_case.KEY) as emu:
        yield emu


def test_mailcow(site: Site, cow: MailcowEmulator) -> None:
    site.env.update({"MAILCOW_KEY": cow_case.KEY, "BOB_PASSWORD": cow_case.BOB_PW})
    site.config(cow_case.CONFIG.format(url=cow.url))
    _cycle(site, cow.login, cow_case.KEY)
    # The pitfall: an app password made without its protocols logs in nowhere.
    r = site.run("app-passwords", "add", ALICE, "--name", "Laptop")
    app = _secret(r.err)
    row = next(a for a in cow.app_passwords.values() if a["name"] == "Laptop")
    assert row["active"] == 1 and all(row[f"{p}_access"] == 1 for p in (
        "imap", "smtp", "pop3", "sieve", "dav", "eas"))
    assert all(cow.login(ALICE, app, p) for p in ("imap", "smtp", "pop3", "sieve"))
    row["imap_access"] = 0  # what mailcow stores when `protocols` is left out
    assert not cow.login(ALICE, app, "imap")
    r = site.run("app-passwords", "list", ALICE)
    assert "Laptop" in r.out and "created (UTC)" in r.out and app not in r.out


@pytest.fixture
def mailu() -> Iterator[MailuEmulator]:
    with MailuEmulator(mailu_case.TOKEN) as emu:
        yield emu


def test_mailu_tokens(site: Site, mailu: MailuEmulator) -> None:
    site.env.update({"MAILU_TOKEN": mailu_case.TOKEN, "BOB_PASSWORD": mailu_case.BOB_PW})
    site.config(mailu_case.CONFIG.format(url=mailu.url))
    _cycle(site, mailu.login, mailu_case.TOKEN)


@pytest.fixture
def legacy() -> Iterator[StalwartEmulator]:
    with StalwartEmulator(stalwart_case.TOKEN, legacy=True) as emu:
        emu.add_domain("example.org")
        emu.add_domain("other.org")
        yield emu


def test_stalwart_015(site: Site, legacy: StalwartEmulator) -> None:
    site.env.update({"STALWART_KEY": stalwart_case.TOKEN,
                     "BOB_PASSWORD": stalwart_case.BOB_PW})
    site.config(stalwart_case.CONFIG.format(url=legacy.url))
    _cycle(site, legacy.login, stalwart_case.TOKEN)
    r = site.run("app-passwords", "add", ALICE, "--name", "a$b")
    assert r.code == 1 and "1-64 letters" in r.err  # '$' would break Stalwart's format


@pytest.fixture
def jmap() -> Iterator[StalwartEmulator]:
    with StalwartEmulator(stalwart_case.TOKEN) as emu:
        emu.add_domain("example.org")
        emu.add_domain("other.org")
        yield emu


def test_stalwart_016_says_it_is_not_mapped(site: Site, jmap: StalwartEmulator) -> None:
    site.env.update({"STALWART_KEY": stalwart_case.TOKEN,
                     "BOB_PASSWORD": stalwart_case.BOB_PW})
    site.config(stalwart_case.CONFIG.format(url=jmap.url))
    _applied(site)
    for args in (["passwd", ALICE], ["app-passwords", "list", ALICE]):
        r = site.run(*args)
        assert r.code == 1 and "not mapped by mailctl yet" in r.err, r.all


@pytest.fixture
def mig() -> Iterator[MigaduEmulator]:
    with MigaduEmulator(migadu_case.USER, migadu_case.KEY) as emu:
        emu.add_domain("example.org")
        yield emu


def test_migadu_password_only(site: Site, mig: MigaduEmulator) -> None:
    site.env.update({"MIGADU_KEY": migadu_case.KEY, "BOB_PASSWORD": migadu_case.BOB_PW})
    migadu_case.configure(site, mig)
    _cycle(site, mig.login, migadu_case.KEY, app_passwords=False)
