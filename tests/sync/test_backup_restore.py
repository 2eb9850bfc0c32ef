"""backup / restore / sync / verify against the real Dovecot sandbox."""

from __future__ import annotations

import imaplib
import json
from pathlib import Path

import pytest

from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import account, cli, connect, dump, epochs, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
T0 = 1_600_000_000


def _plan() -> dict[str, list[tuple[bytes, str, int]]]:
    return {
        "INBOX": [(message(i, big=i == 3), "(\\Seen)" if i % 2 else "()", T0 + i * 3601)
                  for i in range(8)],
        "Archive": [(message(100 + i), "(\\Answered \\Flagged $Work)", T0 - i * 86400)
                    for i in range(3)],
        "Archive.2023": [(message(200), "(\\Seen $Label1 $Label2)", T0 - 10**7)],
        "Empty": [],
    }


def test_imap_maildir_imap_round_trip_is_byte_identical(mailstack: MailStack,
                                                        tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = account(mailstack, "alice")
    b, pb = account(mailstack, "bob")
    fill(info, a, pa, _plan())
    # odd bytes: bare LF body lines, 8-bit, no Message-ID, a duplicate
    odd = b"Subject: odd\r\nX: \xe9\xff\r\n\r\nno newline at end \x00\x01"
    fill(info, a, pa, {"INBOX": [(odd, "()", T0), (odd, "()", T0)]})
    backup = tmp_path / "backup"
    r = cli("backup", url(info, a), str(backup), "--password-file", pwfile(tmp_path, pa))
    assert r.returncode == 0, r.stderr
    assert "copied 14 messages" in r.stdout
    assert (backup / ".Archive.2023" / "cur").is_dir() and (backup / ".Empty" / "cur").is_dir()
    r = cli("restore", str(backup), url(info, b), "--password-file", pwfile(tmp_path, pb, "pb"))
    assert r.returncode == 0, r.stderr
    src, dst = dump(info, a, pa), dump(info, b, pb)
    assert epochs(dst) == epochs(src)  # bodies byte for byte, flags, keywords, instants
    assert len(src["INBOX"]) == 10 and src["Archive.2023"][0][1] == "$Label1 $Label2 \\Seen"
    v = cli("verify", url(info, a), url(info, b), "--password1-file", pwfile(tmp_path, pa),
            "--password2-file", pwfile(tmp_path, pb, "pb"), "--json")
    assert v.returncode == 0, v.stdout + v.stderr
    assert json.loads(v.stdout)["ok"] is True
    # a second restore and backup change nothing
    again = cli("restore", str(backup), url(info, b), "--password-file", str(tmp_path / "pb"),
                "--json")
    assert json.loads(again.stdout)["totals"]["copied"] == 0
    assert dump(info, b, pb) == dst


def test_incremental_adds_flags_deletes_and_uidvalidity_change(mailstack: MailStack,
                                                               tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = account(mailstack, "inc")
    fill(info, a, pa, {"INBOX": [(message(i), "()", T0 + i) for i in range(6)],
                       "Work": [(message(50 + i), "()", T0) for i in range(4)]})
    backup, pw = tmp_path / "bk", pwfile(tmp_path, pa)

    def run() -> dict[str, int]:
        r = cli("backup", url(info, a), str(backup), "--password-file", pw, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["totals"]  # type: ignore[no-any-return]

    def maildir(folder: str = "") -> list[str]:
        return sorted(p.name for p in (backup / folder / "cur").iterdir())

    assert run()["copied"] == 10
    assert run()["copied"] == 0  # nothing changed
    c = connect(info, a, pa)
    c.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(T0), message(7))
    c.select("INBOX")
    c.uid("STORE", "1:2", "+FLAGS", "(\\Seen $Done)")
    c.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    t = run()
    assert (t["copied"], t["flags"], t["deleted"]) == (1, 2, 0)  # backup keeps what was deleted
    names = maildir()
    assert len(names) == 7
    assert sum(n.endswith(",S") or ":2,Sa" in n for n in names) == 2  # \Seen + keyword letter
    assert "$Done" in (backup / "dovecot-keywords").read_text()
    # UIDVALIDITY change: the folder is re-created with the same messages
    c = connect(info, a, pa)
    c.delete("Work")
    c.create("Work")
    for i in range(4):
        c.append("Work", "()", imaplib.Time2Internaldate(T0), message(50 + i))
    c.append("Work", "()", imaplib.Time2Internaldate(T0), message(99))
    c.logout()
    t = run()
    assert (t["copied"], t["adopted"]) == (1, 4)
    assert len(maildir(".Work")) == 5  # no duplicates


def test_restore_into_partly_filled_mailbox_adds_only_the_missing(mailstack: MailStack,
                                                                  tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = account(mailstack, "src")
    b, pb = account(mailstack, "dst")
    msgs = [(message(300 + i), "(\\Seen)", T0 + i) for i in range(10)]
    fill(info, a, pa, {"INBOX": msgs})
    fill(info, b, pb, {"INBOX": [msgs[1], msgs[4], (msgs[7][0], "()", T0 + 7),
                                 (message(999), "()", T0)]})
    backup = tmp_path / "bk"
    assert cli("backup", url(info, a), str(backup), "--password-file",
               pwfile(tmp_path, pa)).returncode == 0
    r = cli("restore", str(backup), url(info, b), "--password-file", pwfile(tmp_path, pb, "pb"),
            "--json")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)["totals"]
    assert (t["copied"], t["adopted"]) == (7, 3)
    inbox = dump(info, b, pb)["INBOX"]
    assert len(inbox) == 11
    assert len({body for body, _, _ in inbox}) == 11
    assert [f for body, f, _ in inbox if b"sender999@" not in body] == ["\\Seen"] * 10
    v = cli("verify", url(info, a), url(info, b), "--password1-file", str(tmp_path / "pw"),
            "--password2-file", str(tmp_path / "pb"))
    assert v.returncode == 1 and "extra" in v.stdout  # the unrelated message is reported
    v = cli("verify", url(info, a), url(info, b), "--password1-file", str(tmp_path / "pw"),
            "--password2-file", str(tmp_path / "pb"), "--allow-extra")
    assert v.returncode == 0, v.stdout


def test_sync_mirror_delete_has_a_safety_share_and_dry_run_changes_nothing(
        mailstack: MailStack, tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = account(mailstack, "m1")
    b, pb = account(mailstack, "m2")
    fill(info, a, pa, {"INBOX": [(message(400 + i), "()", T0) for i in range(10)],
                       "Lists.python": [(message(450), "()", T0)]})
    pw = ["--password1-file", pwfile(tmp_path, pa), "--password2-file", pwfile(tmp_path, pb, "b"),
          "--state", str(tmp_path / "state.db")]
    dry = cli("sync", url(info, a), url(info, b), *pw, "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["totals"]["copied"] == 11
    assert dump(info, b, pb)["INBOX"] == []
    r = cli("sync", url(info, a), url(info, b), *pw, "--map", "Lists=Archive/Lists")
    assert r.returncode == 0, r.stderr
    assert len(dump(info, b, pb)["Archive.Lists.python"]) == 1
    c = connect(info, a, pa)
    c.select("INBOX")
    c.uid("STORE", "1:5", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    mirror = ["--delete", "--map", "Lists=Archive/Lists"]
    r = cli("sync", url(info, a), url(info, b), *pw, *mirror)
    assert r.returncode == 4 and "refusing to delete 5" in r.stdout
    assert len(dump(info, b, pb)["INBOX"]) == 10
    r = cli("sync", url(info, a), url(info, b), *pw, *mirror, "--force")
    assert r.returncode == 0, r.stdout
    assert len(dump(info, b, pb)["INBOX"]) == 5
    # secrets stay out of output and state
    for text in (r.stdout, r.stderr, (tmp_path / "state.db").read_bytes().decode("latin-1")):
        assert pa not in text and pb not in text


def test_bad_password_and_bad_url_fail_cleanly(mailstack: MailStack, tmp_path: Path) -> None:
    a, _ = account(mailstack, "bad")
    r = cli("backup", url(mailstack.info, a), str(tmp_path / "x"), "--password-file",
            pwfile(tmp_path, "wrong-password-xyz"))
    assert r.returncode == 3 and "login failed" in r.stderr
    assert "wrong-password-xyz" not in r.stderr + r.stdout
    assert not (tmp_path / "x").exists()  # nothing created for a login that failed
    r = cli("backup", "imap://nohost", str(tmp_path / "x"), "--password-file",
            str(tmp_path / "pw"))
    assert r.returncode == 64 and "expected imap://" in r.stderr
    assert not (tmp_path / "x").exists()
