"""A domain served by two providers for good: hosted inbound + local storage, one YAML.

Two sandboxes: `hosted` receives (and would filter), `local` stores. The YAML names
both (`provider:` and `mirror:`); `apply` creates every mailbox on both with one
password, and `fetch --domain` takes its accounts from the same YAML, so adding a
person is one line (docs/howto-inbound-mirror.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.domain.conftest import MASTER_PW, Site, make_site, master_login
from tests.fixtures.mailstack import (
    MailStack,
    count_messages,
    lmtp_deliver,
    make_message,
    new_marker,
)


def _site(tmp_path: Path, hosted: MailStack, local: MailStack, auth: str = "passwords"
          ) -> Site:
    h, loc = hosted.info, local.info
    hosted_access = (f"  hosted:\n    imap: imap://{h.host}:{h.ports.imap}\n"
                     + ("    auth: passwords\n    passwords: secrets.tsv\n"
                        if auth == "passwords" else
                        "    auth: master\n    master: {user: admin, password: "
                        "\"${file:master.pw}\"}\n"))
    local_access = (f"  local:\n    imap: imap://{loc.host}:{loc.ports.imap}\n"
                    "    auth: master\n    master: {user: admin, password: "
                    "\"${file:master.pw}\"}\n"
                    f"    deliver: lmtp:{loc.lmtp_socket}\n")
    return make_site(tmp_path, {"hosted": hosted, "local": local},
                     "    provider: hosted\n    mirror: local\n    mailboxes:\n"
                     "      - local_part: alice\n      - local_part: bob\n",
                     access={"hosted": hosted_access, "local": local_access})


def _send(stack: MailStack, to: str) -> str:
    marker = new_marker()
    assert lmtp_deliver(stack.info, [to], make_message(marker, subject=f"hi {marker}")) == {}
    return marker


def _add_person(site: Site, local_part: str) -> None:
    cfg = site.path / "mailctl.yaml"
    cfg.write_text(cfg.read_text() + f"      - local_part: {local_part}\n")


def test_one_line_adds_a_person_on_both_sides_and_fetch_brings_the_mail(
        two_stacks: tuple[MailStack, MailStack], tmp_path: Path) -> None:
    hosted, local = two_stacks
    site = _site(tmp_path, hosted, local)
    site.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    dom = site.domain
    r = site.run("apply", "--secrets-out", "secrets.tsv")
    assert r.code == 0, r.all
    pws = site.passwords()
    alice = f"alice@{dom}"
    # the person signs in on both sides with the one password apply wrote
    for stack in (hosted, local):
        assert count_messages(stack.info, alice, pws[alice], "nothing-yet") == 0

    m1 = _send(hosted, alice)
    r = site.run("fetch", "--domain", dom, "--once", "--json")
    assert r.code == 0, r.all
    rep = {a["to"]: a for a in json.loads(r.out.splitlines()[-1])["accounts"]}
    assert set(rep) == {alice, f"bob@{dom}"}
    assert rep[alice]["delivered"] == 1 and not rep[alice]["errors"]
    assert count_messages(local.info, alice, pws[alice], m1) == 1
    assert pws[alice] not in r.all and MASTER_PW not in r.all
    db = tmp_path / "state" / "mailctl" / "fetch" / "domains.db"
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert oct(db.parent.stat().st_mode & 0o777) == "0o700"

    # one line in the YAML: carol exists on both sides and is fetched
    _add_person(site, "carol")
    r = site.run("apply", "--secrets-out", "secrets.tsv")
    assert r.code == 0, r.all
    carol = f"carol@{dom}"
    pws = site.passwords()
    m2 = _send(hosted, carol)
    m3 = _send(hosted, alice)
    r = site.run("fetch", "--mirrors", "--once", "--json")
    assert r.code == 0, r.all
    rep = {a["to"]: a for a in json.loads(r.out.splitlines()[-1])["accounts"]}
    assert rep[carol]["delivered"] == 1 and rep[alice]["delivered"] == 1
    assert rep[alice]["skipped"] == 1  # m1 is not delivered twice
    assert count_messages(local.info, carol, pws[carol], m2) == 1
    assert count_messages(local.info, alice, pws[alice], m1) == 1
    assert count_messages(local.info, alice, pws[alice], m3) == 1
    assert site.run("status").code == 0  # both sides as declared

    # nothing new: nothing delivered again, and the hosted side keeps its copies
    r = site.run("fetch", "--domain", dom, "--once", "--json")
    assert r.code == 0 and all(a["delivered"] == 0
                               for a in json.loads(r.out.splitlines()[-1])["accounts"])
    assert count_messages(hosted.info, alice, pws[alice], m1) == 1

    # a delivery left in doubt by a kill -9 (the journal has the intent, not the record):
    # the mirror's mailbox is asked, the message is recognised, not delivered twice
    import sqlite3

    journal = sqlite3.connect(db)
    with journal:
        rows = journal.execute("SELECT account, folder, uv, uid FROM delivered "
                               "WHERE account LIKE ?", (f"%{carol}%",)).fetchall()
        assert len(rows) == 1
        journal.execute("DELETE FROM delivered WHERE account LIKE ?", (f"%{carol}%",))
        journal.execute("INSERT INTO intents VALUES (?,?,?,?,?)", (*rows[0], 0.0))
    journal.close()
    r = site.run("fetch", "--domain", dom, "--once", "--json")
    assert r.code == 0, r.all
    rep = {a["to"]: a for a in json.loads(r.out.splitlines()[-1])["accounts"]}
    assert rep[carol]["recovered"] == 1 and rep[carol]["delivered"] == 0
    assert count_messages(local.info, carol, pws[carol], m2) == 1


def test_a_password_reference_in_the_yaml_and_a_mailbox_without_credentials(
        two_stacks: tuple[MailStack, MailStack], tmp_path: Path) -> None:
    hosted, local = two_stacks
    site = _site(tmp_path, hosted, local)
    site.env["DAVE_PW"] = "dave-Secret-pw-0815-long-enough-xx"
    cfg = site.path / "mailctl.yaml"
    cfg.write_text(cfg.read_text() + "      - local_part: dave\n"
                   "        password: ${env:DAVE_PW}\n")
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    dave = f"dave@{site.domain}"
    assert dave not in site.passwords()  # declared, not generated
    m = _send(hosted, dave)
    r = site.run("fetch", "-d", site.domain, "--once", "--state", tmp_path / "j.db")
    assert r.code == 0, r.all
    assert count_messages(local.info, dave, site.env["DAVE_PW"], m) == 1
    assert site.env["DAVE_PW"] not in r.all

    # bob's line in the secrets file is lost: fetch names him and changes nothing
    secrets = site.path / "secrets.tsv"
    secrets.write_text("".join(ln + "\n" for ln in secrets.read_text().splitlines()
                               if not ln.startswith("bob@")))
    r = site.run("fetch", "-d", site.domain, "--once", "--state", tmp_path / "j2.db")
    assert r.code == 1, r.all
    assert f"no way to sign in to bob@{site.domain}" in r.err and "Traceback" not in r.all
    assert not (tmp_path / "j2.db").exists()


def test_master_sign_in_and_mistakes(two_stacks: tuple[MailStack, MailStack],
                                     tmp_path: Path) -> None:
    hosted, local = two_stacks
    site = _site(tmp_path, hosted, local, auth="master")
    dom = site.domain
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    bob = f"bob@{dom}"
    m = _send(hosted, bob)
    state = tmp_path / "j.db"
    r = site.run("fetch", "-d", dom, "--once", "--state", state)
    assert r.code == 0, r.all
    assert count_messages(local.info, master_login(bob), MASTER_PW, m) == 1
    assert state.exists()

    cases: list[tuple[list[str | Path], int, str]] = [
        (["fetch", "--once"], 64, "--domain"),
        (["fetch", "--once", "-d", dom, "-f", "fetch.yaml"], 64, "--file with"),
        (["fetch", "--once", "-d", "other.example"], 64, "not declared"),
        (["fetch", "--once", "-d", dom, "--state", tmp_path / "no" / "x.db"], 64, "--state"),
    ]
    for args, code, text in cases:
        r = site.run(*args)
        assert r.code == code, (args, r.all)
        assert text in r.err and "Traceback" not in r.all, (args, r.err)

    # the hosted side refuses the master password: reported per account, exit 1
    (tmp_path / "master.pw").write_text("wrong-master\n")
    r = site.run("fetch", "-d", dom, "--once", "--state", state, "--json")
    assert r.code == 1, r.all
    assert all(a["errors"] for a in json.loads(r.out.splitlines()[-1])["accounts"])
    assert "wrong-master" not in r.all


def test_a_domain_without_a_mirror_is_refused(two_stacks: tuple[MailStack, MailStack],
                                              tmp_path: Path) -> None:
    hosted, _ = two_stacks
    site = make_site(tmp_path, {"hosted": hosted},
                     "    provider: hosted\n    mailboxes:\n      - local_part: a\n")
    r = site.run("fetch", "-d", site.domain, "--once")
    assert r.code == 64 and "has no `mirror:`" in r.err, r.all
    r = site.run("fetch", "--mirrors", "--once")
    assert r.code == 1 and "no domain" in r.err, r.all
