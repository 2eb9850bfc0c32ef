"""The sync engine's state (mailctl.sync.state) in PostgreSQL, for workers on many hosts.

Why in the queue's database and not rebuilt from the target: the engine can
adopt what it finds at the target by content hash, but its `pending` journal
(uploads a killed run handed to the server, which the server may still commit
after the next run looked) only helps if the next run sees it, and the next
run of an account may be on another host. So every table of the SQLite state
lives here, keyed by the account, with the same transactions: a batch of pairs
(and the removal of its pending rows) is one commit, and a worker killed with
kill -9 leaves the last committed batch. Same interface as State, so the engine
does not know the difference.
"""

from __future__ import annotations

import time
from _thread import allocate_lock
from typing import Any

from mailctl.sync.state import FolderState, Pair


class PgState:
    def __init__(self, conn: Any, pair: str, label: str) -> None:
        """`conn`: a psycopg connection of its own (autocommit); `pair`: the account key."""
        self.db, self.pair = conn, pair
        self.path = label  # what error messages name
        self.lock = allocate_lock()
        self.run = time.time_ns()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def check_endpoints(self, src: str, dst: str) -> str | None:
        with self.lock:
            rows = dict(self.db.execute("SELECT k, v FROM mailctl_sync_meta WHERE pair = %s",
                                        (self.pair,)).fetchall())
            if not rows:
                with self.db.transaction():
                    self.db.cursor().executemany(
                        "INSERT INTO mailctl_sync_meta VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        [(self.pair, "src", src), (self.pair, "dst", dst)])
                return None
            if rows.get("src") != src or rows.get("dst") != dst:
                return f"{self.path} belongs to {rows.get('src')} -> {rows.get('dst')}"
            return None

    def folders(self) -> dict[str, FolderState]:
        with self.lock:
            return {r[0]: FolderState(*r) for r in self.db.execute(
                "SELECT src, dst, src_uv, dst_uv, src_next, src_modseq, src_count, max_uid "
                "FROM mailctl_sync_folders WHERE pair = %s", (self.pair,))}

    def save_folder(self, f: FolderState) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO mailctl_sync_folders VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (pair, src) DO UPDATE SET dst = EXCLUDED.dst, "
                "src_uv = EXCLUDED.src_uv, dst_uv = EXCLUDED.dst_uv, "
                "src_next = EXCLUDED.src_next, src_modseq = EXCLUDED.src_modseq, "
                "src_count = EXCLUDED.src_count, max_uid = EXCLUDED.max_uid",
                (self.pair, f.src, f.dst, f.src_uv, f.dst_uv, f.src_next, f.src_modseq,
                 f.src_count, f.max_uid))

    def pairs(self, src: str) -> dict[str, Pair]:
        with self.lock:
            return {r[0]: Pair(r[1], r[2], r[3]) for r in self.db.execute(
                "SELECT skey, dkey, flags, hash FROM mailctl_sync_pairs "
                "WHERE pair = %s AND src = %s", (self.pair, src))}

    def add_pairs(self, src: str, rows: list[tuple[str, str, str, str]],
                  pending: bool = False) -> None:
        with self.lock, self.db.transaction():
            cur = self.db.cursor()
            cur.executemany(
                "INSERT INTO mailctl_sync_pairs VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (pair, src, skey) DO UPDATE SET dkey = EXCLUDED.dkey, "
                "flags = EXCLUDED.flags, hash = EXCLUDED.hash",
                [(self.pair, src, *r) for r in rows])
            if pending:
                cur.execute("DELETE FROM mailctl_sync_pending WHERE pair = %s AND src = %s "
                            "AND run = %s AND skey = ANY(%s)",
                            (self.pair, src, self.run, [r[0] for r in rows]))

    def add_pending(self, src: str, rows: list[tuple[str, str]]) -> None:
        now = time.time()
        with self.lock, self.db.transaction():
            self.db.cursor().executemany(
                "INSERT INTO mailctl_sync_pending VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (pair, src, skey, run) DO UPDATE SET hash = EXCLUDED.hash, "
                "at = EXCLUDED.at", [(self.pair, src, k, self.run, h, now) for k, h in rows])

    def pending(self, src: str) -> list[tuple[str, str, float]]:
        with self.lock:
            return [tuple(r) for r in self.db.execute(
                "SELECT skey, hash, at FROM mailctl_sync_pending WHERE pair = %s AND src = %s "
                "AND run != %s", (self.pair, src, self.run))]

    def pending_folders(self, since: float = 0.0) -> set[str]:
        with self.lock:
            return {r[0] for r in self.db.execute(
                "SELECT DISTINCT src FROM mailctl_sync_pending WHERE pair = %s AND run != %s "
                "AND at >= %s", (self.pair, self.run, since))}

    def drop_pending(self, src: str, before: float | None = None) -> None:
        with self.lock:
            self.db.execute("DELETE FROM mailctl_sync_pending WHERE pair = %s AND src = %s "
                            "AND run != %s AND at < %s",
                            (self.pair, src, self.run,
                             float("inf") if before is None else before))

    def set_flags(self, src: str, changes: dict[str, str]) -> None:
        with self.lock, self.db.transaction():
            self.db.cursor().executemany(
                "UPDATE mailctl_sync_pairs SET flags = %s WHERE pair = %s AND src = %s "
                "AND skey = %s", [(f, self.pair, src, k) for k, f in changes.items()])

    def drop_pairs(self, src: str, skeys: list[str] | None = None) -> None:
        with self.lock:
            if skeys is None:
                self.db.execute("DELETE FROM mailctl_sync_pairs WHERE pair = %s AND src = %s",
                                (self.pair, src))
                return
            self.db.execute("DELETE FROM mailctl_sync_pairs WHERE pair = %s AND src = %s "
                            "AND skey = ANY(%s)", (self.pair, src, skeys))

    def rekey(self, src: str, mapping: dict[str, str]) -> None:
        with self.lock, self.db.transaction():
            self.db.cursor().executemany(
                "UPDATE mailctl_sync_pairs SET skey = %s WHERE pair = %s AND src = %s "
                "AND skey = %s", [(new, self.pair, src, old) for old, new in mapping.items()])
