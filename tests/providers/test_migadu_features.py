"""Migadu mailbox settings, identities, forwardings and rewrites, through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.emulators.base import Fault
from tests.emulators.migadu import FORBIDDEN, MigaduEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses

USER = "admin@example.org"
KEY = "migadu-api-key-abcdef0123456789"
OPS_PW = "ops-identity-password-42"

HEAD = """\
providers:
  mig:
    type: migadu
    url: {url}
    user: admin@example.org
    api_key: ${{env:MIGADU_KEY}}
    timeout: 2
    retry_backoff: 0.01
    rate_limit: {{requests: 60, per_seconds: 120, backoff_seconds: 0.2}}
domains:
  example.org:
    provider: mig
"""
BODY = """\
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        may_send: false
        access: {imap: true, pop3: false}
        sender_denylist: [Spam@Bad.Example, "@junk.example"]
        sender_allowlist: []
        autoresponder: {active: true, subject: Away, body: Back on Monday, expires_on: 2026-12-31}
        footer: {active: true, plain: "-- Alice"}
        forwards: [alice@elsewhere.test]
        identities:
          - local_part: sales
            name: Sales Team
            may_receive: false
          - local_part: ops
            password_use: custom
            password: ${env:OPS_PW}
      - local_part: carol
        password_method: invitation
        recovery_email: carol@home.test
    rewrites:
      - name: demo
        local_part_rule: demo-*
        destinations: [alice, carol]
"""


@pytest.fixture
def mig() -> Iterator[MigaduEmulator]:
    with MigaduEmulator(USER, KEY) as emu:
        emu.add_domain("example.org")
        yield emu


@pytest.fixture
def fsite(site: Site, mig: MigaduEmulator) -> Site:
    site.env.update({"MIGADU_KEY": KEY, "OPS_PW": OPS_PW})
    site.config(HEAD.format(url=mig.url) + BODY)
    return site


def test_settings_identities_forwards_rewrites_cycle(fsite: Site, mig: MigaduEmulator) -> None:
    r = fsite.run("plan", "--json")
    assert r.code == 0, r.all
    kinds = [(c["kind"], c["address"]) for c in json.loads(r.out)["changes"]]
    assert kinds == [("mailbox", "alice@example.org"), ("mailbox", "carol@example.org"),
                     ("identity", "ops@example.org"), ("identity", "sales@example.org"),
                     ("forward", "alice@example.org"), ("rewrite", "example.org/demo")]
    r, data = fsite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"] == {"done": 6, "failed": 0, "not_attempted": 0}
    alice = mig.mailboxes["alice@example.org"]
    assert (alice["may_send"], alice["may_access_imap"], alice["may_access_pop3"]) == (
        False, True, False)
    assert sorted(alice["sender_denylist"]) == ["@junk.example", "spam@bad.example"]
    # The autoresponder is update-only at Migadu: it arrives by a PUT after the create.
    assert (alice["autorespond_active"], alice["autorespond_subject"],
            alice["autorespond_body"], alice["autorespond_expires_on"]) == (
        True, "Away", "Back on Monday", "2026-12-31")
    assert (alice["footer_active"], alice["footer_plain_body"]) == (True, "-- Alice")
    carol = mig.mailboxes["carol@example.org"]
    assert carol["password_recovery_email"] == "carol@home.test"
    assert mig.passwords["carol@example.org"] == ""  # invited: no password of ours
    assert "carol@example.org" not in fsite.secrets()
    assert "alice@example.org" in fsite.secrets()
    assert mig.identities["sales@example.org"]["may_receive"] is False
    assert mig.identities["sales@example.org"]["mailbox"] == "alice@example.org"
    assert mig.identity_passwords["ops@example.org"] == OPS_PW
    assert ("alice@example.org", "alice@elsewhere.test") in mig.forwardings
    assert mig.rewrites[("example.org", "demo")]["destinations"] == [
        "alice@example.org", "carol@example.org"]
    assert_no_secret(r, KEY, OPS_PW, *fsite.secrets().values())

    # Unconfirmed forward: in sync, but reported as pending.
    mig.reset_log()
    r = fsite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    assert mig.calls() == 3  # mailboxes (identities, forwardings embedded), aliases, rewrites
    r = fsite.run("status", "--json")
    assert r.code == 0, r.all
    row = json.loads(r.out)["domains"][0]
    assert row["in_sync"] is True
    assert row["identities"]["present"] == 2 and row["rewrites"]["present"] == 1
    assert len(row["pending"]) == 1 and "awaiting confirmation" in row["pending"][0]
    r = fsite.run("status")
    assert "pending    forward alice@example.org -> alice@elsewhere.test" in r.out
    mig.confirm("alice@example.org", "alice@elsewhere.test")
    r = fsite.run("status", "--json")
    assert json.loads(r.out)["domains"][0]["pending"] == []

    # import -> plan: zero changes.
    fsite.env["OPS_PW"] = OPS_PW
    _, imported = fsite.import_roundtrip("mig")
    dom = imported["domains"]["example.org"]
    a = next(m for m in dom["mailboxes"] if m["local_part"] == "alice")
    assert a["may_send"] is False and a["access"] == {"pop3": False}
    assert a["sender_denylist"] == ["@junk.example", "spam@bad.example"]
    assert a["autoresponder"]["body"] == "Back on Monday"
    assert [i["local_part"] for i in a["identities"]] == ["ops", "sales"]
    assert a["forwards"] == ["alice@elsewhere.test"]
    assert dom["rewrites"] == [{"name": "demo", "local_part_rule": "demo-*",
                                "destinations": ["alice", "carol"], "order": 0}]


def test_only_declared_fields_are_compared_and_sent(fsite: Site, mig: MigaduEmulator) -> None:
    assert fsite.run("apply").code == 0
    alice = mig.mailboxes["alice@example.org"]
    # Not declared: no drift. Lists in another order: no drift.
    alice.update(footer_html_body="<p>someone else's</p>", may_receive=False,
                 sender_denylist=["@junk.example", "SPAM@bad.example"])
    mig.identities["sales@example.org"]["footer_active"] = True
    assert fsite.run("plan", "--detailed-exitcode").code == 0
    # Declared and changed: only that field goes out.
    alice["autorespond_body"] = "changed at Migadu"
    mig.identities["sales@example.org"]["may_receive"] = True
    sent: list[tuple[str, object]] = []
    mig.before = lambda req: sent.append((req.path, req.json())) \
        if req.method == "PUT" else None
    r = fsite.run("plan", "--reconcile")
    assert "autoresponder_body: changed at Migadu -> Back on Monday" in r.out
    r = fsite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sorted(sent, key=str) == [
        ("domains/example.org/mailboxes/alice", {"autorespond_body": "Back on Monday"}),
        ("domains/example.org/mailboxes/alice/identities/sales", {"may_receive": False})]
    assert alice["footer_html_body"] == "<p>someone else's</p>"


def test_forward_and_rewrite_changes_and_prune(fsite: Site, mig: MigaduEmulator) -> None:
    assert fsite.run("apply").code == 0
    text = (HEAD.format(url=mig.url) + BODY).replace(
        "forwards: [alice@elsewhere.test]", "forwards: [alice@other.test]").replace(
        "destinations: [alice, carol]", "destinations: [carol]")
    text = text[:text.index("        identities:")] + text[text.index("      - local_part: carol"):]
    fsite.config(text)
    r, data = fsite.apply_json("--reconcile", "--prune", "--yes")
    assert r.code == 0, r.all
    st = statuses(data)
    assert st == {"update forward alice@example.org": "done",
                  "update rewrite example.org/demo": "done",
                  "delete identity ops@example.org": "done",
                  "delete identity sales@example.org": "done"}
    assert [k for k in mig.forwardings] == [("alice@example.org", "alice@other.test")]
    assert mig.rewrites[("example.org", "demo")]["destinations"] == ["carol@example.org"]
    assert mig.identities == {}
    # Forwards gone from the YAML: every forwarding of the mailbox is removed.
    fsite.config(text.replace("        forwards: [alice@other.test]\n", ""))
    r, data = fsite.apply_json("--prune", "--yes")
    assert statuses(data) == {"delete forward alice@example.org": "done"}
    assert mig.forwardings == {}


def test_identity_conflict_400_and_403_are_handled(fsite: Site, mig: MigaduEmulator) -> None:
    mig.add_mailbox("alice@example.org", "Alice Liddell")
    mig.add_identity("alice@example.org", "sales@example.org", "Sales Team", may_receive=False)
    mig.inject(Fault("status", status=403, body=FORBIDDEN, method="POST", path="rewrites"))
    r, data = fsite.apply_json("--reconcile")
    assert r.code == 0, r.all
    st = statuses(data)
    assert "create identity sales@example.org" not in st  # already there as declared
    assert st["create rewrite example.org/demo"] == "done"  # 403 backed off and retried
    # An identity that exists with other settings: the 400 is settled by re-reading.
    del mig.identities["ops@example.org"]
    mig.add_identity("alice@example.org", "ops@example.org", "Someone")
    mig.identities["ops@example.org"]["may_send"] = True
    mig.before = None
    fsite.config(HEAD.format(url=mig.url) + BODY.replace(
        "          - local_part: ops\n", "          - local_part: ops\n            name: Ops\n"))
    r = fsite.run("plan", "--detailed-exitcode", "--reconcile")
    assert r.code == 2 and "name: Someone -> Ops" in r.out


CAPS = HEAD.format(url="x") + BODY


@pytest.mark.parametrize("ptype", ["mailcow", "dms"])
def test_providers_without_the_features_are_refused_at_validate(
        site: Site, ptype: str) -> None:
    settings = ("url: https://mail.example.org\n    api_key: ${env:MIGADU_KEY}"
                if ptype == "mailcow" else "path: ./dms")
    text = CAPS.replace(
        "type: migadu\n    url: x\n    user: admin@example.org\n    api_key: ${env:MIGADU_KEY}\n"
        "    timeout: 2\n    retry_backoff: 0.01\n"
        "    rate_limit: {requests: 60, per_seconds: 120, backoff_seconds: 0.2}",
        f"type: {ptype}\n    {settings}")
    (site.path / "dms").mkdir()
    site.config(text)
    r = site.run("validate", env={"MIGADU_KEY": KEY, "OPS_PW": OPS_PW})
    assert r.code == 1, r.all
    lines = text.splitlines()
    for key, what in (("may_send", "`may_send` / `may_receive`"),
                      ("access", "protocol access settings (`access`)"),
                      ("sender_denylist", "sender and recipient allow/deny lists"),
                      ("autoresponder", "autoresponders"), ("footer", "footers"),
                      ("identities", "identities"), ("password_method", "password invitations"),
                      ("recovery_email", "password invitations"), ("rewrites", "rewrites")):
        line = next(i for i, t in enumerate(lines, 1) if t.strip().startswith(f"{key}:"))
        col = len(lines[line - 1]) - len(lines[line - 1].lstrip()) + 1
        if key == "rewrites":  # the list item is what is refused
            line, col = line + 1, col + 4
        assert f"mailctl.yaml:{line}:{col}: error: provider 'mig' does not support {what}" \
            in r.err, (line, what, r.err)


def test_invalid_combinations_are_refused(site: Site) -> None:
    site.config(HEAD.format(url="http://x") + """\
    mailboxes:
      - local_part: a
        password_method: invitation
      - local_part: b
        password: ${env:OPS_PW}
        password_method: invitation
        recovery_email: b@home.test
        identities:
          - local_part: x
            password_use: custom
          - local_part: y
            password: ${env:OPS_PW}
    rewrites:
      - name: Bad Name
        local_part_rule: x*
        destinations: [a]
""")
    r = site.run("validate", env={"MIGADU_KEY": KEY, "OPS_PW": OPS_PW})
    assert r.code == 1
    for text in ("`password_method: invitation` needs `recovery_email`",
                 "`password` and `password_method: invitation` exclude each other",
                 "password_use: custom needs a `password`",
                 "an identity's password is only used with password_use: custom",
                 "rewrite name 'Bad Name' is not a slug"):
        assert text in r.err, (text, r.err)
    site.config(HEAD.format(url="http://x") + """\
    mailboxes:
      - local_part: a
        autoresponder: {expires_on: next week}
""")
    r = site.run("validate", env={"MIGADU_KEY": KEY})
    assert r.code == 1 and "mailctl.yaml:15:37: error: expected a date as YYYY-MM-DD" in r.err


def test_import_leaves_out_what_migadu_filled_in(fsite: Site, mig: MigaduEmulator) -> None:
    """Migadu's template autoreply, its default spam settings and a name that is just
    the local part are nobody's choice: `import` does not write them; choices it keeps."""
    from tests.emulators.migadu import TEMPLATE_BODY

    mig.add_mailbox("plain@example.org", "plain")  # as Migadu holds a fresh mailbox
    mig.add_identity("plain@example.org", "id@example.org", "id")
    mig.add_mailbox("away@example.org", "Away Person", spam_aggressiveness="strict",
                    autorespond_active=True)  # switched on, template text kept
    mig.add_mailbox("own@example.org", "own", spam_action="subject",
                    autorespond_subject="Gone", autorespond_body="Back in May")
    r, imported = fsite.import_roundtrip("mig")
    assert "Autoreply: {{subject}}" not in r.out and "out of the office" not in r.out
    boxes = {m["local_part"]: m for m in imported["domains"]["example.org"]["mailboxes"]}
    assert boxes["plain"] == {"local_part": "plain",
                              "identities": [{"local_part": "id"}]}
    assert boxes["away"] == {"local_part": "away", "name": "Away Person",
                             "spam": {"aggressiveness": "strict"},
                             "autoresponder": {"active": True}}
    assert boxes["own"] == {"local_part": "own", "spam": {"action": "tag"},
                            "autoresponder": {"active": False, "subject": "Gone",
                                              "body": "Back in May"}}
    # The template is what a new mailbox holds; the YAML above recreates exactly that.
    assert mig.mailboxes["plain@example.org"]["autorespond_body"] == TEMPLATE_BODY


@pytest.mark.parametrize(("key", "theirs", "ours"), [
    ("action", "subject", "tag"), ("aggressiveness", "strictest", "most_strict")])
def test_migadus_own_spam_words_get_mailctls_spelling(
    site: Site, key: str, theirs: str, ours: str
) -> None:
    site.config(HEAD.format(url="http://x") + f"""\
    mailboxes:
      - local_part: a
        spam: {{{key}: {theirs}}}
""")
    r = site.run("validate", env={"MIGADU_KEY": KEY})
    assert r.code == 1
    assert "mailctl.yaml:15:" in r.err and f"error: invalid value '{theirs}'" in r.err
    assert (f"hint: '{theirs}' is Migadu's word for it: write mailctl's '{ours}', which is "
            f"sent to Migadu as '{theirs}'") in r.err
    site.config(HEAD.format(url="http://x") + f"""\
    mailboxes:
      - local_part: a
        spam: {{{key}: {ours}}}
""")
    assert site.run("validate", env={"MIGADU_KEY": KEY}).code == 0
