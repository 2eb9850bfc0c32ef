"""`reports fetch` against the sandbox's Dovecot: a report mailbox filled with real-shaped
reports, broken ones and ordinary mail; each report stored once, moved only after the
commit, hostile mail kept and marked, other mail untouched; kill -9 at any moment."""

from __future__ import annotations

import imaplib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailctl.reports.store import ReportStore
from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.mailstack import MailStack
from tests.reports import gen
from tests.sync.helpers import account, connect

pytestmark = pytest.mark.mailstack
ROOT = Path(__file__).resolve().parents[2]
DAY = 86400
DOMAIN = "acme.test"


def report_mails(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    now = int(time.time())
    out = []
    for i in range(n):
        style = gen.STYLES[i % len(gen.STYLES)]
        begin = (now // DAY - 1 - i % 5) * DAY
        rid = f"{style}-{seed}-{i}"
        if i % 7 == 3:
            js = gen.tls_json("google" if i % 2 else "microsoft", DOMAIN, "mx1.acme.test",
                              report_id=rid, begin=begin, end=begin + DAY - 1, ok=100,
                              failures=[("certificate-expired", 2)])
            out.append(gen.report_mail("google" if i % 2 else "microsoft", DOMAIN,
                                       "dmarc@acme.test", f"{rid}.json.gz",
                                       "application/tlsrpt+gzip", gen.gz(js), report_id=rid,
                                       when=begin + DAY, tls=True))
            continue
        xml = gen.aggregate_xml(style, DOMAIN, gen.sample_rows(DOMAIN, rng, rng.randint(1, 8)),
                                report_id=rid, begin=begin, end=begin + DAY - 1)
        name, ctype, data = gen.packed(style, DOMAIN, begin, begin + DAY - 1, xml, rid)
        out.append(gen.report_mail(style, DOMAIN, "dmarc@acme.test", name, ctype, data,
                                   report_id=rid, when=begin + DAY))
    return out


def hostile_mails() -> list[bytes]:
    def mail(name: str, data: bytes) -> bytes:
        return gen.report_mail("microsoft", DOMAIN, "dmarc@acme.test", name,
                               "application/octet-stream", data, report_id=name, when=1000)

    return [mail("lol.xml", gen.BILLION_LAUGHS), mail("bomb.zip", gen.zip_bomb(60)),
            mail("nested.zip", gen.nested_zip(b"<feedback/>")),
            mail("cut.xml.gz", gen.gz(b"<feedback>" * 100)[:-20])]


def others() -> list[bytes]:
    return [gen.plain_mail("lunch on friday?", "dmarc@acme.test"),
            gen.plain_mail("DMARC policy question", "dmarc@acme.test")]


def append(stack: MailStack, user: str, pw: str, mails: list[bytes], flags: str = "()"
           ) -> None:
    c = connect(stack.info, user, pw)
    try:
        for m in mails:
            typ, _ = c.append("INBOX", flags, None, m)
            assert typ == "OK"
    finally:
        c.logout()


def folder(stack: MailStack, user: str, pw: str, name: str) -> list[tuple[str, str]]:
    """(Message-ID, flags) of every message in `name`."""
    c = connect(stack.info, user, pw)
    try:
        typ, _ = c.select(name, readonly=True)
        if typ != "OK":
            return []
        _, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = []
        for part in data:
            if isinstance(part, tuple):
                meta = part[0].decode()
                flags = meta.split("FLAGS (", 1)[1].split(")", 1)[0]
                mid = part[1].decode().split(":", 1)[1].strip() if b":" in part[1] else ""
                out.append((mid, flags))
        return out
    finally:
        c.logout()


def count(stack: MailStack, user: str, pw: str, name: str) -> int:
    c = imaplib.IMAP4(stack.info.host, stack.info.ports.imap, timeout=10)
    try:
        c.login(user, pw)
        typ, data = c.status(name, "(MESSAGES)")
        if typ != "OK" or not data or data[0] is None:
            return 0
        raw = data[0]
        return int((raw if isinstance(raw, bytes) else b"0").split(b"MESSAGES ")[1].split(
            b")")[0])
    finally:
        c.logout()


def site(tmp_path: Path, stack: MailStack, user: str, extra: str = "") -> Path:
    return write_config(tmp_path, f"""
        reports:
          store: sqlite:///state/reports.db
          mailboxes:
            - url: imap://{user}@{stack.info.host}:{stack.info.ports.imap}
              password: ${{env:REPORTS_PW}}
              processed: Processed
{extra}
    """)


def test_fetch_files_reports_keeps_the_rest(mailstack: MailStack, tmp_path: Path) -> None:
    user, pw = account(mailstack, "dmarc")
    reports = report_mails(12)
    append(mailstack, user, pw, reports)
    append(mailstack, user, pw, hostile_mails())
    append(mailstack, user, pw, others(), flags="(\\Seen $Label1)")
    site(tmp_path, mailstack, user)
    env = {"REPORTS_PW": pw}
    res = run_cli("reports", "fetch", "--once", "--json", cwd=tmp_path, env=env)
    assert res.code == 0, res.all
    got = json.loads(res.out.strip().splitlines()[-1])
    assert (got["stored"], got["mails"], got["rejected"], got["ignored"], got["moved"]) == (
        12, 12, 4, 2, 12)
    assert any("declares a DTD" in r for r in got["reasons"])
    assert any("archive inside an archive" in r for r in got["reasons"])
    assert pw not in res.all
    processed = folder(mailstack, user, pw, "Processed")
    assert sorted(m for m, _ in processed) == sorted(
        ln.split(b":", 1)[1].strip().decode() for m in reports for ln in m.splitlines()
        if ln.lower().startswith(b"message-id:"))
    inbox = folder(mailstack, user, pw, "INBOX")
    assert len(inbox) == 6
    marked = [f for _, f in inbox if "$MailctlReportRejected" in f]
    assert len(marked) == 4
    untouched = [f for _, f in inbox if "$MailctlReportRejected" not in f]
    assert [sorted(f.split()) for f in untouched] == [["$Label1", "\\Seen"]] * 2
    # once more: nothing new, nothing moved, nothing downloaded again
    res = run_cli("reports", "fetch", "--once", "--json", cwd=tmp_path, env=env)
    again = json.loads(res.out.strip().splitlines()[-1])
    assert (again["stored"], again["rejected"], again["moved"], again["skipped"]) == (0, 0, 0, 6)
    store = ReportStore(f"sqlite:///{tmp_path}/state/reports.db")
    assert store.counts()["dmarc"] + store.counts().get("tlsrpt", 0) == 12
    store.close()
    # the same report mailed again is stored once and still filed away
    append(mailstack, user, pw, reports[:2])
    res = run_cli("reports", "fetch", "--once", "--json", cwd=tmp_path, env=env)
    third = json.loads(res.out.strip().splitlines()[-1])
    assert (third["stored"], third["duplicates"], third["moved"]) == (0, 2, 2)


def _kill_by_progress(args: list[str], env: dict[str, str], progress: Callable[[], int],
                      total: int, rounds: int = 6) -> int:
    rng = random.Random(99)
    landed = 0
    full = {**os.environ, **env, "MAILCTL_REPORTS_BATCH": "4"}
    for _ in range(rounds):
        target = progress() + rng.randint(3, 25)
        if target >= total:
            break
        p = subprocess.Popen([sys.executable, "-m", "mailctl", *args], env=full,
                             cwd=env["CWD"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            if progress() >= target:
                p.send_signal(signal.SIGKILL)
                landed += 1
                break
            time.sleep(0.003)
        p.wait()
    return landed


def test_kill9_during_fetch_then_rerun_stores_each_once(mailstack: MailStack,
                                                        tmp_path: Path) -> None:
    user, pw = account(mailstack, "killdmarc")
    reports = report_mails(150, seed=3)
    append(mailstack, user, pw, reports)
    append(mailstack, user, pw, others())
    site(tmp_path, mailstack, user)
    env = {"REPORTS_PW": pw, "CWD": str(tmp_path)}
    landed = _kill_by_progress(["reports", "fetch", "--once"], env,
                               lambda: count(mailstack, user, pw, "Processed"), 150)
    assert landed >= 3
    res = run_cli("reports", "fetch", "--once", "--json", cwd=tmp_path,
                  env={"REPORTS_PW": pw})
    assert res.code == 0, res.all
    store = ReportStore(f"sqlite:///{tmp_path}/state/reports.db")
    keys = store.report_keys()
    assert len(keys) == len(set(keys)) == 150
    store.close()
    processed = folder(mailstack, user, pw, "Processed")
    assert len(processed) == 150 and len({m for m, _ in processed}) == 150
    assert len(folder(mailstack, user, pw, "INBOX")) == 2


def test_idle_stores_a_new_report_at_once_and_stops_cleanly(mailstack: MailStack,
                                                             tmp_path: Path) -> None:
    user, pw = account(mailstack, "idledmarc")
    site(tmp_path, mailstack, user)
    env = {**os.environ, "REPORTS_PW": pw}
    env.pop("MAILCTL_CONFIG", None)
    p = subprocess.Popen([sys.executable, "-m", "mailctl", "reports", "fetch", "--json"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline() if p.stdout else ""
        assert json.loads(first)["errors"] == []
        t0 = time.monotonic()
        append(mailstack, user, pw, report_mails(1, seed=11))
        line = p.stdout.readline() if p.stdout else ""
        took = time.monotonic() - t0
        got = json.loads(line)
        assert got["stored"] == 1 and got["moved"] == 1
        assert took < 10  # IDLE, not the 300 s poll
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_unreachable_mailbox_exits_3_without_the_password(tmp_path: Path) -> None:
    write_config(tmp_path, """
        reports:
          mailboxes:
            - url: imap://someone@127.0.0.1:1
              password: ${env:REPORTS_PW}
    """)
    res = run_cli("reports", "fetch", "--once", cwd=tmp_path,
                  env={"REPORTS_PW": "s3cret-Pa55word"})
    assert res.code == 3, res.all
    assert "cannot connect" in res.out
    assert "s3cret-Pa55word" not in res.all
