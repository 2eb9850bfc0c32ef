"""The listing in UID windows against real Dovecot: gaps, the `lo:*` edge, folder workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailctl.sync import imapstore
from mailctl.sync.runner import Args, cmd_sync, cmd_verify
from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import account, connect, dump, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
T0 = 1_700_000_000


def test_small_windows_with_uid_gaps_copy_each_message_once(
        mailstack: MailStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imapstore, "SCAN_WINDOW", 3)
    info = mailstack.info
    a, pa = account(mailstack, "win")
    fill(info, a, pa, {"INBOX": [(message(900 + i), "(\\Seen)" if i % 2 else "()", T0 + i)
                                 for i in range(10)],
                       "Work": [(message(950 + i), "($Job)", T0) for i in range(4)]})
    c = connect(info, a, pa)
    c.select("INBOX")
    c.uid("STORE", "4:6,10", "+FLAGS.SILENT", "(\\Deleted)")
    c.expunge()  # left: UIDs 1-3 and 7-9, UIDNEXT 11: windows 1:3, 4:6 (empty), 7:9, 10:*
    c.logout()  # and `10:*` answers UID 9, which must not be copied a second time
    pw, bk = pwfile(tmp_path, pa), tmp_path / "bk"
    args = Args(url(info, a), f"maildir:{bk}", password1_file=Path(pw), jobs=2)
    assert cmd_sync(args) == 0
    assert len(list((bk / "cur").iterdir())) == 6
    assert len(list((bk / ".Work" / "cur").iterdir())) == 4
    fill(info, a, pa, {"INBOX": [(message(999), "()", T0)]})
    assert cmd_sync(args) == 0
    assert len(list((bk / "cur").iterdir())) == 7
    assert cmd_verify(Args(url(info, a), f"maildir:{bk}", password1_file=Path(pw))) == 0


def test_imap_to_imap_with_folder_workers_keeps_order_within_a_folder(
        mailstack: MailStack, tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = account(mailstack, "par")
    b, pb = account(mailstack, "parto")
    plan = {f: [(message(i + 100 * n), "()", T0 + i) for i in range(25)]
            for n, f in enumerate(["INBOX", "A", "B", "C"])}
    fill(info, a, pa, plan)
    args = Args(url(info, a), url(info, b), password1_file=Path(pwfile(tmp_path, pa)),
                password2_file=Path(pwfile(tmp_path, pb, "pb")), state=tmp_path / "s.db",
                jobs=3)
    assert cmd_sync(args) == 0
    got = dump(info, b, pb)
    assert {f: len(v) for f, v in got.items() if v} == {f: 25 for f in plan}
    c = connect(info, b, pb)
    c.select("A", readonly=True)
    _, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    c.logout()
    subjects = [bytes(p[1]).split(b"message ")[1].split()[0] for p in data
                if isinstance(p, tuple)]
    assert subjects == [b"%d" % (100 + i) for i in range(25)]  # UID order = source order
