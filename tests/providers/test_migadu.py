"""The Migadu provider through the real CLI, against the Migadu emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.emulators.base import Fault, Request
from tests.emulators.migadu import FORBIDDEN, MigaduEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses

USER = "admin@example.org"
KEY = "migadu-api-key-abcdef0123456789"
BOB_PW = "bobs-declared-password-77"

CONFIG = """\
providers:
  mig:
    type: migadu
    url: {url}
    user: {user}
    api_key: ${{env:MIGADU_KEY}}
    timeout: 2
    retry_backoff: 0.01
    rate_limit: {{requests: {limit}, per_seconds: {window}, backoff_seconds: 0.2}}
domains:
  example.org:
    provider: mig
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        aliases: [ali]
        spam: {{action: tag, aggressiveness: most_strict}}
      - local_part: bob
        password: ${{env:BOB_PASSWORD}}
    aliases:
      - local_part: info
        destinations: [alice, bob, someone@outside.test]
"""


@pytest.fixture
def mig() -> Iterator[MigaduEmulator]:
    with MigaduEmulator(USER, KEY) as emu:
        emu.add_domain("example.org")
        yield emu


def configure(site: Site, emu: MigaduEmulator, limit: int = 60, window: float = 120) -> None:
    site.config(CONFIG.format(url=emu.url, user=USER, limit=limit, window=window))


@pytest.fixture
def msite(site: Site, mig: MigaduEmulator) -> Site:
    site.env.update({"MIGADU_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    configure(site, mig)
    return site


def test_plan_apply_status_import_cycle(msite: Site, mig: MigaduEmulator) -> None:
    r = msite.run("plan", "--detailed-exitcode")
    assert r.code == 2, r.all
    assert "Plan: 4 to create" in r.out
    r, data = msite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"] == {"done": 4, "failed": 0, "not_attempted": 0}
    alice = mig.mailboxes["alice@example.org"]
    assert (alice["name"], alice["spam_action"], alice["spam_aggressiveness"]) == (
        "Alice Liddell", "subject", "strictest")
    assert mig.mailboxes["bob@example.org"]["name"] == "bob"  # Migadu wants a name
    assert mig.passwords["bob@example.org"] == BOB_PW
    generated = msite.secrets()
    assert mig.passwords["alice@example.org"] == generated["alice@example.org"]
    assert sorted(mig.aliases["info@example.org"]["destinations"]) == [
        "alice@example.org", "bob@example.org", "someone@outside.test"]
    assert_no_secret(r, KEY, BOB_PW, *generated.values())

    # Volatile fields change on every read, passwords never come back: still no drift.
    mig.reset_log()
    r = msite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    assert sorted(p for _, p, _ in mig.log) == [  # identities, forwardings embedded
        "domains/example.org/aliases", "domains/example.org/mailboxes",
        "domains/example.org/rewrites"]
    r = msite.run("status", "--json")
    assert r.code == 0 and json.loads(r.out)["in_sync"] is True

    r, imported = msite.import_roundtrip("mig")
    assert_no_secret(r, KEY)
    assert imported["providers"]["mig"]["api_key"] == "${env:MIGADU_KEY}"


def test_update_is_a_partial_put(msite: Site, mig: MigaduEmulator) -> None:
    assert msite.run("apply").code == 0
    mig.mailboxes["alice@example.org"].update(name="Someone Else", may_send=False)
    sent: list[object] = []
    mig.before = lambda req: sent.append(req.json()) if req.method == "PUT" else None
    r = msite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sent == [{"name": "Alice Liddell"}]
    assert mig.mailboxes["alice@example.org"]["may_send"] is False  # not ours: untouched


def test_duplicate_400_is_settled_by_rereading(msite: Site, mig: MigaduEmulator) -> None:
    def before(req: Request) -> None:
        if req.method == "POST" and "aliases" in req.path and "info@example.org" not in \
                mig.aliases:
            mig.add_alias("info@example.org", ["bob@example.org", "alice@example.org",
                                               "someone@outside.test"])
            mig.add_alias("ali@example.org", ["carol@example.org"])
    mig.before = before
    r, data = msite.apply_json()
    assert r.code == 3
    st = statuses(data)
    assert st["create alias info@example.org"] == "done"
    assert st["create alias ali@example.org"] == "failed"
    msgs = {o["address"]: o.get("message", "") for o in data["outcomes"]}
    assert "adopted" in msgs["info@example.org"]
    assert "already exists with different settings" in msgs["ali@example.org"]


def test_client_side_limit_is_never_tripped(site: Site, mig: MigaduEmulator) -> None:
    mig.limit, mig.window = 3, 1.0
    site.env.update({"MIGADU_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    configure(site, mig, limit=3, window=1.0)
    start = time.monotonic()
    assert site.run("plan").code == 0  # 3 reads, remembered for the next process
    r = site.run("apply")  # 3 reads + 4 creates
    assert r.code == 0, r.all
    assert mig.trips == 0
    assert mig.calls() == 10
    assert time.monotonic() - start >= 3.0  # 10 calls at 3 per second: at least 3 windows


def test_403_is_a_rate_limit_backed_off_and_retried(msite: Site, mig: MigaduEmulator) -> None:
    mig.inject(Fault("status", status=403, body=FORBIDDEN, method="POST", times=2))
    r, data = msite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 4
    assert len(mig.mailboxes) == 2 and len(mig.aliases) == 2  # nothing created twice


def test_persistent_403_stops_the_apply(msite: Site, mig: MigaduEmulator) -> None:
    mig.inject(Fault("status", status=403, body=FORBIDDEN, method="POST", times=-1))
    r, data = msite.apply_json()
    assert r.code == 3
    assert data["summary"]["done"] == 0 and data["summary"]["not_attempted"] == 2
    msg = next(o["message"] for o in data["outcomes"] if o["status"] == "failed")
    assert "rate limit" in msg and "${env:MIGADU_KEY}" in msg
    assert_no_secret(r, KEY)


def test_delete_answering_500_but_done(msite: Site, mig: MigaduEmulator) -> None:
    mig.add_alias("old@example.org", ["bob@example.org"])
    mig.delete_answers_500 = True
    r, data = msite.apply_json("--prune", "--yes")
    assert r.code == 0, r.all
    assert statuses(data)["delete alias old@example.org"] == "done"
    assert "old@example.org" not in mig.aliases


def test_bad_key_and_missing_domain(msite: Site, mig: MigaduEmulator) -> None:
    wrong = "not-the-key-99999999"
    r = msite.run("plan", env={"MIGADU_KEY": wrong})
    assert r.code == 3
    assert "${env:MIGADU_KEY}" in r.err and USER in r.err
    assert_no_secret(r, wrong, KEY)

    del mig.domains["example.org"]
    r, data = msite.apply_json()
    assert r.code == 3
    assert "not set up in this Migadu account" in data["outcomes"][0]["message"]
