"""The Stalwart provider against a 0.15 server (`/api/principal`), through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from mailctl.providers.dms.hashing import verify
from tests.emulators.base import Fault, Request
from tests.emulators.stalwart import StalwartEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses
from tests.providers.test_stalwart import BOB_PW, CONFIG, TOKEN


@pytest.fixture
def old() -> Iterator[StalwartEmulator]:
    with StalwartEmulator(TOKEN, legacy=True) as emu:
        emu.add_domain("example.org")
        emu.add_domain("other.org")
        emu.max_page = 1  # the server caps `limit`: paging must follow `total`
        yield emu


@pytest.fixture
def lsite(site: Site, old: StalwartEmulator) -> Site:
    site.env.update({"STALWART_KEY": TOKEN, "BOB_PASSWORD": BOB_PW})
    site.config(CONFIG.format(url=old.url))
    return site


def test_plan_apply_status_import_cycle(lsite: Site, old: StalwartEmulator) -> None:
    r = lsite.run("plan", "--detailed-exitcode")
    assert r.code == 2, r.all
    r, data = lsite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 4
    alice = old.principals["alice@example.org"]
    assert (alice["type"], alice["emails"], alice["description"], alice["quota"]) == (
        "individual", ["alice@example.org"], "Alice Liddell", 2 << 30)
    secret = old.principals["bob@example.org"]["secrets"][0]
    assert secret.startswith("$6$") and verify(BOB_PW, secret)  # stored verbatim: a hash
    team = old.principals["team@example.org"]
    assert team["type"] == "list" and sorted(team["externalMembers"]) == [
        "alice@example.org", "bob@example.org", "someone@outside.test"]
    assert_no_secret(r, TOKEN, BOB_PW, *lsite.secrets().values())

    old.reset_log()
    r = lsite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    # Detection (2), then domains, individuals, lists — one per page (1 each).
    assert old.calls(contains="well-known") == 1 and old.calls() == 2 + 2 + 2 + 2
    r = lsite.run("status", "--json")
    assert json.loads(r.out)["in_sync"] is True
    _, imported = lsite.import_roundtrip("sw", "-d", "example.org")
    assert imported["domains"]["example.org"]["mailboxes"][0]["quota"] == "2G"


def test_update_patch_ops_and_members_read(lsite: Site, old: StalwartEmulator) -> None:
    assert lsite.run("apply").code == 0
    old.principals["alice@example.org"]["quota"] = 1 << 30
    # Destinations given as `members` (principal names) are the same destinations.
    old.principals["team@example.org"].update(members=["alice@example.org"],
                                              externalMembers=["bob@example.org",
                                                               "someone@outside.test"])
    sent: list[object] = []
    old.before = lambda req: sent.append(req.json()) if req.method == "PATCH" else None
    r = lsite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sent == [[{"action": "set", "field": "quota", "value": 2 << 30}]]


def test_http_200_errors_are_mapped(lsite: Site, old: StalwartEmulator) -> None:
    # fieldAlreadyExists (HTTP 200): re-read; same -> adopted, different -> drift.
    def before(req: Request) -> None:
        body = req.json() if req.method == "POST" else None
        if body and body["name"] == "team@example.org" and "team@example.org" not in \
                old.principals:
            old.add_principal({"type": "list", "name": "team@example.org",
                               "emails": ["team@example.org"],
                               "externalMembers": ["bob@example.org"]})
        if body and body["name"] == "ali@example.org" and "ali@example.org" not in \
                old.principals:
            old.add_principal({"type": "list", "name": "ali@example.org",
                               "emails": ["ali@example.org"],
                               "externalMembers": ["alice@example.org"]})
    old.before = before
    r, data = lsite.apply_json()
    assert r.code == 3
    st = statuses(data)
    assert st["create alias ali@example.org"] == "done"
    assert st["create alias team@example.org"] == "failed"
    msgs = {o["address"]: o.get("message", "") for o in data["outcomes"]}
    assert "adopted" in msgs["ali@example.org"]
    assert "already exists with different settings" in msgs["team@example.org"]


def test_missing_domain_and_lost_answer(lsite: Site, old: StalwartEmulator) -> None:
    del old.principals["example.org"]
    for cmd in ("plan", "apply"):
        old.reset_log()
        r = lsite.run(cmd)
        assert r.code == 3, r.all
        assert ("sw: example.org: Stalwart does not hold domain example.org: add it in "
                "Stalwart's admin first") in r.err
        assert not any(m != "GET" for m, _, _ in old.log)  # reads only, nothing created
    old.add_domain("example.org")
    # The create went through but its answer was lost: re-read and adopted, not re-sent.
    old.inject(Fault("drop_after", method="POST"))
    r, _ = lsite.apply_json()
    assert r.code == 0, r.all
    assert sum(1 for p in old.principals.values() if p["type"] == "individual") == 2


def test_neither_api_is_named(lsite: Site) -> None:
    from tests.emulators.mailu import MailuEmulator

    with MailuEmulator(TOKEN) as other:
        lsite.config(CONFIG.format(url=other.url))
        r = lsite.run("plan")
    assert r.code == 3
    assert "neither Stalwart's JMAP management API" in r.err
