"""One pass of `mailctl fetch`: pull IMAP accounts, deliver by LMTP/SMTP exactly once.

Exactly once across restarts: before a message is handed to the local server
an intent (account, folder, UIDVALIDITY, UID) is committed; after the 250 the
delivery is recorded and the intent dropped in one transaction (SQLite,
synchronous=FULL), and only then may the message be deleted at the source
(keep: false). A kill -9 between the 250 and that commit leaves an intent
without a record: the next pass does not know whether the local server has
the message (and a server commits what it had received whole even after we
died, so the pass first gives it a second, once). With `check:` (the local
mailbox, IMAP) it looks there - by Message-ID, then by content: a delivered
copy ends with the source's bytes, LMTP only prepends trace headers - and
records it instead of delivering it
again. Without `check:` (or for a message without Message-ID) it delivers
again: never lost, at most once more, and reported as `redelivered`.
SIGTERM/SIGINT (STOP, set by fetchd) finish the message in hand before
stopping. A refused delivery (4xx/5xx) drops the intent and leaves the message
at the source, so the next pass retries it; the error is reported.

The file (fetch.yaml; waiting is fetchd.py's part):

    deliver: {lmtp: /path/to/socket | host:port}  or  {smtp: host:port}
    mode: idle        # or poll; default: idle where the server offers IDLE
    poll_interval: 60 # seconds between passes when polling (`poll:` is the old name)
    state: fetch-state.db
    accounts:
      - src: imaps://alice@mail.example.net
        password_file: alice.pw        # or password_ref: ${env:ALICE_PW}
        to: alice@example.org
        folders: [INBOX]
        keep: true
        check: imap://alice@localhost      # optional, see above; with check_password_file
        mode: poll                         # optional, overrides the global mode
"""

from __future__ import annotations

import contextlib
import smtplib
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.sync.endpoint import parse_endpoint, read_password
from mailctl.sync.engine import SETTLE_AFTER, SETTLE_QUIET
from mailctl.sync.files import load_yaml
from mailctl.sync.imapwire import ImapError, close_gracefully, reset_when_dropped
from mailctl.sync.model import SyncError, UsageError
from mailctl.util.private import private_dir, private_file

if TYPE_CHECKING:
    from mailctl.sync.imapstore import ImapStore


class _Stop:
    """Set from a signal handler (a plain attribute: no lock a handler could wait on)."""

    requested = False


STOP = _Stop()


def load(path: Path) -> dict[str, Any]:
    """fetch.yaml, checked whole before anything runs: every mistake is a UsageError
    naming file:line and what was expected (exit 64)."""
    cfg, lines = load_yaml(path, "a fetch configuration")
    cfg = cfg or {}
    if not isinstance(cfg, dict) or not cfg.get("accounts") or not cfg.get("deliver"):
        raise UsageError(f"{path}: needs deliver: and accounts: (expected a mapping with "
                         "both)")
    unknown = set(cfg) - GLOBAL_KEYS
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(map(str, unknown)))} "
                         f"(expected some of {', '.join(sorted(GLOBAL_KEYS))})")
    d = cfg["deliver"]
    if not isinstance(d, dict) or len(d) != 1 or not (d.get("lmtp") or d.get("smtp")):
        raise UsageError(f"{path}: deliver (expected {{lmtp: SOCKET or host:port}} or "
                         "{smtp: host:port})")
    target = str(d.get("lmtp") or d.get("smtp"))
    if not (d.get("lmtp") and target.startswith("/")):
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise UsageError(f"{path}: deliver: {target!r} (expected host:port with a port "
                             "1-65535" + (", or a socket path" if d.get("lmtp") else "") + ")")
    if not isinstance(cfg["accounts"], list):
        raise UsageError(f"{path}: accounts (expected a list)")
    for where, place in [(cfg, str(path)),
                         *((a, f"{path}:{lines.get(i, '?')}")
                           for i, a in enumerate(cfg["accounts"]))]:
        if not isinstance(where, dict):
            continue  # said below
        if where.get("mode") not in (None, "idle", "poll"):
            raise UsageError(f"{place}: mode must be idle or poll, not {where['mode']!r}")
        for key in ("poll_interval", "poll", "idle_refresh"):
            v = where.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or not 0 < v <= 86400):
                raise UsageError(f"{place}: {key} must be a positive number of seconds "
                                 "(expected 0 < seconds <= 86400)")
    base = path.resolve().parent
    for i, a in enumerate(cfg["accounts"]):
        where = f"{path}:{lines.get(i, '?')}"
        if not isinstance(a, dict) or not a.get("src") or not a.get("to"):
            raise UsageError(f"{where}: an account (expected src: and to:)")
        unknown = set(a) - ACCOUNT_KEYS
        if unknown:
            raise UsageError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))} "
                             f"(expected some of {', '.join(sorted(ACCOUNT_KEYS))})")
        for key, pf, ref in (("src", "password_file", "password_ref"),
                             ("check", "check_password_file", "check_password_ref")):
            if key not in a:
                continue
            try:
                ep = parse_endpoint(str(a[key]))
                if ep.kind != "imap":
                    raise UsageError(f"{key}: {a[key]!r} (expected imap:// or imaps://)")
                if not (a.get(pf) or a.get(ref)):
                    raise UsageError(f"{key} needs a password (expected {pf}: or {ref}:)")
                read_password(base / str(a[pf]) if a.get(pf) else None, a.get(ref), ep.label)
            except UsageError as exc:
                raise UsageError(f"{where}: {exc}") from None
        folders = a.get("folders")
        if folders is not None and (not isinstance(folders, list)
                                    or not all(isinstance(f, str) and f for f in folders)):
            raise UsageError(f"{where}: folders (expected a list of folder names)")
    return cfg


GLOBAL_KEYS = {"deliver", "mode", "poll_interval", "poll", "idle_refresh", "state", "ca_file",
               "accounts"}
ACCOUNT_KEYS = {"src", "password_file", "password_ref", "to", "folders", "keep", "check",
                "check_password_file", "check_password_ref", "check_folder", "mode",
                "poll_interval", "poll", "idle_refresh"}


class Deliverer:
    """One LMTP/SMTP session reused across messages; reconnects after errors.
    `refused` tells a definite answer (4xx/5xx: not delivered) from a lost connection,
    after which the message may or may not have arrived."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.conn: smtplib.SMTP | None = None
        self.refused = False

    def _open(self) -> smtplib.SMTP:
        if self.conn is None:
            target = str(self.spec.get("lmtp") or self.spec.get("smtp"))
            host, _, port = target.rpartition(":")
            if self.spec.get("lmtp"):
                self.conn = (smtplib.LMTP(target, timeout=60) if target.startswith("/")
                             else smtplib.LMTP(host, int(port), timeout=60))
            else:
                self.conn = smtplib.SMTP(host, int(port), timeout=60)
            if self.conn.sock is not None:
                reset_when_dropped(self.conn.sock)  # see imapwire; close() undoes it
        return self.conn

    def deliver(self, to: str, body: bytes) -> str | None:
        """None on success, else the server's complaint (the message stays at the source)."""
        self.refused = True
        try:
            refused = self._open().sendmail("", [to], body)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as exc:
            self.close()
            return str(exc)[:300]
        except (smtplib.SMTPException, OSError) as exc:
            self.refused = False
            self.close()
            return f"delivery interrupted: {exc}"[:300]
        return str(refused[to]) if to in refused else None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                if self.conn.sock is not None:
                    close_gracefully(self.conn.sock)
                self.conn.quit()
            self.conn = None


def open_db(path: Path) -> sqlite3.Connection:
    """The delivery journal: 0600 in a directory mailctl creates 0700 (files.py)."""
    private_dir(str(path.parent))
    private_file(str(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS delivered(account TEXT, folder TEXT, uv INTEGER, "
               "uid INTEGER, at REAL, PRIMARY KEY(account, folder, uv, uid)) WITHOUT ROWID")
    db.execute("CREATE TABLE IF NOT EXISTS intents(account TEXT, folder TEXT, uv INTEGER, "
               "uid INTEGER, at REAL, PRIMARY KEY(account, folder, uv, uid)) WITHOUT ROWID")
    return db


class Checker:
    """The local mailbox (`check:`), asked after a crash whether a message arrived."""

    def __init__(self, acct: dict[str, Any], base: Path, ca_file: str | None) -> None:
        from mailctl.sync.imapstore import ImapStore

        self.folder = str(acct.get("check_folder", "INBOX"))
        if acct.get("open_check"):  # built from mailctl.yaml (domain/inbound.py)
            self.store = acct["open_check"]()
            return
        ep = parse_endpoint(str(acct["check"]))
        pf = acct.get("check_password_file")
        pw = read_password((base / str(pf)) if pf else None, acct.get("check_password_ref"),
                           ep.label)
        self.store = ImapStore(ep, pw, cafile=ca_file, readonly=True)

    def has(self, body: bytes) -> bool:
        from email.parser import BytesHeaderParser

        from mailctl.sync.imapparse import quote

        msgid = BytesHeaderParser().parsebytes(body).get("Message-ID")
        if not msgid:
            return False
        self.store.select(self.folder)
        _, resp = self.store.conn.run(b"UID SEARCH HEADER Message-ID " + quote(str(msgid)))
        uids = [u for r in resp if r.line.startswith(b"* SEARCH")
                for u in r.line[9:].decode().split()]
        want = body.replace(b"\r\n", b"\n")
        return any(m.body.replace(b"\r\n", b"\n").endswith(want)
                   for m in self.store.fetch(self.folder, uids, {}))

    def close(self) -> None:
        self.store.close()


def fetch_account(acct: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer,
                  ca_file: str | None, store: ImapStore | None = None,
                  folders: list[str] | None = None) -> dict[str, Any]:
    """One pass over an account's folders (or `folders`). With `store` (the daemon's
    long-lived IDLE session) that session is used and left open; else one is opened."""
    from mailctl.sync.imapparse import uid_set

    ep = parse_endpoint(str(acct["src"]))
    keep = bool(acct.get("keep", True))
    own = store is None
    if store is None:
        store = open_source(acct, base, ca_file)
    rep: dict[str, Any] = {"account": ep.label, "to": acct["to"], "delivered": 0, "skipped": 0,
                           "deleted": 0, "recovered": 0, "redelivered": 0, "errors": []}
    checker = Checker(acct, base, ca_file) if acct.get("check") or acct.get("open_check") \
        else None
    settled = False
    try:
        for folder in folders or acct_folders(acct):
            store.reselect()  # a fresh SELECT: UIDVALIDITY and the count as of now
            st = store.select(folder)
            store.conn.new_mail = False  # anything arriving from here on is reported again
            done = {r[0] for r in db.execute(
                "SELECT uid FROM delivered WHERE account=? AND folder=? AND uv=?",
                (ep.label, folder, st.uidvalidity))}
            scan = store.scan(folder)
            todo = sorted(int(k) for k in scan.keys if int(k) not in done)
            rep["skipped"] += len(scan.keys) - len(todo)
            finished: list[int] = [int(k) for k in scan.keys if int(k) in done]
            for m in store.fetch(folder, [str(u) for u in todo], {}):
                key = (ep.label, folder, st.uidvalidity, int(m.key))
                intent = db.execute("SELECT at FROM intents WHERE account=? AND folder=? "
                                    "AND uv=? AND uid=?", key).fetchone()
                if intent:  # handed over, then we died (or the connection did)
                    if checker is not None and not settled and \
                            time.time() - intent[0] < SETTLE_AFTER:
                        # the local server may still be committing what it had received
                        # whole (see engine.settle): give it that time once per pass
                        time.sleep(SETTLE_QUIET)
                        settled = True
                    if checker is not None and checker.has(m.body):
                        _delivered(db, key)
                        rep["recovered"] += 1
                        finished.append(int(m.key))
                        continue
                    rep["redelivered"] += 1
                else:
                    db.execute("INSERT INTO intents VALUES (?,?,?,?,?)", (*key, time.time()))
                problem = out.deliver(str(acct["to"]), m.body)
                if problem:
                    if out.refused:  # a definite no: nothing arrived, nothing to doubt
                        db.execute("DELETE FROM intents WHERE account=? AND folder=? AND uv=? "
                                   "AND uid=?", key)
                    rep["errors"].append(f"{folder} UID {m.key}: {problem}")
                    continue
                _delivered(db, key)
                rep["delivered"] += 1
                finished.append(int(m.key))
                if STOP.requested:
                    break
            if not keep and finished:  # only what is durably recorded as delivered
                uids = uid_set(sorted(finished))
                store.conn.run(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uids)
                store.conn.run(b"UID EXPUNGE %s" % uids)
                rep["deleted"] += len(finished)
            if STOP.requested:
                break
    finally:
        if own:
            store.close()
        if checker is not None:
            checker.close()
    return rep


def open_source(acct: dict[str, Any], base: Path, ca_file: str | None) -> ImapStore:
    """The account's session. An account built from mailctl.yaml (domain/inbound.py)
    brings its own opener (`open_src`): it signs in as the provider's master user or
    with an OAuth2 token, which a password file cannot say."""
    from mailctl.sync.imapstore import ImapStore

    if acct.get("open_src"):
        store: ImapStore = acct["open_src"](bool(acct.get("keep", True)))
        return store
    ep = parse_endpoint(str(acct["src"]))
    pf = acct.get("password_file")
    pw = read_password((base / str(pf)) if pf else None, acct.get("password_ref"), ep.label)
    return ImapStore(ep, pw, cafile=ca_file, readonly=bool(acct.get("keep", True)))


def acct_folders(acct: dict[str, Any]) -> list[str]:
    return [str(f) for f in acct.get("folders") or ["INBOX"]]


def _delivered(db: sqlite3.Connection, key: tuple[str, str, int, int]) -> None:
    """The record and the end of the intent, in one durable transaction."""
    db.execute("BEGIN")
    db.execute("INSERT OR IGNORE INTO delivered VALUES (?,?,?,?,?)", (*key, time.time()))
    db.execute("DELETE FROM intents WHERE account=? AND folder=? AND uv=? AND uid=?", key)
    db.execute("COMMIT")


def error_report(acct: dict[str, Any], error: str) -> dict[str, Any]:
    return {"account": acct["src"], "to": acct["to"], "delivered": 0, "skipped": 0,
            "deleted": 0, "recovered": 0, "redelivered": 0, "errors": [error]}


def safe_pass(acct: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer,
               ca_file: str | None) -> dict[str, Any]:
    try:
        return fetch_account(acct, base, db, out, ca_file)
    except (SyncError, ImapError, OSError) as exc:  # unreachable, refused, dropped
        return error_report(acct, str(exc))


def one_pass(cfg: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer
             ) -> list[dict[str, Any]]:
    reports = []
    for acct in cfg["accounts"]:
        reports.append(safe_pass(acct, base, db, out, cfg.get("ca_file")))
        if STOP.requested:
            break
    return reports
