"""Mailboxes without MOVE (a Maildir through the same Store protocol): copy + delete with
an intent row, so a crash between the copy and the delete leaves one copy, never two."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mailctl.reports.fetch import fetch_folder, open_source
from mailctl.reports.resolve import Mailbox
from mailctl.reports.settings import MailboxSettings
from mailctl.reports.store import ReportStore
from mailctl.reports.unpack import Limits
from mailctl.sync.maildir import MaildirStore
from mailctl.sync.model import Msg
from tests.fixtures.cli import write_config
from tests.reports.test_fetch import others, report_mails

ROOT = Path(__file__).resolve().parents[2]


def _maildir(path: Path, mails: list[bytes]) -> None:
    store = MaildirStore(str(path))
    store.create("INBOX")
    store.append("INBOX", [Msg("", "", "01-Jan-2026 00:00:00 +0000", m) for m in mails])
    store.close()


def _box(path: Path) -> Mailbox:
    return Mailbox(MailboxSettings(url=f"maildir:{path}"), f"maildir:{path}", None, None)


def test_crash_between_copy_and_delete_leaves_one_copy(tmp_path: Path) -> None:
    md = tmp_path / "md"
    mails = report_mails(5, seed=21)
    _maildir(md, mails)
    rs = ReportStore(f"sqlite:///{tmp_path}/r.db")
    mb = _box(md)
    src = open_source(mb)
    # the first pass committed the first mail's report, copied the mail, and died before
    # deleting it from INBOX
    scan = src.scan("INBOX")
    key = sorted(scan.keys)[0]
    body = next(iter(src.fetch("INBOX", [key], {}))).body
    import hashlib

    from mailctl.reports.ingest import read_message

    rs.add(read_message(body).reports, "first pass")
    src.create("Processed")
    rs.begin_move(mb.label + "/INBOX", src.status("INBOX").uidvalidity,  # type: ignore[union-attr]
                  key, hashlib.sha256(body).hexdigest())
    src.append("Processed", [Msg("", "", "01-Jan-2026 00:00:00 +0000", body)])
    res = fetch_folder(src, rs, mb, "INBOX", Limits())
    assert (res.stored, res.moved, res.errors) == (4, 5, [])
    assert sum(v for k, v in rs.counts().items() if k in ("dmarc", "tlsrpt")) == 5
    bodies = [m.body for m in src.fetch("Processed", sorted(src.scan("Processed").keys), {})]
    assert sorted(bodies) == sorted(mails)  # each once: the interrupted copy was not repeated
    assert src.scan("INBOX").keys == set()
    assert rs.pending_moves(mb.label + "/INBOX", 1) == {}
    rs.close()


def test_kill9_on_a_maildir_mailbox(tmp_path: Path) -> None:
    md = tmp_path / "md"
    mails = report_mails(120, seed=5)
    _maildir(md, [*mails, *others()])
    write_config(tmp_path, f"""
        reports:
          store: sqlite:///r.db
          mailboxes:
            - url: maildir:{md}
    """)
    processed = md / ".Processed" / "cur"

    def moved() -> int:
        return len(os.listdir(processed)) if processed.is_dir() else 0

    env = {**os.environ, "MAILCTL_REPORTS_BATCH": "3"}
    env.pop("MAILCTL_CONFIG", None)
    landed = 0
    for target in (10, 35, 60, 90):
        p = subprocess.Popen([sys.executable, "-m", "mailctl", "reports", "fetch", "--once"],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            if moved() >= target:
                p.send_signal(signal.SIGKILL)
                landed += 1
                break
            time.sleep(0.002)
        p.wait()
    assert landed >= 2
    done = subprocess.run([sys.executable, "-m", "mailctl", "reports", "fetch", "--once"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    store = MaildirStore(str(md))
    bodies = [m.body for m in store.fetch("Processed", sorted(store.scan("Processed").keys),
                                          {})]
    assert sorted(bodies) == sorted(mails)
    assert len(store.scan("INBOX").keys) == 2  # the two ordinary mails, untouched
    rs = ReportStore(f"sqlite:///{tmp_path}/r.db")
    keys = rs.report_keys()
    assert len(keys) == len(set(keys)) == 120
    rs.close()
