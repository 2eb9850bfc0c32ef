"""The mailcow provider through the real CLI, against the mailcow emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.emulators.base import Fault, Request
from tests.emulators.mailcow import MailcowEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses

KEY = "cow-key-0123456789-abcdef"
RO_KEY = "cow-readonly-key-987654"
BOB_PW = "bobs-declared-password-77"

CONFIG = """\
providers:
  cow:
    type: mailcow
    url: {url}
    api_key: ${{env:MAILCOW_KEY}}
    timeout: 2
    retry_backoff: 0.01
    new_domain: {{mailboxes: 100, quota: 102400}}
domains:
  example.org:
    provider: cow
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        quota: 1G
        aliases: [ali]
      - local_part: bob
        password: ${{env:BOB_PASSWORD}}
    aliases:
      - local_part: info
        destinations: [alice, bob, someone@outside.test]
    catch_all: alice
"""


@pytest.fixture
def cow() -> Iterator[MailcowEmulator]:
    with MailcowEmulator(KEY, RO_KEY) as emu:
        yield emu


@pytest.fixture
def csite(site: Site, cow: MailcowEmulator) -> Site:
    site.env.update({"MAILCOW_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    site.config(CONFIG.format(url=cow.url))
    return site


def test_plan_apply_status_import_cycle(csite: Site, cow: MailcowEmulator) -> None:
    r = csite.run("plan", "--detailed-exitcode")
    assert r.code == 2, r.all
    assert "+ domain   example.org" in r.out
    assert "Plan: 6 to create" in r.out

    r, data = csite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"] == {"done": 6, "failed": 0, "not_attempted": 0}
    assert "example.org" in cow.domains
    alice = cow.mailboxes["alice@example.org"]
    assert (alice["name"], alice["quota"], alice["active"]) == ("Alice Liddell", 1024, 1)
    assert cow.passwords["bob@example.org"] == BOB_PW
    generated = csite.secrets()
    assert set(generated) == {"alice@example.org"}
    assert cow.passwords["alice@example.org"] == generated["alice@example.org"]
    info = cow.alias_by_address("info@example.org")
    assert info is not None and info["active"] == 1  # sent explicitly: default is inactive
    # Like mailcow's own "add alias" form: visible in SOGo, usable as a sender.
    assert (info["sogo_visible"], info["sender_allowed"]) == (1, 1)
    assert set(info["goto"].split(",")) == {"alice@example.org", "bob@example.org",
                                            "someone@outside.test"}
    assert cow.alias_by_address("@example.org") is not None
    assert_no_secret(r, KEY, BOB_PW, *generated.values())

    # A no-change plan: one list per object type and domain, nothing else.
    cow.reset_log()
    r = csite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    assert sorted(p for _, p, _ in cow.log) == [
        "get/alias/all/example.org", "get/domain/all", "get/mailbox/all/example.org"]

    r = csite.run("status", "--json")
    assert r.code == 0 and json.loads(r.out)["in_sync"] is True

    r, imported = csite.import_roundtrip("cow")
    assert_no_secret(r, KEY)
    assert imported["providers"]["cow"]["api_key"] == "${env:MAILCOW_KEY}"


def test_update_sends_only_managed_fields(csite: Site, cow: MailcowEmulator) -> None:
    assert csite.run("apply").code == 0
    cow.mailboxes["alice@example.org"].update(quota=2048, active=0)  # drift + an unmanaged flag
    sent: list[object] = []
    cow.before = lambda req: sent.append(req.json()) if req.path == "edit/mailbox" else None
    r = csite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sent == [{"items": ["alice@example.org"], "attr": {"quota": 1024}}]
    assert cow.mailboxes["alice@example.org"]["quota"] == 1024
    assert cow.mailboxes["alice@example.org"]["active"] == 0  # left alone


def _appears_concurrently(cow: MailcowEmulator, quota_mib: int) -> None:
    def before(req: Request) -> None:
        if req.path == "add/mailbox" and "alice@example.org" not in cow.mailboxes:
            cow.add_mailbox("alice@example.org", "Alice Liddell", quota_mib)
    cow.before = before


def test_existing_object_is_adopted_when_it_matches(csite: Site, cow: MailcowEmulator) -> None:
    cow.add_domain("example.org", mailboxes=100, quota_mib=102400)
    _appears_concurrently(cow, 1024)
    r, data = csite.apply_json()
    assert r.code == 0, r.all
    assert statuses(data)["create mailbox alice@example.org"] == "done"
    note = next(o for o in data["outcomes"] if o["address"] == "alice@example.org"
                and o["kind"] == "mailbox")["message"]
    assert "adopted" in note
    # Not ours: its password is unknown, so none is reported as generated.
    assert "alice@example.org" not in data["generated_passwords_for"]
    assert cow.passwords["alice@example.org"] == "seeded-password"


def test_existing_object_that_differs_is_drift(csite: Site, cow: MailcowEmulator) -> None:
    cow.add_domain("example.org", mailboxes=100, quota_mib=102400)
    _appears_concurrently(cow, 4096)
    r, data = csite.apply_json()
    assert r.code == 3
    failed = next(o for o in data["outcomes"] if o["address"] == "alice@example.org"
                  and o["kind"] == "mailbox")
    assert failed["status"] == "failed"
    assert "already exists with different settings" in failed["message"]
    assert "quota" in failed["message"]
    assert cow.mailboxes["alice@example.org"]["quota"] == 4096  # untouched
    r = csite.run("plan")
    assert "1 drifted object(s) not updated (use --reconcile)" in r.out


def test_dropped_connection_reports_exactly_and_rerun_finishes(
    csite: Site, cow: MailcowEmulator
) -> None:
    cow.inject(Fault("drop", method="POST", skip=1, times=-1))
    r, data = csite.apply_json()
    assert r.code == 3
    # The domain went through; both mailboxes were in flight when the server went away;
    # the aliases were never sent.
    assert data["summary"] == {"done": 1, "failed": 2, "not_attempted": 3}
    st = statuses(data)
    assert st["create domain example.org"] == "done"
    assert st["create mailbox alice@example.org"] == "failed"
    assert st["create alias info@example.org"] == "not_attempted"
    assert set(cow.domains) == {"example.org"} and not cow.mailboxes
    assert "Re-run" not in r.out  # JSON mode: the message is in the outcomes
    for o in data["outcomes"]:
        if o["status"] == "not_attempted":
            assert "not attempted" in o["message"]

    cow.clear_faults()
    cow.reset_log()
    r, data = csite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 5
    assert cow.calls("POST") == 5  # nothing done before is repeated
    assert csite.run("plan", "--detailed-exitcode").code == 0


def test_lost_answer_to_a_create_is_confirmed_by_rereading(
    csite: Site, cow: MailcowEmulator
) -> None:
    cow.inject(Fault("drop_after", method="POST", path="add/mailbox", times=1))
    r, data = csite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 6
    assert cow.calls("POST", "add/mailbox") == 2  # each mailbox posted exactly once
    assert len(cow.mailboxes) == 2


def test_transient_read_errors_are_retried(csite: Site, cow: MailcowEmulator) -> None:
    cow.inject(Fault("status", status=503, method="GET", times=1, body="busy"))
    cow.inject(Fault("slow", method="GET", delay=2.5, skip=0, times=1))
    r = csite.run("plan")
    assert r.code == 0, r.all
    assert "Plan: 6 to create" in r.out


def test_a_failed_create_is_not_retried_blindly(csite: Site, cow: MailcowEmulator) -> None:
    cow.inject(Fault("status", status=502, method="POST", path="add/alias", times=-1))
    r, data = csite.apply_json()
    assert r.code == 3
    assert cow.calls("POST", "add/alias") == 3  # one attempt per alias, no retries
    assert data["summary"]["done"] == 3


def test_bad_key_names_the_reference_never_the_value(csite: Site, cow: MailcowEmulator) -> None:
    wrong = "wrong-key-55555555555"
    r = csite.run("plan", env={"MAILCOW_KEY": wrong})
    assert r.code == 3
    assert "${env:MAILCOW_KEY}" in r.err and "allow-list" in r.err
    assert_no_secret(r, wrong, KEY)
    assert cow.auth_failures == 1  # not retried: mailcow feeds failures to fail2ban


def test_read_only_key_stops_the_apply(csite: Site, cow: MailcowEmulator) -> None:
    # mailcow's answer, byte for byte: PHP escapes the slash.
    raw = httpx.post(cow.url + "/add/alias", headers={"X-API-Key": RO_KEY}, json={})
    assert (raw.status_code, raw.content) == (
        403, b'{"type":"error","msg":"API read\\/write access denied"}')
    r, _ = csite.apply_json()
    assert r.code == 0
    csite.config(CONFIG.format(url=cow.url).replace("name: Alice Liddell", "name: Alice L."))
    csite.env["MAILCOW_KEY"] = RO_KEY
    r = csite.run("apply", "--reconcile")
    assert r.code == 3
    assert "read-only key" in r.out and "${env:MAILCOW_KEY}" in r.out
    assert_no_secret(r, RO_KEY)


def test_quota_must_be_whole_mib(csite: Site, cow: MailcowEmulator) -> None:
    """Refused by validate, plan and apply alike, before a single call to mailcow."""
    csite.config(CONFIG.format(url=cow.url).replace("quota: 1G", "quota: 1000000"))
    for cmd in ("validate", "plan", "apply"):
        r = csite.run(cmd)
        assert r.code == 1, r.all
        assert "quota 1000000 bytes is not a whole number of 1M" in r.err
        assert "hint: use 976k" not in r.err and "hint: use 1M:" in r.err
    assert cow.calls() == 0


def test_enabled_and_tags_create_drift_reconcile_import(
    csite: Site, cow: MailcowEmulator
) -> None:
    text = CONFIG.format(url=cow.url).replace(
        "        aliases: [ali]\n",
        "        aliases: [ali]\n        enabled: false\n        tags: [vip, staff]\n")
    csite.config(text)
    r, _ = csite.apply_json()
    assert r.code == 0, r.all
    alice = cow.mailboxes["alice@example.org"]
    assert alice["active"] == 0 and sorted(alice["tags"]) == ["staff", "vip"]
    assert cow.mailboxes["bob@example.org"]["active"] == 1  # undeclared: on, as before
    r = csite.run("status", "--json")
    assert r.code == 0 and json.loads(r.out)["in_sync"] is True, r.all

    # Order is not drift, at mailcow or in the YAML.
    alice["tags"] = ["vip", "staff"]
    csite.config(text.replace("[vip, staff]", "[staff, vip]"))
    assert csite.run("plan", "--detailed-exitcode").code == 0

    # A different set (and switched back on in the UI) is.
    alice.update(tags=["staff", "old"], active=1)
    r = csite.run("status", "--json")
    assert json.loads(r.out)["in_sync"] is False, r.all
    r = csite.run("plan", "--reconcile")
    assert "tags: old, staff -> staff, vip" in r.out and "enabled: True -> False" in r.out, r.out
    sent: list[tuple[str, object]] = []
    cow.before = lambda req: (sent.append((req.path, req.json()))
                              if req.method == "POST" else None)
    r = csite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sent == [("delete/mailbox/tag/alice@example.org", ["old"]),
                    ("edit/mailbox", {"items": ["alice@example.org"],
                                      "attr": {"active": 0, "tags": ["vip"]}})]
    assert sorted(alice["tags"]) == ["staff", "vip"] and alice["active"] == 0
    assert csite.run("plan", "--detailed-exitcode").code == 0

    # import writes them back (on and no tags are left out) and plans nothing.
    _, imported = csite.import_roundtrip("cow")
    boxes = {m["local_part"]: m for m in imported["domains"]["example.org"]["mailboxes"]}
    assert boxes["alice"]["enabled"] is False and boxes["alice"]["tags"] == ["staff", "vip"]
    assert "enabled" not in boxes["bob"] and "tags" not in boxes["bob"]


def test_tags_only_removed_sends_no_edit(csite: Site, cow: MailcowEmulator) -> None:
    csite.config(CONFIG.format(url=cow.url).replace(
        "        aliases: [ali]\n", "        aliases: [ali]\n        tags: []\n"))
    assert csite.run("apply").code == 0
    cow.mailboxes["alice@example.org"]["tags"] = ["Legacy"]
    cow.reset_log()
    r = csite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert [p for m, p, _ in cow.log if m == "POST"] == ["delete/mailbox/tag/alice@example.org"]
    assert cow.mailboxes["alice@example.org"]["tags"] == []
    assert csite.run("plan", "--detailed-exitcode").code == 0


def test_import_leaves_out_the_domains_default_quota(csite: Site, cow: MailcowEmulator) -> None:
    cow.add_domain("example.org", defquota_mib=3072)
    cow.add_mailbox("plain@example.org", quota_mib=3072)  # what mailcow gave it
    cow.add_mailbox("big@example.org", name="Big", quota_mib=5120)  # someone's choice
    cow.add_alias("seen@example.org", ["big@example.org"])
    _, imported = csite.import_roundtrip("cow")
    boxes = {m["local_part"]: m for m in imported["domains"]["example.org"]["mailboxes"]}
    assert boxes["plain"] == {"local_part": "plain"}
    assert boxes["big"]["quota"] == "5G" and boxes["big"]["name"] == "Big"
