"""`mailctl fetch -f fetch.yaml`: the daemon around fetch.py's exactly-once pass.

Waiting (without --once): IMAP IDLE (RFC 2177) where the server advertises it,
else polling; `mode: idle|poll` (global or per account) decides. In IDLE every
watched folder has its own session (IDLE watches the selected folder only);
one select() waits on all of them. An EXISTS (or RECENT) ends the IDLE with
DONE, the folder gets a normal pass on the same session, and IDLE starts again.
A pass also runs every `idle_refresh` seconds (at most 29 minutes, so the IDLE
is re-issued as the RFC asks), after `poll_interval` when the last pass had
errors, and after a reconnect (backoff 1 s doubling to 5 min).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.sync.endpoint import parse_endpoint
from mailctl.sync.fetch import (
    STOP,
    Deliverer,
    acct_folders,
    error_report,
    fetch_account,
    load,
    one_pass,
    open_db,
    open_source,
    safe_pass,
)
from mailctl.sync.files import read_text
from mailctl.sync.imapwire import IDLE_MAX, ImapError
from mailctl.sync.model import SyncError, UsageError
from mailctl.sync.runner import FAILED, OK, USAGE, _fail, table

if TYPE_CHECKING:
    from mailctl.sync.imapstore import ImapStore


def _on_signal(signum: int, frame: object) -> None:
    STOP.requested = True


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


def _read_idle(cfg: dict[str, Any], ready: list[Watch],
               report: Callable[[tuple[int, str], dict[str, Any]], None]) -> None:
    """Read what IDLE sessions received (sets new_mail on EXISTS/RECENT); a session that
    broke is reported and dropped, to be opened again after its backoff."""
    for w in ready:
        if w.store is None:
            continue
        try:
            w.store.conn.idle_read()
        except (ImapError, OSError) as exc:
            key = (cfg["accounts"].index(w.acct), w.folder)
            report(key, error_report(w.acct, f"{w.folder}: {exc}"))
            w.drop(time.monotonic())


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
        while not STOP.requested:
            now = time.monotonic()
            for i, due in list(polled.items()):
                if now >= due and not STOP.requested:
                    acct = cfg["accounts"][i]
                    report((i, ""), safe_pass(acct, base, db, out, ca))
                    polled[i] = time.monotonic() + _poll_interval(cfg, acct)
            for w in list(watches):
                if STOP.requested:
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
                        if not STOP.requested:
                            conn.idle_start()  # news sent before its `+`: pass again
                            w.backoff = 0.0
                except (SyncError, ImapError, OSError) as exc:
                    report(key, error_report(w.acct, f"{w.folder}: {exc}"))
                    w.drop(time.monotonic())
            if STOP.requested:
                break
            # wait: for news on any IDLE session, the next due pass, or a signal
            live = [w for w in watches if w.store is not None and w.store.connected]
            # what is already received is read first: select() cannot see it, and a loop
            # that only waited for it to be read would spin
            _read_idle(cfg, [w for w in live if w.store.conn.buffered()],  # type: ignore[union-attr]
                       report)
            if any(w.store.conn.new_mail for w in live if w.store is not None):
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
            _read_idle(cfg, [w for w in live if w.store is not None
                             and w.store.conn.sock in ready], report)
    finally:
        for w in watches:
            w.close()
    return any(latest.values())


def _note(text: str) -> None:
    print(f"mailctl fetch: {text}", file=sys.stderr, flush=True)


def cmd_fetch(path: Path, *, once: bool = False, as_json: bool = False) -> int:
    try:
        cfg = load(path)
        if cfg.get("ca_file"):  # relative to the file, like every path in it
            cfg["ca_file"] = str(path.resolve().parent / str(cfg["ca_file"]))
            read_text(cfg["ca_file"], "ca_file")
    except UsageError as exc:
        return _fail(str(exc), USAGE, as_json)
    base = path.resolve().parent
    return run_fetch(cfg, base, base / str(cfg.get("state", "fetch-state.db")), once=once,
                     as_json=as_json)


def run_fetch(cfg: dict[str, Any], base: Path, state: Path, *, once: bool = False,
              as_json: bool = False) -> int:
    """A checked configuration (fetch.yaml's, or one built from mailctl.yaml by
    domain/inbound.py): one pass, or the daemon until SIGTERM."""
    import json

    STOP.requested = False
    try:
        db = open_db(state)
    except (OSError, sqlite3.Error) as exc:
        return _fail(f"the fetch state {state}: {exc}", FAILED, as_json)
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

    from mailctl.util.signals import stop_signals

    try:
        with stop_signals(_on_signal) as wake:
            if once:
                reports = one_pass(cfg, base, db, out)
                emit(reports)
                failed = any(r["errors"] for r in reports)
            else:
                failed = _daemon(cfg, base, db, out, emit, wake)
    finally:
        out.close()
        db.close()
    return FAILED if failed else OK
