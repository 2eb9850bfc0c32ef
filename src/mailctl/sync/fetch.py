"""`mailctl fetch -f fetch.yaml`: pull remote IMAP accounts, deliver locally by LMTP/SMTP.

Exactly once across restarts: a message is recorded as delivered (SQLite,
synchronous=FULL) right after the local server's 250 for it, and deleted at
the source (keep: false) only after that record is durable. SIGTERM/SIGINT
finish the message in hand before stopping. A delivery error (4xx/5xx)
records nothing and leaves the message at the source, so the next pass
retries it; the error is reported. The one window left is a kill -9 between
the 250 and the commit (a few ms): that message is delivered again, never
lost — stated in docs/sync.md.

    deliver: {lmtp: /path/to/socket | host:port}  or  {smtp: host:port}
    poll: 60          # seconds between passes (IMAP IDLE is not used yet)
    state: fetch-state.db
    accounts:
      - src: imaps://alice@mail.example.net
        password_file: alice.pw        # or password_ref: ${env:ALICE_PW}
        to: alice@example.org
        folders: [INBOX]
        keep: true
"""

from __future__ import annotations

import contextlib
import signal
import smtplib
import sqlite3
import time
from pathlib import Path
from typing import Any

from mailctl.sync.endpoint import parse_endpoint, read_password
from mailctl.sync.model import SyncError
from mailctl.sync.runner import FAILED, OK, USAGE, _fail, table

_stop = False


def _on_signal(signum: int, frame: object) -> None:
    global _stop
    _stop = True


def load(path: Path) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(cfg, dict) or not cfg.get("accounts") or not cfg.get("deliver"):
        raise SyncError(f"{path}: needs `deliver:` and `accounts:`")
    d = cfg["deliver"]
    if not isinstance(d, dict) or not (d.get("lmtp") or d.get("smtp")):
        raise SyncError(f"{path}: deliver needs lmtp: or smtp:")
    for i, a in enumerate(cfg["accounts"], 1):
        if not isinstance(a, dict) or not a.get("src") or not a.get("to"):
            raise SyncError(f"{path}: account {i} needs src and to")
    return cfg


class Deliverer:
    """One LMTP/SMTP session reused across messages; reconnects after errors."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.conn: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        if self.conn is None:
            target = str(self.spec.get("lmtp") or self.spec.get("smtp"))
            host, _, port = target.rpartition(":")
            if self.spec.get("lmtp"):
                self.conn = (smtplib.LMTP(target, timeout=60) if target.startswith("/")
                             else smtplib.LMTP(host, int(port), timeout=60))
            else:
                self.conn = smtplib.SMTP(host, int(port), timeout=60)
        return self.conn

    def deliver(self, to: str, body: bytes) -> str | None:
        """None on success, else the server's complaint (the message stays at the source)."""
        try:
            refused = self._open().sendmail("", [to], body)
        except smtplib.SMTPException as exc:
            self.close()
            return str(exc)[:300]
        except OSError as exc:
            self.close()
            return f"cannot reach the delivery server: {exc}"
        return str(refused[to]) if to in refused else None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.conn.quit()
            self.conn = None


def _db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS delivered(account TEXT, folder TEXT, uv INTEGER, "
               "uid INTEGER, at REAL, PRIMARY KEY(account, folder, uv, uid)) WITHOUT ROWID")
    return db


def fetch_account(acct: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer,
                  ca_file: str | None) -> dict[str, Any]:
    from mailctl.sync.imapstore import ImapStore
    from mailctl.sync.imapwire import uid_set

    ep = parse_endpoint(str(acct["src"]))
    pf = acct.get("password_file")
    pw = read_password((base / str(pf)) if pf else None, acct.get("password_ref"), ep.label)
    keep = bool(acct.get("keep", True))
    store = ImapStore(ep, pw, cafile=ca_file, readonly=keep)
    rep: dict[str, Any] = {"account": ep.label, "to": acct["to"], "delivered": 0, "skipped": 0,
                           "deleted": 0, "errors": []}
    try:
        for folder in acct.get("folders") or ["INBOX"]:
            st = store.select(folder)
            done = {r[0] for r in db.execute(
                "SELECT uid FROM delivered WHERE account=? AND folder=? AND uv=?",
                (ep.label, folder, st.uidvalidity))}
            scan = store.scan(folder)
            todo = sorted(int(k) for k in scan.keys if int(k) not in done)
            rep["skipped"] += len(scan.keys) - len(todo)
            finished: list[int] = [int(k) for k in scan.keys if int(k) in done]
            for m in store.fetch(folder, [str(u) for u in todo], {}):
                problem = out.deliver(str(acct["to"]), m.body)
                if problem:
                    rep["errors"].append(f"{folder} UID {m.key}: {problem}")
                    continue
                db.execute("INSERT OR IGNORE INTO delivered VALUES (?,?,?,?,?)",
                           (ep.label, folder, st.uidvalidity, int(m.key), time.time()))
                rep["delivered"] += 1
                finished.append(int(m.key))
                if _stop:
                    break
            if not keep and finished:  # only what is durably recorded as delivered
                uids = uid_set(sorted(finished))
                store.conn.run(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uids)
                store.conn.run(b"UID EXPUNGE %s" % uids)
                rep["deleted"] += len(finished)
            if _stop:
                break
    finally:
        store.close()
    return rep


def one_pass(cfg: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer
             ) -> list[dict[str, Any]]:
    reports = []
    for acct in cfg["accounts"]:
        try:
            reports.append(fetch_account(acct, base, db, out, cfg.get("ca_file")))
        except SyncError as exc:
            reports.append({"account": acct["src"], "to": acct["to"], "delivered": 0,
                            "skipped": 0, "deleted": 0, "errors": [str(exc)]})
        if _stop:
            break
    return reports


def cmd_fetch(path: Path, *, once: bool = False, as_json: bool = False) -> int:
    import json

    try:
        cfg = load(path)
    except (OSError, SyncError) as exc:
        return _fail(str(exc), USAGE if isinstance(exc, SyncError) else FAILED)
    base = path.resolve().parent
    db = _db(base / str(cfg.get("state", "fetch-state.db")))
    out = Deliverer(cfg["deliver"])
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    poll = float(cfg.get("poll", 60))
    failed = False
    try:
        while True:
            reports = one_pass(cfg, base, db, out)
            failed = any(r["errors"] for r in reports)
            if as_json:
                print(json.dumps({"ok": not failed, "accounts": reports}), flush=True)
            else:
                table(["account", "to", "delivered", "already", "deleted", "errors"],
                      [[r["account"], r["to"], str(r["delivered"]), str(r["skipped"]),
                        str(r["deleted"]), "; ".join(r["errors"])[:120]] for r in reports])
            if once or _stop:
                break
            deadline = time.monotonic() + poll
            while not _stop and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        out.close()
        db.close()
    return FAILED if failed else OK
