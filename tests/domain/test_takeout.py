"""Google Takeout import: `mailctl sync mbox:FILE imap://...` into a real Dovecot.

The mbox files come from tests/domain/takeout.py (written by hand, with every awkward
case Takeout may produce); what must arrive is computed there from each message's
labels, independently of the code under test, and read back over plain imaplib."""

from __future__ import annotations

import imaplib
import json
from pathlib import Path

import pytest

from mailctl.sync.mbox import MboxStore, place, split_labels
from tests.domain.takeout import make_mails, stored_body, write_mbox
from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import account, cli, pwfile, url


def _read_all(stack: MailStack, user: str, pw: str) -> dict[str, list[tuple[bytes, str, str]]]:
    """folder (decoded from modified UTF-7, "/"-separated) -> [(body, flags, date)]."""
    from mailctl.sync.utf7 import decode

    c = imaplib.IMAP4(stack.info.host, stack.info.ports.imap, timeout=30)
    c.login(user, pw)
    out: dict[str, list[tuple[bytes, str, str]]] = {}
    try:
        _, lines = c.list()
        for raw in lines:
            assert isinstance(raw, bytes)
            name = raw.rsplit(b' "." ', 1)[1].strip(b'"').decode()
            if b"\\Noselect" in raw or b"\\NonExistent" in raw:
                continue
            typ, _ = c.select(f'"{name}"', readonly=True)
            assert typ == "OK", raw
            _, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            msgs = []
            for part in data:
                if isinstance(part, tuple):
                    meta = part[0].decode()
                    flags = meta.split("FLAGS (", 1)[1].split(")", 1)[0]
                    flags = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
                    date = meta.split('INTERNALDATE "', 1)[1].split('"', 1)[0]
                    msgs.append((bytes(part[1]), flags, date))
            out[decode(name).replace(".", "/")] = msgs
    finally:
        c.logout()
    return out


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_takeout_import_lands_every_label_once_with_flags_and_dates(
        mailstack: MailStack, tmp_path: Path, crlf: bool) -> None:
    import time

    mails = make_mails(160, seed=3 if crlf else 4)
    mbox = tmp_path / "All mail Including Spam and Trash.mbox"
    write_mbox(mbox, mails, crlf=crlf)
    user, pw = account(mailstack, "takeout")
    pf = pwfile(tmp_path, pw)

    r = cli("sync", f"mbox:{mbox}", url(mailstack.info, user), "--password2-file", pf,
            "--state", str(tmp_path / "state.db"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    expected_copies = sum(len(m.expected_folders) for m in mails)
    assert report["totals"]["copied"] == expected_copies

    got = _read_all(mailstack, user, pw)
    for m in mails:
        want_date = time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(m.date))
        for folder in m.expected_folders:
            hits = [x for x in got.get(folder, []) if x[0] == stored_body(m)]
            assert len(hits) == 1, (folder, m.labels)  # once per label, byte for byte
            assert hits[0][1] == m.expected_flags, (m.labels, hits[0][1])
            assert hits[0][2] == want_date
    # nothing anywhere else: Chat skipped, Trash/Spam exclusive, no stray folders
    assert sum(len(v) for v in got.values()) == expected_copies
    assert "Chat" not in got and "Category Updates" not in got
    assert {"Привет", "Travel/日本", "Reçus & factures", "Receipts, 2024"} <= set(got)

    # the same export again, and a fresh export in another order (other byte offsets):
    # Gmail's ids are the keys, so nothing is copied twice
    r = cli("sync", f"mbox:{mbox}", url(mailstack.info, user), "--password2-file", pf,
            "--state", str(tmp_path / "state.db"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["totals"]["copied"] == 0
    write_mbox(mbox, list(reversed(mails)), crlf=not crlf, fold=False)
    r = cli("sync", f"mbox:{mbox}", url(mailstack.info, user), "--password2-file", pf,
            "--state", str(tmp_path / "state.db"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["copied"] == 0
    assert sum(len(v) for v in _read_all(mailstack, user, pw).values()) == expected_copies


def test_labels_as_keywords_make_one_copy(mailstack: MailStack, tmp_path: Path) -> None:
    from mailctl.sync.utf7 import decode

    mails = make_mails(60, seed=9)
    mbox = tmp_path / "mail.mbox"
    write_mbox(mbox, mails)
    user, pw = account(mailstack, "kw")
    r = cli("sync", f"mbox:{mbox}?labels=keywords", url(mailstack.info, user),
            "--password2-file", pwfile(tmp_path, pw), "--state", str(tmp_path / "s.db"))
    assert r.returncode == 0, r.stderr
    got = _read_all(mailstack, user, pw)
    kept = [m for m in mails if m.expected_folders]
    assert sum(len(v) for v in got.values()) == len(kept)
    for m in kept:
        primary = m.expected_folders[0]
        hits = [x for x in got[primary] if x[0] == stored_body(m)]
        assert len(hits) == 1
        keywords = {decode(k).replace("_", " ") for k in hits[0][1].split()}
        for other in m.expected_folders[1:]:
            if other not in ("INBOX", "Sent", "Drafts"):
                assert other in keywords, (m.labels, hits[0][1])


def test_label_parsing_edge_cases() -> None:
    assert split_labels('Inbox,"Foo, Bar" , Work/X,,') == ["Inbox", "Foo, Bar", "Work/X"]
    assert split_labels('"say \\"hi\\", then"') == ['say "hi", then']
    assert place(["Chat", "Inbox"]) == ([], "")
    assert place(["Trash", "Inbox", "Work"]) == (["Trash"], "\\Seen")
    assert place(["Unread", "Starred", "Inbox"]) == (["INBOX"], "\\Flagged")
    assert place(["Archived", "Opened", "Category Social"]) == (["Archive"], "\\Seen")
    assert place(["/Work//Sub/", "inbox"]) == (["INBOX", "Work/Sub"], "\\Seen")


def test_a_damaged_or_odd_file_is_read_without_losing_messages(tmp_path: Path) -> None:
    """A `From ` line inside a body that no one quoted does not split the message unless
    it looks like a From_ line after a blank line; a file without a final newline and a
    label header folded inside a label still work."""
    raw = (b"From 1@xxx Mon Jan 01 10:00:00 +0000 2024\n"
           b"X-Gmail-Labels: Inbox,Very long\n label name\n"
           b"Subject: one\n\nFrom me to you (unquoted, not after a blank line? it is)\n"
           b"body\n\n"
           b"From 2@xxx Tue Jan 02 10:00:00 +0000 2024\n"
           b"Subject: two\n\nno final newline")
    p = tmp_path / "odd.mbox"
    p.write_bytes(raw)
    store = MboxStore(str(p))
    assert store.folders()["INBOX"].messages == 1
    assert store.folders()["Very long label name"].messages == 1
    assert store.folders()["Archive"].messages == 1  # message 2 has no labels at all
    (one,) = store.fetch("INBOX", ["g1"], {})
    assert one.body.endswith(b"From me to you (unquoted, not after a blank line? it is)"
                             b"\r\nbody\r\n")
    (two,) = store.fetch("Archive", ["g2"], {})
    assert two.body.endswith(b"no final newline") and two.date.startswith("02-Jan-2024")


def test_usage_errors_for_mbox_endpoints(tmp_path: Path) -> None:
    r = cli("sync", f"mbox:{tmp_path}/missing.mbox", f"maildir:{tmp_path}/out")
    assert r.returncode == 64 and "no such file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "a.mbox").write_bytes(b"")
    r = cli("sync", f"mbox:{tmp_path}/a.mbox?labels=tags", f"maildir:{tmp_path}/out")
    assert r.returncode == 64 and "labels='tags'" in r.stderr
    r = cli("sync", f"maildir:{tmp_path}", f"mbox:{tmp_path}/a.mbox")
    assert r.returncode == 64 and "only as the source" in r.stderr
    assert not (tmp_path / "out").exists()
