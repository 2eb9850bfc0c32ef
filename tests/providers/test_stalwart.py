"""The Stalwart provider (0.16 JMAP) through the real CLI, against the Stalwart emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from mailctl.providers.dms.hashing import verify
from tests.emulators.base import Request
from tests.emulators.stalwart import StalwartEmulator
from tests.providers.conftest import Site, assert_no_secret

TOKEN = "stalwart-api-key-0123456789"
BOB_PW = "bobs-declared-password-77"

CONFIG = """\
providers:
  sw:
    type: stalwart
    url: {url}
    api_key: ${{env:STALWART_KEY}}
    timeout: 2
    retry_backoff: 0.01
domains:
  example.org:
    provider: sw
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        quota: 2G
        aliases: [ali]
      - local_part: bob
        password: ${{env:BOB_PASSWORD}}
    aliases:
      - local_part: team
        destinations: [alice, bob, someone@outside.test]
"""


@pytest.fixture
def sw() -> Iterator[StalwartEmulator]:
    with StalwartEmulator(TOKEN) as emu:
        emu.add_domain("example.org")
        yield emu


@pytest.fixture
def ssite(site: Site, sw: StalwartEmulator) -> Site:
    site.env.update({"STALWART_KEY": TOKEN, "BOB_PASSWORD": BOB_PW})
    site.config(CONFIG.format(url=sw.url))
    return site


def test_plan_apply_status_import_cycle(ssite: Site, sw: StalwartEmulator) -> None:
    r, data = ssite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 4
    alice = sw.account("alice@example.org")
    bob = sw.account("bob@example.org")
    assert alice is not None and bob is not None
    assert (alice["description"], alice["quotas"]) == ("Alice Liddell", {"maxDiskQuota": 2 << 30})
    secret = bob["credentials"]["0"]["secret"]
    assert secret.startswith("$6$") and verify(BOB_PW, secret)  # sent hashed, not plaintext
    team = sw.mailing_list("team@example.org")
    assert team is not None and set(team["recipients"]) == {
        "alice@example.org", "bob@example.org", "someone@outside.test"}
    assert_no_secret(r, TOKEN, BOB_PW, *ssite.secrets().values())

    sw.reset_log()
    r = ssite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    # Session discovery, the domain list, and one query+get per domain and object type.
    assert [p for _, p, _ in sw.log] == [".well-known/jmap", "jmap", "jmap", "jmap"]
    r = ssite.run("status", "--json")
    assert json.loads(r.out)["in_sync"] is True
    _, imported = ssite.import_roundtrip("sw")
    assert imported["providers"]["sw"]["api_key"] == "${env:STALWART_KEY}"


def test_update_patches_only_what_changed(ssite: Site, sw: StalwartEmulator) -> None:
    assert ssite.run("apply").code == 0
    alice = sw.account("alice@example.org")
    assert alice is not None
    alice["quotas"] = {"maxDiskQuota": 1 << 30, "maxEmails": 500}
    sent: list[object] = []
    sw.before = lambda req: sent.append(req.json()) if b"/set" in req.body else None
    r = ssite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    update = sent[0]["methodCalls"][0][1]["update"]  # type: ignore[index]
    assert list(update.values()) == [{"quotas/maxDiskQuota": 2 << 30}]
    assert alice["quotas"] == {"maxDiskQuota": 2 << 30, "maxEmails": 500}


def test_primary_key_violation_is_adopted_or_drift(ssite: Site, sw: StalwartEmulator) -> None:
    dom = sw.domain_id("example.org")

    def before(req: Request) -> None:
        if b"x:MailingList/set" in req.body and not sw.lists:
            sw.lists["l99"] = {"id": "l99", "name": "team", "domainId": dom, "description": None,
                               "recipients": {"bob@example.org": True}}
    sw.before = before
    r, data = ssite.apply_json()
    assert r.code == 3
    failed = [o for o in data["outcomes"] if o["status"] == "failed"]
    assert [o["address"] for o in failed] == ["team@example.org"]
    assert "already exists with different settings" in failed[0]["message"]


def test_bad_token(ssite: Site, sw: StalwartEmulator) -> None:
    r = ssite.run("plan", env={"STALWART_KEY": "nope-nope-nope-nope"})
    assert r.code == 3
    assert "${env:STALWART_KEY}" in r.err
    assert_no_secret(r, "nope-nope-nope-nope", TOKEN)


def test_a_domain_the_server_lacks_is_one_error(ssite: Site, sw: StalwartEmulator) -> None:
    sw.domains.clear()
    sw.reset_log()
    r = ssite.run("plan")
    assert r.code == 3, r.all
    assert ("sw: example.org: Stalwart does not hold domain example.org: add it in "
            "Stalwart's admin first (mailctl does not create Stalwart domains)") in r.err
    assert "to create" not in r.out
    assert len(sw.log) == 2  # the session, then one x:Domain/get: no per-object calls
