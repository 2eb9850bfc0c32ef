"""The Mailu provider through the real CLI, against the Mailu emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.emulators.base import Fault, Request
from tests.emulators.mailu import MailuEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses

TOKEN = "mailu-api-token-0123456789abcdef"
BOB_PW = "bobs-declared-password-77"

CONFIG = """\
providers:
  mu:
    type: mailu
    url: {url}
    api_token: ${{env:MAILU_TOKEN}}
    timeout: 2
    retry_backoff: 0.01
domains:
  example.org:
    provider: mu
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        quota: 2G
        aliases: [ali]
        forwards: [alice@elsewhere.test]
      - local_part: bob
        password: ${{env:BOB_PASSWORD}}
    aliases:
      - local_part: team
        destinations: [alice, bob]
"""


@pytest.fixture
def mailu() -> Iterator[MailuEmulator]:
    with MailuEmulator(TOKEN) as emu:
        yield emu


@pytest.fixture
def usite(site: Site, mailu: MailuEmulator) -> Site:
    site.env.update({"MAILU_TOKEN": TOKEN, "BOB_PASSWORD": BOB_PW})
    site.config(CONFIG.format(url=mailu.url))
    return site


def test_plan_apply_status_import_cycle(usite: Site, mailu: MailuEmulator) -> None:
    r = usite.run("plan", "--detailed-exitcode")
    assert r.code == 2, r.all
    assert "Plan: 6 to create" in r.out  # domain, 2 users, 2 aliases, 1 forward
    r, data = usite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 6
    alice = mailu.users["alice@example.org"]
    assert (alice["displayed_name"], alice["quota_bytes"]) == ("Alice Liddell", 2 << 30)
    assert (alice["forward_enabled"], alice["forward_destination"], alice["forward_keep"]) == (
        True, ["alice@elsewhere.test"], True)
    assert mailu.passwords["bob@example.org"] == BOB_PW
    generated = usite.secrets()
    assert mailu.passwords["alice@example.org"] == generated["alice@example.org"]
    assert_no_secret(r, TOKEN, BOB_PW, *generated.values())

    mailu.reset_log()
    r = usite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    assert sorted(p for _, p, _ in mailu.log) == [
        "alias/destination/example.org", "domain", "domain/example.org/users"]
    r = usite.run("status", "--json")
    assert json.loads(r.out)["in_sync"] is True

    _, imported = usite.import_roundtrip("mu")
    assert imported["providers"]["mu"]["api_token"] == "${env:MAILU_TOKEN}"


def test_forward_removal_and_partial_update(usite: Site, mailu: MailuEmulator) -> None:
    assert usite.run("apply").code == 0
    text = CONFIG.format(url=mailu.url).replace("        forwards: [alice@elsewhere.test]\n", "")
    usite.config(text.replace("quota: 2G", "quota: 3G"))
    sent: list[object] = []
    mailu.before = lambda req: sent.append(req.json()) if req.method == "PATCH" else None
    r = usite.run("apply", "--reconcile", "--prune", "--yes")
    assert r.code == 0, r.all
    assert {"quota_bytes": 3 << 30} in sent
    assert mailu.users["alice@example.org"]["forward_enabled"] is False
    assert mailu.users["alice@example.org"]["displayed_name"] == "Alice Liddell"


def test_duplicate_409_is_adopted(usite: Site, mailu: MailuEmulator) -> None:
    mailu.add_domain("example.org")

    def before(req: Request) -> None:
        if req.path == "user" and req.method == "POST" and "bob@example.org" not in mailu.users:
            mailu.add_user("bob@example.org")
    mailu.before = before
    r, data = usite.apply_json()
    assert r.code == 0, r.all
    msg = next(o["message"] for o in data["outcomes"] if o["address"] == "bob@example.org")
    assert "adopted" in msg
    assert mailu.passwords["bob@example.org"] == "seeded-password"  # not overwritten


def test_external_alias_destination_is_explained(usite: Site, mailu: MailuEmulator) -> None:
    usite.config(CONFIG.format(url=mailu.url).replace("[alice, bob]", "[alice, x@outside.test]"))
    r, data = usite.apply_json()
    assert r.code == 3
    msg = next(o["message"] for o in data["outcomes"] if o["address"] == "team@example.org")
    assert "only deliver to existing Mailu users" in msg and "forwards" in msg
    assert "team@example.org" not in mailu.aliases
    assert data["summary"]["done"] == 5


def test_wrong_token_is_not_retried(usite: Site, mailu: MailuEmulator) -> None:
    wrong = "wrong-token-777777777"
    r = usite.run("plan", env={"MAILU_TOKEN": wrong})
    assert r.code == 3
    assert "${env:MAILU_TOKEN}" in r.err and "API_TOKEN" in r.err
    assert_no_secret(r, wrong, TOKEN)
    assert mailu.failures == 1


def test_server_error_mid_apply_then_resume(usite: Site, mailu: MailuEmulator) -> None:
    mailu.inject(Fault("status", status=503, method="POST", path="alias", times=-1))
    r, data = usite.apply_json()
    assert r.code == 3
    st = statuses(data)
    assert st["create alias team@example.org"] == "failed"
    assert st["create forward alice@example.org"] == "done"
    mailu.clear_faults()
    r, data = usite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 2


def test_enabled_is_the_users_enabled_flag(usite: Site, mailu: MailuEmulator) -> None:
    text = CONFIG.format(url=mailu.url).replace(
        "        name: Alice Liddell\n", "        name: Alice Liddell\n        enabled: false\n")
    usite.config(text)
    r, _ = usite.apply_json()
    assert r.code == 0, r.all
    assert mailu.users["alice@example.org"]["enabled"] is False
    assert mailu.users["bob@example.org"]["enabled"] is True
    assert usite.run("plan", "--detailed-exitcode").code == 0
    mailu.users["alice@example.org"]["enabled"] = True
    r = usite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert mailu.users["alice@example.org"]["enabled"] is False
    r, _ = usite.import_roundtrip("mu")
    assert "enabled: false" in r.out


def test_import_leaves_out_mailus_default_quota(usite: Site, mailu: MailuEmulator) -> None:
    mailu.add_domain("example.org")
    mailu.add_user("plain@example.org")  # Mailu's 10**9 bytes
    mailu.add_user("big@example.org", quota_bytes=2 << 30)
    _, imported = usite.import_roundtrip("mu")
    boxes = {m["local_part"]: m for m in imported["domains"]["example.org"]["mailboxes"]}
    assert boxes["plain"] == {"local_part": "plain"}
    assert boxes["big"]["quota"] == "2G"
