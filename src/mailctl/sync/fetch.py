"""`mailctl fetch -f fetch.yaml`: pull remote IMAP accounts, deliver locally by LMTP/SMTP.

Exactly once across restarts: before a message is handed to the local server
an intent (account, folder, UIDVALIDITY, UID) is committed; after the 250 the
delivery is recorded and the intent dropped in one transaction (SQLite,
synchronous=FULL), and only then may the message be deleted at the source
(keep: false). A kill -9 between the 250 and that commit leaves an intent
without a record: the next pass does not know whether the local server has
the message. With `check:` (the local mailbox, IMAP) it looks there - by
Message-ID, then by content: a delivered copy ends with the source's bytes,
LMTP only prepends trace headers - and records it instead of delivering it
again. Without `check:` (or for a message without Message-ID) it delivers
again: never lost, at most once more, and reported as `redelivered`.
SIGTERM/SIGINT finish the message in hand before stopping. A refused delivery
(4xx/5xx) drops the intent and leaves the message at the source, so the next
pass retries it; the error is reported.

Waiting (without --once): IMAP IDLE (RFC 2177) where the server advertises it,
else polling; `mode: idle|poll` (global or per account) decides. In IDLE every
watched folder has its own session (IDLE watches the selected folder only);
one select() waits on all of them. An EXISTS (or RECENT) ends the IDLE with
DONE, the folder gets a normal pass on the same session, and IDLE starts again.
A pass also runs every `idle_refresh` seconds (at most 29 minutes, so the IDLE
is re-issued as the RFC asks), after `poll_interval` when the last pass had
errors, and after a reconnect (backoff 1 s doubling to 5 min).

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
import signal
import smtplib
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.sync.endpoint import parse_endpoint, read_password
from mailctl.sync.imapwire import IDLE_MAX, ImapError
from mailctl.sync.model import SyncError
from mailctl.sync.runner import FAILED, OK, USAGE, _fail, table

if TYPE_CHECKING:
    from mailctl.sync.imapstore import ImapStore

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
    for where in [cfg, *cfg["accounts"]]:
        if where.get("mode") not in (None, "idle", "poll"):
            raise SyncError(f"{path}: mode must be idle or poll, not {where['mode']!r}")
        for key in ("poll_interval", "poll", "idle_refresh"):
            v = where.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or v <= 0):
                raise SyncError(f"{path}: {key} must be a positive number of seconds")
    return cfg


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
                self.conn.quit()
            self.conn = None


def _db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
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

        ep = parse_endpoint(str(acct["check"]))
        pf = acct.get("check_password_file")
        pw = read_password((base / str(pf)) if pf else None, acct.get("check_password_ref"),
                           ep.label)
        self.store = ImapStore(ep, pw, cafile=ca_file, readonly=True)
        self.folder = str(acct.get("check_folder", "INBOX"))

    def has(self, body: bytes) -> bool:
        from email.parser import BytesHeaderParser

        from mailctl.sync.imapwire import quote

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
    from mailctl.sync.imapwire import uid_set

    ep = parse_endpoint(str(acct["src"]))
    keep = bool(acct.get("keep", True))
    own = store is None
    if store is None:
        store = open_source(acct, base, ca_file)
    rep: dict[str, Any] = {"account": ep.label, "to": acct["to"], "delivered": 0, "skipped": 0,
                           "deleted": 0, "recovered": 0, "redelivered": 0, "errors": []}
    checker = Checker(acct, base, ca_file) if acct.get("check") else None
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
                if db.execute("SELECT 1 FROM intents WHERE account=? AND folder=? AND uv=? "
                              "AND uid=?", key).fetchone():  # handed over, then we died
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
        if own:
            store.close()
        if checker is not None:
            checker.close()
    return rep


def open_source(acct: dict[str, Any], base: Path, ca_file: str | None) -> ImapStore:
    from mailctl.sync.imapstore import ImapStore

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


def _error_report(acct: dict[str, Any], error: str) -> dict[str, Any]:
    return {"account": acct["src"], "to": acct["to"], "delivered": 0, "skipped": 0,
            "deleted": 0, "recovered": 0, "redelivered": 0, "errors": [error]}


def _safe_pass(acct: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer,
               ca_file: str | None) -> dict[str, Any]:
    try:
        return fetch_account(acct, base, db, out, ca_file)
    except (SyncError, ImapError, OSError) as exc:  # unreachable, refused, dropped
        return _error_report(acct, str(exc))


def one_pass(cfg: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer
             ) -> list[dict[str, Any]]:
    reports = []
    for acct in cfg["accounts"]:
        reports.append(_safe_pass(acct, base, db, out, cfg.get("ca_file")))
        if _stop:
            break
    return reports


def _setting(cfg: dict[str, Any], acct: dict[str, Any], key: str, default: Any) -> Any:
    """A per-account value, else the global one, else `default`."""
    if acct.get(key) is not None:
        return acct[key]
    if cfg.get(key) is not None:
        return cfg[key]
    return default


def _poll_interval(cfg: dict[str, Any], acct: dict[str, Any]) -> float:
    return float(_setting(cfg, acct, "poll_interval", cfg.get("poll", 60)))


class Watch:
    """One folder of one account watched in IDLE, on its own session (IMAP IDLE watches
    the selected folder only). The session is also the one each pass fetches on."""

    def __init__(self, acct: dict[str, Any], folder: str) -> None:
        self.acct = acct
        self.folder = folder
        self.store: ImapStore | None = None
        self.due = 0.0  # monotonic time of the next pass even without news
        self.retry = 0.0  # monotonic time of the next connection attempt
        self.backoff = 0.0

    def drop(self, now: float) -> None:
        """The session is gone or unusable: reconnect later, waiting longer each time."""
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.conn.sock.close()
            self.store = None
        self.backoff = min(max(1.0, self.backoff * 2), MAX_BACKOFF)
        self.retry = now + self.backoff

    def close(self) -> None:
        """A clean end: DONE (wait for its OK), then LOGOUT."""
        if self.store is None or not self.store.connected:
            return
        with contextlib.suppress(ImapError, OSError):
            self.store.conn.sock.settimeout(5)
            self.store.conn.idle_done()
        with contextlib.suppress(Exception):
            self.store.close()
        self.store = None


MAX_BACKOFF = 300.0


def _daemon(cfg: dict[str, Any], base: Path, db: sqlite3.Connection, out: Deliverer,
            emit: Callable[[list[dict[str, Any]]], None], wake: socket.socket | None) -> bool:
    """IDLE where the server offers it (or `mode: idle`), polling elsewhere (`mode: poll`).
    Single-threaded: one select() over every IDLE session. Returns whether the latest
    report of some account or folder has errors."""
    import select

    ca = cfg.get("ca_file")
    refresh = min(float(cfg.get("idle_refresh", IDLE_MAX)), IDLE_MAX)
    latest: dict[tuple[int, str], bool] = {}  # (account, folder or "") -> had errors
    watches: list[Watch] = []
    polled: dict[int, float] = {}  # account index -> next pass (monotonic)
    for i, acct in enumerate(cfg["accounts"]):
        if str(_setting(cfg, acct, "mode", "auto")) == "poll":
            polled[i] = 0.0
        else:
            watches += [Watch(acct, f) for f in acct_folders(acct)]

    def report(key: tuple[int, str], rep: dict[str, Any]) -> None:
        latest[key] = bool(rep["errors"])
        emit([rep])

    def to_polling(w: Watch) -> None:
        acct = w.acct
        i = cfg["accounts"].index(acct)
        mode = _setting(cfg, acct, "mode", "auto")
        _note(f"{parse_endpoint(str(acct['src'])).label}: no IDLE at the server"
              + (" (mode: idle)" if mode == "idle" else "") + ", polling instead")
        for other in [x for x in watches if x.acct is acct]:
            other.close()
            watches.remove(other)
        polled[i] = 0.0

    try:
        while not _stop:
            now = time.monotonic()
            for i, due in list(polled.items()):
                if now >= due and not _stop:
                    acct = cfg["accounts"][i]
                    report((i, ""), _safe_pass(acct, base, db, out, ca))
                    polled[i] = time.monotonic() + _poll_interval(cfg, acct)
            for w in list(watches):
                if _stop:
                    break
                if w not in watches:  # its account went over to polling just now
                    continue
                now = time.monotonic()
                key = (cfg["accounts"].index(w.acct), w.folder)
                try:
                    if w.store is None:
                        if now < w.retry:
                            continue
                        w.store = open_source(w.acct, base, ca)
                        if not w.store.has("IDLE"):
                            to_polling(w)
                            continue
                        w.due = 0.0
                    conn = w.store.conn
                    if conn.new_mail or now >= w.due or not conn.idling:
                        conn.idle_done()
                        rep = fetch_account(w.acct, base, db, out, ca, store=w.store,
                                            folders=[w.folder])
                        report(key, rep)
                        w.due = time.monotonic() + (_poll_interval(cfg, w.acct)
                                                    if rep["errors"] else refresh)
                        if not _stop:
                            conn.idle_start()  # news sent before its `+`: pass again
                            w.backoff = 0.0
                except (SyncError, ImapError, OSError) as exc:
                    report(key, _error_report(w.acct, f"{w.folder}: {exc}"))
                    w.drop(time.monotonic())
            if _stop:
                break
            # wait: for news on any IDLE session, the next due pass, or a signal
            live = [w for w in watches if w.store is not None and w.store.connected]
            if any(w.store.conn.new_mail or w.store.conn.buffered()  # type: ignore[union-attr]
                   for w in live):
                continue
            now = time.monotonic()
            times = [w.due if w.store is not None else w.retry for w in watches]
            times += list(polled.values())
            timeout = max(0.0, min([now + 5.0, *times]) - now)
            fds: list[Any] = [w.store.conn.sock for w in live]  # type: ignore[union-attr]
            if wake is not None:
                fds.append(wake)
            try:
                ready = select.select(fds, [], [], timeout)[0]
            except OSError:  # a socket closed under us: its read below will say so
                ready = fds
            if wake is not None and wake in ready:
                with contextlib.suppress(OSError):
                    wake.recv(64)
            for w in live:
                if w.store is None or w.store.conn.sock not in ready:
                    continue
                try:
                    w.store.conn.idle_read()  # sets new_mail on EXISTS/RECENT
                except (ImapError, OSError) as exc:
                    key = (cfg["accounts"].index(w.acct), w.folder)
                    report(key, _error_report(w.acct, f"{w.folder}: {exc}"))
                    w.drop(time.monotonic())
    finally:
        for w in watches:
            w.close()
    return any(latest.values())


def _note(text: str) -> None:
    print(f"mailctl fetch: {text}", file=sys.stderr, flush=True)


def cmd_fetch(path: Path, *, once: bool = False, as_json: bool = False) -> int:
    import json

    global _stop
    _stop = False
    try:
        cfg = load(path)
    except (OSError, SyncError) as exc:
        return _fail(str(exc), USAGE if isinstance(exc, SyncError) else FAILED)
    base = path.resolve().parent
    db = _db(base / str(cfg.get("state", "fetch-state.db")))
    out = Deliverer(cfg["deliver"])

    def emit(reports: list[dict[str, Any]]) -> None:
        if as_json:
            print(json.dumps({"ok": not any(r["errors"] for r in reports),
                              "accounts": reports}), flush=True)
        else:
            table(["account", "to", "delivered", "already", "recovered", "redelivered",
                   "deleted", "errors"],
                  [[r["account"], r["to"], str(r["delivered"]), str(r["skipped"]),
                    str(r.get("recovered", 0)), str(r.get("redelivered", 0)),
                    str(r["deleted"]), "; ".join(r["errors"])[:120]] for r in reports])
            sys.stdout.flush()

    # A signal ends a wait in select() at once: the handler sets _stop, the wake-up fd
    # makes the socket readable.
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    try:
        old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        old_fd = None
    try:
        if once:
            reports = one_pass(cfg, base, db, out)
            emit(reports)
            failed = any(r["errors"] for r in reports)
        else:
            failed = _daemon(cfg, base, db, out, emit, wake_r if old_fd is not None else None)
    finally:
        if old_fd is not None:
            signal.set_wakeup_fd(old_fd)
        wake_r.close()
        wake_w.close()
        for s, h in old.items():
            signal.signal(s, h)
        out.close()
        db.close()
    return FAILED if failed else OK
