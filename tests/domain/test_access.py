"""Signing in without users' passwords: the sandbox's master users (docker-mailserver's
dovecot-masters.cf) in both login forms, and per-user passwords from a secrets file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailctl.sandbox.render import RenderError, parse_dms, read_dms
from mailctl.secret import Secret
from mailctl.sync.auth import MasterAuth
from mailctl.sync.endpoint import Endpoint
from mailctl.sync.imapstore import ImapStore
from mailctl.sync.model import SyncError
from tests.domain.conftest import MASTER, MASTER_PW, access_block, enable_master, make_site
from tests.fixtures.mailstack import MailStack, unique_domain


def _store(stack: MailStack, user: str, auth: object) -> ImapStore:
    ep = Endpoint("imap", host=stack.info.host, port=stack.info.ports.imap, user=user)
    return ImapStore(ep, auth)  # type: ignore[arg-type]


def test_master_user_in_both_login_forms(fresh_mailstack: MailStack) -> None:
    stack = fresh_mailstack
    dom = unique_domain("mu")
    stack.set(accounts={f"alice@{dom}": "alice-own-pw", f"bob@{dom}": "bob-own-pw"})
    enable_master(stack)
    for form in ("separator", "authzid"):
        s = _store(stack, f"alice@{dom}", MasterAuth(MASTER, Secret(MASTER_PW), form))
        assert "INBOX" in s.folders()
        s.close()
        with pytest.raises(SyncError, match="as master user"):
            _store(stack, f"alice@{dom}",
                   MasterAuth(MASTER, Secret("wrong-master-pw"), form)).folders()
        with pytest.raises(SyncError):  # no such user: refused, not a crash
            _store(stack, f"ghost@{dom}", MasterAuth(MASTER, Secret(MASTER_PW), form)).folders()
    # an ordinary user is no master: bob's password does not open alice's mailbox
    with pytest.raises(SyncError):
        _store(stack, f"alice@{dom}", MasterAuth(f"bob@{dom}", Secret("bob-own-pw"),
                                                 "authzid")).folders()


def test_masters_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "dovecot-masters.cf").write_text("admin@example.test|{SHA512-CRYPT}$6$x\n")
    with pytest.raises(RenderError, match=r"dovecot-masters\.cf:1: expected NAME"):
        parse_dms(read_dms(tmp_path))
    (tmp_path / "dovecot-masters.cf").write_text("# comment\nadmin|{SHA512-CRYPT}$6$x\n"
                                                 "admin|{SHA512-CRYPT}$6$y\n")
    cfg = parse_dms(read_dms(tmp_path))
    assert cfg.masters == [("admin", "{SHA512-CRYPT}$6$x")] and "duplicate" in cfg.warnings[0]


def test_backup_with_authzid_and_with_users_passwords(
        mailstack_factory: object, tmp_path: Path) -> None:
    stack: MailStack = mailstack_factory()  # type: ignore[operator]
    enable_master(stack)
    authzid = access_block("mail", stack, extra="").replace(
        "password: \"${file:master.pw}\"}", "password: \"${file:master.pw}\", form: authzid}")
    site = make_site(tmp_path, {"mail": stack}, "    provider: mail\n    mailboxes:\n"
                     "      - local_part: a\n      - local_part: b\n",
                     access={"mail": authzid})
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    r = site.run("domain", "backup", site.domain, "b1", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"], r.all
    # the users' own passwords, from the file apply wrote: no master needed
    r = site.run("domain", "backup", site.domain, "b2", "--auth", "passwords",
                 "--passwords", "secrets.tsv", "--json")
    assert r.code == 0 and json.loads(r.out)["ok"], r.all
    for pw in site.passwords().values():
        assert pw not in r.all
    # a user missing from the passwords file is named before anything is done
    first = (tmp_path / "secrets.tsv").read_text().splitlines()[0]
    (tmp_path / "some.tsv").write_text(first + "\n")
    r = site.run("domain", "backup", site.domain, "b3", "--auth", "passwords",
                 "--passwords", "some.tsv")
    assert r.code == 1 and "no way to sign in to 1 mailboxes" in r.err, r.all
    assert not (tmp_path / "b3").exists()
