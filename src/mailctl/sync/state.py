"""Sync state: which source message became which target message, in SQLite.

Why SQLite and not a JSON/text file: a batch of pairs is one durable
transaction (WAL, synchronous=FULL), updates are O(batch) rather than a
rewrite of the whole file per run (imap-backup #157 wrote 1 TB of metadata
that way), and a kill -9 leaves the last committed batch, never a torn file.

Per source folder: the UIDVALIDITY on both sides and the source's UIDNEXT,
HIGHESTMODSEQ and message count at the last complete pass (a folder whose
status still matches is skipped without being opened). Per message: source
key, target key, flags last written and a content hash, which lets a
UIDVALIDITY change or a lost target state be repaired without copying again.

`pending`: what a run handed to a target server before the server confirmed
it (source key, content hash, run). A server finishes a command it had fully
received even when the client that sent it was killed, and may do so after the
next run has looked at the target (measured on Dovecot: up to 1.6 s after the
kill). Rows a confirmed batch leaves are deleted with its pairs; rows found at
the start of a run are a dead run's, and tell the engine which folders to let
settle and which late copies at the target are its own duplicates.
"""

from __future__ import annotations

import os
import sqlite3
import time
from _thread import allocate_lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folders(
  src TEXT PRIMARY KEY, dst TEXT, src_uv INTEGER, dst_uv INTEGER,
  src_next INTEGER, src_modseq INTEGER, src_count INTEGER, max_uid INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pairs(
  src TEXT, skey TEXT, dkey TEXT, flags TEXT, hash TEXT, PRIMARY KEY(src, skey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending(
  src TEXT, skey TEXT, run INTEGER, hash TEXT, at REAL, PRIMARY KEY(src, skey, run)
) WITHOUT ROWID;
"""


class FolderState:
    """One `folders` row (a plain class: see model.py on import cost)."""

    __slots__ = ("dst", "dst_uv", "max_uid", "src", "src_count", "src_modseq", "src_next",
                 "src_uv")

    def __init__(self, src: str, dst: str, src_uv: int, dst_uv: int, src_next: int,
                 src_modseq: int, src_count: int, max_uid: int) -> None:
        self.src, self.dst, self.src_uv, self.dst_uv = src, dst, src_uv, dst_uv
        self.src_next, self.src_modseq, self.src_count, self.max_uid = (
            src_next, src_modseq, src_count, max_uid)


class Pair:
    __slots__ = ("dkey", "flags", "hash")

    def __init__(self, dkey: str, flags: str, hash: str) -> None:
        self.dkey, self.flags, self.hash = dkey, flags, hash


class State:
    def __init__(self, path: str | os.PathLike[str], durable: bool = True,
                 dry_run: bool = False) -> None:
        """`dry_run`: an in-memory copy of the file (or an empty state if there is none),
        so a dry run reads what is known and leaves nothing on disk. Otherwise the file
        and missing directories are created private (0600, 0700; see files.py)."""
        self.path = os.fspath(path)
        if not dry_run:
            from mailctl.util.private import private_dir, private_file

            private_dir(os.path.dirname(os.path.abspath(self.path)))
            private_file(self.path)  # before SQLite creates it (and -wal, -shm like it)
        # One thread at a time, but not always the opening one (pipeline's uploader).
        self.db = sqlite3.connect(":memory:" if dry_run else self.path, isolation_level=None,
                                  check_same_thread=False)
        if not dry_run:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        elif os.path.isfile(self.path):
            from urllib.parse import quote

            # Read-only, and no -wal/-shm of its own: `immutable` unless a killed run left
            # a WAL (whose commits count, and whose -shm is there already).
            how = "mode=ro" if os.path.exists(self.path + "-wal") else "immutable=1"
            disk = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?{how}", uri=True)
            try:
                disk.backup(self.db)
            finally:
                disk.close()
        self.db.executescript(SCHEMA)
        # Folder workers and their uploader threads share this connection; each method is
        # one short transaction, taken under this lock (`_thread`: no `threading` import).
        self.lock = allocate_lock()
        self.run = time.time_ns()  # tells this run's pending rows from a dead run's

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def check_endpoints(self, src: str, dst: str) -> str | None:
        """A state file belongs to one source/target pair; reuse for another is refused."""
        with self.lock:
            rows = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
            if not rows:
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", [("src", src), ("dst", dst)])
                return None
            if rows.get("src") != src or rows.get("dst") != dst:
                return f"{self.path} belongs to {rows.get('src')} -> {rows.get('dst')}"
            return None

    def folders(self) -> dict[str, FolderState]:
        with self.lock:
            return {r[0]: FolderState(*r) for r in self.db.execute("SELECT * FROM folders")}

    def save_folder(self, f: FolderState) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO folders VALUES (?,?,?,?,?,?,?,?)",
                            (f.src, f.dst, f.src_uv, f.dst_uv, f.src_next, f.src_modseq,
                             f.src_count, f.max_uid))

    def pairs(self, src: str) -> dict[str, Pair]:
        with self.lock:
            return {r[0]: Pair(r[1], r[2], r[3]) for r in self.db.execute(
                "SELECT skey, dkey, flags, hash FROM pairs WHERE src = ?", (src,))}

    def add_pairs(self, src: str, rows: list[tuple[str, str, str, str]],
                  pending: bool = False) -> None:
        """One transaction: after this returns, the batch counts as copied (and, with
        `pending`, is no longer this run's pending upload)."""
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO pairs VALUES (?,?,?,?,?)",
                                [(src, *r) for r in rows])
            if pending:
                self.db.executemany("DELETE FROM pending WHERE src = ? AND skey = ? AND run = ?",
                                    [(src, r[0], self.run) for r in rows])
            self.db.execute("COMMIT")

    def add_pending(self, src: str, rows: list[tuple[str, str]]) -> None:
        """(source key, content hash) of messages about to be sent: committed before the
        first byte goes to the server."""
        now = time.time()
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO pending VALUES (?,?,?,?,?)",
                                [(src, k, self.run, h, now) for k, h in rows])
            self.db.execute("COMMIT")

    def pending(self, src: str) -> list[tuple[str, str, float]]:
        """A dead run's unconfirmed uploads into this folder: (source key, hash, when)."""
        with self.lock:
            return list(self.db.execute(
                "SELECT skey, hash, at FROM pending WHERE src = ? AND run != ?",
                (src, self.run)))

    def pending_folders(self, since: float = 0.0) -> set[str]:
        """Source folders with a dead run's uploads sent at or after `since`."""
        with self.lock:
            return {r[0] for r in self.db.execute(
                "SELECT DISTINCT src FROM pending WHERE run != ? AND at >= ?",
                (self.run, since))}

    def drop_pending(self, src: str, before: float | None = None) -> None:
        """Forget a dead run's uploads (all, or those sent before `before`)."""
        with self.lock:
            self.db.execute("DELETE FROM pending WHERE src = ? AND run != ? AND at < ?",
                            (src, self.run, float("inf") if before is None else before))

    def set_flags(self, src: str, changes: dict[str, str]) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE pairs SET flags = ? WHERE src = ? AND skey = ?",
                                [(f, src, k) for k, f in changes.items()])
            self.db.execute("COMMIT")

    def drop_pairs(self, src: str, skeys: list[str] | None = None) -> None:
        with self.lock:
            if skeys is None:
                self.db.execute("DELETE FROM pairs WHERE src = ?", (src,))
                return
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM pairs WHERE src = ? AND skey = ?",
                                [(src, k) for k in skeys])
            self.db.execute("COMMIT")

    def rekey(self, src: str, mapping: dict[str, str]) -> None:
        """Source keys changed (new UIDVALIDITY): move pairs to their new keys."""
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE pairs SET skey = ? WHERE src = ? AND skey = ?",
                                [(new, src, old) for old, new in mapping.items()])
            self.db.execute("COMMIT")
