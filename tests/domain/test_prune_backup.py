"""`apply --prune` backs a mailbox's mail up before deleting it (a sandbox, real Dovecot).

The promise (docs/domain.md): the deletion is reversible with `domain restore DIR
--mailbox X`, byte for byte with flags and dates; if the backup cannot be taken the
mailbox is not deleted (exit 3, nothing changed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.domain.conftest import (
    MASTER_PW,
    Site,
    content,
    enable_master,
    fill_user,
    make_site,
    master_login,
)
from tests.fixtures.mailstack import MailStack, make_message, new_marker
from tests.sync.helpers import assert_private, connect

MAILBOXES = """    mailboxes:
      - local_part: alice
      - local_part: bob
      - local_part: carol
"""


def _drop_bob(site_path: Path, extra: str = "") -> None:
    cfg = site_path / "mailctl.yaml"
    text = cfg.read_text().replace("      - local_part: bob\n", "")
    cfg.write_text(text + extra)


def _accounts(stack: MailStack) -> str:
    return (stack.dms_dir / "postfix-accounts.cf").read_text()


def _setup(mailstack_factory: object, tmp_path: Path) -> tuple[MailStack, Site, str, str]:
    import imaplib
    import time

    stack = mailstack_factory()  # type: ignore[operator]
    enable_master(stack)
    site = make_site(tmp_path, {"mail": stack}, "    provider: mail\n" + MAILBOXES)
    site.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    bob = f"bob@{site.domain}"
    fill_user(stack, master_login(bob), MASTER_PW, 80, seed=3)
    marker = new_marker()
    c = connect(stack.info, master_login(bob), MASTER_PW)
    try:
        c.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time() - 7200),
                 make_message(marker, subject="keep me"))
    finally:
        c.logout()
    return stack, site, bob, marker


def test_prune_backs_up_then_restore_brings_the_mailbox_back(
        mailstack_factory: object, tmp_path: Path) -> None:
    stack, site, bob, marker = _setup(mailstack_factory, tmp_path)
    before = content(stack, master_login(bob), MASTER_PW)
    assert sum(len(v) for v in before.values()) == 81
    _drop_bob(tmp_path)

    r = site.run("apply", "--prune", "--yes", "--json")
    assert r.code == 0, r.all
    out = json.loads(r.out)
    where = tmp_path / "state" / "mailctl" / "backups" / site.domain / "mail"
    assert out["backups"] == [{"domain": site.domain, "provider": "mail",
                               "directory": str(where), "mailboxes": [bob], "messages": 81}]
    assert f"backed up {bob} into {where}" in r.err
    assert f"bob@{site.domain}|" not in _accounts(stack)
    assert_private(tmp_path / "state" / "mailctl")
    assert MASTER_PW not in r.all
    # the provider throws the mail away too (as hosted ones do, after their retention)
    shutil.rmtree(stack.info.state_dir / "mail" / site.domain / "bob")

    r = site.run("domain", "restore", where, "--mailbox", "bob",
                 "--secrets-out", "restored.tsv", "--json")
    assert r.code == 0, r.all
    got = json.loads(r.out)
    assert got["created"] == [f"mailbox {bob}"]
    assert got["undeclared"] == [bob]
    pw = site.passwords("restored.tsv")[bob]
    after = content(stack, bob, pw)
    assert after == before  # byte for byte, flags and dates
    assert any(marker.encode() in body and "\\Flagged" in flags
               for body, flags, _ in after["INBOX"])


def test_a_failed_backup_deletes_nothing(mailstack_factory: object, tmp_path: Path) -> None:
    stack, site, bob, _ = _setup(mailstack_factory, tmp_path)
    _drop_bob(tmp_path)
    (tmp_path / "master.pw").write_text("not-the-master-password\n")
    accounts = _accounts(stack)

    r = site.run("apply", "--prune", "--yes")
    assert r.code == 3, r.all
    assert f"cannot back up {bob}" in r.err and "nothing was changed" in r.err
    assert "--no-backup" in r.err
    assert "Traceback" not in r.all and "not-the-master-password" not in r.all
    assert _accounts(stack) == accounts  # bob is still there
    (tmp_path / "master.pw").write_text(MASTER_PW + "\n")
    assert sum(len(v) for v in content(stack, master_login(bob), MASTER_PW).values()) == 81

    # --json: the same refusal as one JSON error
    (tmp_path / "master.pw").write_text("wrong\n")
    r = site.run("apply", "--prune", "--yes", "--json")
    assert r.code == 3 and json.loads(r.out)["error"]["kind"] == "backup", r.all
    assert _accounts(stack) == accounts


def test_backup_folder_from_the_config_and_no_backup(mailstack_factory: object,
                                                    tmp_path: Path) -> None:
    stack, site, bob, _ = _setup(mailstack_factory, tmp_path)
    dom = site.domain
    cfg = tmp_path / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("    provider: mail\n",
                                           "    provider: mail\n    backup: kept/mail\n"))
    _drop_bob(tmp_path)
    r = site.run("apply", "--prune", "--yes")
    assert r.code == 0, r.all
    manifest = json.loads((tmp_path / "kept" / "mail" / "mail" / "manifest.json").read_text())
    assert manifest["mailboxes"][bob]["messages"] == 81
    assert not (tmp_path / "state").exists()

    # --no-backup: alice goes without a backup, and nothing is written anywhere
    cfg.write_text(cfg.read_text().replace("      - local_part: alice\n", ""))
    before = manifest["mailboxes"].keys()
    r = site.run("apply", "--prune", "--yes", "--no-backup")
    assert r.code == 0, r.all
    assert f"alice@{dom}|" not in _accounts(stack) and "backing up" not in r.err
    after = json.loads((tmp_path / "kept" / "mail" / "mail" / "manifest.json").read_text())
    assert after["mailboxes"].keys() == before
