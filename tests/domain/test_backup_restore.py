"""`mailctl domain backup` and `domain restore` on real sandboxes.

The seed scenario (from the Mailu backup journal this project started from): a user's
account and mail are wiped on the server; `domain restore DIR --mailbox citest`
re-creates the account and brings back every message byte for byte, with flags and
internal dates, and the probe message that was in the INBOX is there again."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

from tests.domain.conftest import (
    MASTER_PW,
    content,
    enable_master,
    fill_user,
    make_site,
    master_login,
)
from tests.fixtures.mailstack import MailStack, make_message, new_marker
from tests.sync.helpers import assert_private, connect

MAILBOXES = """    mailboxes:
      - local_part: citest
      - local_part: alice
        aliases: [info]
      - local_part: bob
"""


def _probe(stack: MailStack, user: str, marker: str) -> None:
    import imaplib
    import time

    c = connect(stack.info, master_login(user), MASTER_PW)
    try:
        c.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time() - 3600),
                 make_message(marker, subject=f"probe {marker}"))
    finally:
        c.logout()


def test_seed_scenario_restore_one_wiped_mailbox(mailstack_factory: object,
                                                 tmp_path: Path) -> None:
    stack = mailstack_factory()  # type: ignore[operator]
    enable_master(stack)
    site = make_site(tmp_path, {"mail": stack}, "    provider: mail\n" + MAILBOXES)
    r = site.run("apply", "--secrets-out", "secrets.tsv")
    assert r.code == 0, r.all
    dom = site.domain
    citest, alice = f"citest@{dom}", f"alice@{dom}"
    fill_user(stack, master_login(citest), MASTER_PW, 120, seed=5)
    fill_user(stack, master_login(alice), MASTER_PW, 40, seed=6)
    marker = new_marker()
    _probe(stack, citest, marker)
    before = content(stack, master_login(citest), MASTER_PW)
    alice_before = content(stack, master_login(alice), MASTER_PW)

    backup = tmp_path / "backup"
    r = site.run("domain", "backup", dom, backup, "--json")
    assert r.code == 0, r.all
    report = json.loads(r.out)
    assert report["ok"] and {m["address"] for m in report["mailboxes"]} == {
        citest, alice, f"bob@{dom}"}
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["mailboxes"][citest]["messages"] == 121
    assert manifest["mailboxes"][citest]["folders"]["INBOX"]["sha256"]
    assert "mailboxes:" in (backup / "domain.yaml").read_text()
    assert_private(backup)
    assert MASTER_PW not in r.all

    # a second backup copies nothing again
    r = site.run("domain", "backup", dom, backup, "--json")
    assert r.code == 0 and all(m["copied"] == 0 for m in json.loads(r.out)["mailboxes"])

    # wipe citest: account and mail, as an operator's mistake would
    accounts = stack.dms_dir / "postfix-accounts.cf"
    accounts.write_text("".join(line + "\n" for line in accounts.read_text().splitlines()
                                if not line.startswith(citest + "|")))
    stack.sandbox.reload()
    shutil.rmtree(stack.info.state_dir / "mail" / dom / "citest")
    assert site.run("status").code == 2  # citest missing

    r = site.run("domain", "restore", backup, "--mailbox", "citest",
                 "--secrets-out", "restored.tsv", "--json")
    assert r.code == 0, r.all
    out = json.loads(r.out)
    assert out["created"] == [f"mailbox {citest}"]
    assert out["generated_passwords_for"] == [citest]
    new_pw = site.passwords("restored.tsv")[citest]
    assert stat.S_IMODE((tmp_path / "restored.tsv").stat().st_mode) == 0o600
    # the account logs in with its new password, and every message is back
    after = content(stack, citest, new_pw)
    assert after == before
    assert any(marker.encode() in body for body, _, _ in after["INBOX"])
    # nobody else was touched
    assert content(stack, master_login(alice), MASTER_PW) == alice_before
    assert site.run("status").code == 0


def test_restore_onto_an_empty_server_brings_back_accounts_and_mail(
        two_stacks: tuple[MailStack, MailStack], tmp_path: Path) -> None:
    old, new = two_stacks
    site = make_site(tmp_path, {"old": old, "new": new}, "    provider: old\n" + MAILBOXES)
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    dom = site.domain
    for i, user in enumerate(("citest", "alice", "bob")):
        fill_user(old, master_login(f"{user}@{dom}"), MASTER_PW, 30 + i * 10, seed=i)
    backup = tmp_path / "b"
    assert site.run("domain", "backup", dom, backup).code == 0

    r = site.run("domain", "restore", backup, "--to", "new", "--json")
    assert r.code == 0, r.all
    got = json.loads(r.out)
    assert sorted(got["created"]) == sorted([f"mailbox {u}@{dom}" for u in
                                             ("alice", "bob", "citest")] + [f"alias info@{dom}"])
    assert all(m["verify"]["ok"] for m in got["mailboxes"])
    for user in ("citest", "alice", "bob"):
        a = f"{user}@{dom}"
        assert content(new, master_login(a), MASTER_PW) == \
            content(old, master_login(a), MASTER_PW)
    # the alias came back too
    assert f"info@{dom} alice@{dom}" in (new.dms_dir / "postfix-virtual.cf").read_text()
    # restoring again changes nothing and duplicates nothing
    r = site.run("domain", "restore", backup, "--to", "new", "--json")
    assert r.code == 0, r.all
    again = json.loads(r.out)
    assert again["created"] == [] and all(m["copied"] == 0 for m in again["mailboxes"])


def test_bad_input_is_refused_before_anything_happens(two_stacks: tuple[MailStack, MailStack],
                                                      tmp_path: Path) -> None:
    old, _ = two_stacks
    site = make_site(tmp_path, {"old": old}, "    provider: old\n" + MAILBOXES)
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    dom = site.domain
    cases: list[tuple[list[str | Path], int, str]] = [
        (["domain", "backup", dom, tmp_path / "no" / "such" / "dir"], 64, "does not exist"),
        (["domain", "backup", "not a domain", tmp_path / "b"], 64, "DOMAIN"),
        (["domain", "backup", "other.example", tmp_path / "b"], 64, "not declared"),
        (["domain", "backup", dom, tmp_path / "b", "--auth", "magic"], 64, "--auth"),
        (["domain", "backup", dom, tmp_path / "b", "--jobs", "0"], 64, "jobs"),
        (["domain", "backup", dom, tmp_path / "b", "--master-password-file",
          tmp_path / "nope"], 64, "nope"),
        (["domain", "backup", dom, tmp_path / "b", "--imap", "ftp://x"], 64, "--imap"),
        (["domain", "restore", tmp_path / "missing"], 64, "not a directory"),
    ]
    for args, code, text in cases:
        r = site.run(*args)
        assert r.code == code, (args, r.all)
        assert text in r.err and "Traceback" not in r.all, (args, r.err)
    assert not (tmp_path / "b").exists()

    # a wrong master password: exit 3, and no backup directory is left behind
    (tmp_path / "wrong.pw").write_text("not-the-password\n")
    r = site.run("domain", "backup", dom, tmp_path / "b", "--master-password-file",
                 tmp_path / "wrong.pw")
    assert r.code == 3, r.all
    assert "cannot sign in" in r.err and "not-the-password" not in r.all
    assert not (tmp_path / "b").exists()

    # a damaged backup is refused, not restored as if complete
    assert site.run("domain", "backup", dom, tmp_path / "b").code == 0
    fill_user(old, master_login(f"bob@{dom}"), MASTER_PW, 5, seed=9)
    assert site.run("domain", "backup", dom, tmp_path / "b").code == 0
    bob_dir = tmp_path / "b" / "mail" / f"bob@{dom}"
    victim = next(p for p in bob_dir.rglob("cur/*") if p.is_file())
    victim.unlink()
    r = site.run("domain", "restore", tmp_path / "b", "--mailbox", "bob")
    assert r.code == 1 and "damaged" in r.err, r.all
