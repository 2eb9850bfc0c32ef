"""Read report mailboxes through the sync `Store` protocol; file each report once.

Order of effects, per batch of mails (bounded in count and bytes):
1. parse every mail (never raises: reports, a rejection, or not a report);
2. one database transaction: new reports inserted (duplicates skipped by the
   unique key), rejections counted by content digest, non-reports remembered
   by (mailbox, folder, UIDVALIDITY, UID);
3. only after that commit, the mailbox: rejected mails get the keyword
   `$MailctlReportRejected` (kept in place, not retried), stored ones move to
   the processed folder (IMAP MOVE, atomic on the server) or, with
   `processed: null`, get `$MailctlReportStored`. Mail that is not a report is
   never touched.
A kill -9 anywhere leaves either nothing done for the batch (it is read again),
or the commit without the mailbox step: the next pass reads the mails again,
finds every report already stored (counted as duplicates) and finishes the
move. Servers without MOVE (and Maildir) get copy + delete, guarded by an
intent row: after a crash between the copy and the delete, the processed
folder is searched for the copy (by content digest) before copying again, so
a mail never ends up twice there, nor lost.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mailctl.reports.ingest import read_message
from mailctl.reports.resolve import Mailbox
from mailctl.reports.store import ReportStore
from mailctl.reports.unpack import Limits
from mailctl.sync.model import Msg, Store, SyncError

log = logging.getLogger(__name__)

KEYWORD_REJECTED = "$MailctlReportRejected"
KEYWORD_STORED = "$MailctlReportStored"
# MAILCTL_REPORTS_BATCH: small batches let tests kill a fetch between two commits.
BATCH = int(os.environ.get("MAILCTL_REPORTS_BATCH", "100"))
BATCH_BYTES = 32 << 20


@dataclass
class FolderResult:
    """What one pass over one folder did (`--json` prints these)."""

    mailbox: str
    folder: str
    stored: int = 0  # reports newly stored
    duplicates: int = 0  # reports already in the store
    expired: int = 0  # reports older than the retention period (not stored)
    mails: int = 0  # report mails handled in this pass
    rejected: int = 0  # mails that could not be read: marked, left in place
    ignored: int = 0  # mails that are not reports: left alone
    moved: int = 0
    skipped: int = 0  # handled by an earlier pass
    errors: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why mails were rejected

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "mailbox", "folder", "stored", "duplicates", "expired", "mails", "rejected",
            "ignored", "moved", "skipped", "errors", "reasons")}


def open_source(mb: Mailbox) -> Store:
    from mailctl.sync.endpoint import parse_endpoint
    from mailctl.sync.stores import open_store

    store: Store = open_store(parse_endpoint(mb.settings.url), mb.password, cafile=mb.cafile)
    return store


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _with(flags: str, keyword: str) -> str:
    return " ".join(sorted({*flags.split(), keyword}))


def _batches(keys: list[str], sizes: dict[str, int]) -> Iterator[list[str]]:
    cur: list[str] = []
    total = 0
    for k in keys:
        s = sizes.get(k, 0)
        if cur and (len(cur) >= BATCH or total + s > BATCH_BYTES):
            yield cur
            cur, total = [], 0
        cur.append(k)
        total += s
    if cur:
        yield cur


def _order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (0, key)


def fetch_folder(src: Store, rs: ReportStore, mb: Mailbox, folder: str, limits: Limits,
                 retention_days: int | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> FolderResult:
    """One pass over `folder`. Raises SyncError (or the store's ImapError/OSError) only
    when the mailbox itself cannot be read; every mail gets an outcome."""
    res = FolderResult(mb.label, folder)
    origin = f"{mb.label}/{folder}"
    reselect = getattr(src, "reselect", None)
    if reselect is not None:
        reselect()  # a long-lived session must see the folder as it is now
    st = src.status(folder)
    if st is None:
        raise SyncError(f"{mb.label}: folder {folder} does not exist")
    uv = st.uidvalidity
    dest = mb.settings.processed
    if dest and dest != folder and src.status(dest) is None:
        src.create(dest)
    scan = src.scan(folder)
    pending = rs.pending_moves(origin, uv)
    if pending and dest:
        _recover_moves(src, rs, origin, uv, folder, dest, pending, scan.keys, scan.info, res)
        scan = src.scan(folder)
    seen = rs.seen_keys(origin, uv)
    todo: list[str] = []
    for key in sorted(scan.keys, key=_order):
        flags, size = scan.info.get(key, ("", 0))
        words = flags.split()
        if KEYWORD_REJECTED in words or KEYWORD_STORED in words or key in seen:
            res.skipped += 1
        elif size > limits.max_message:
            reason = (f"the mail is {size >> 20} MiB, over the {limits.max_message >> 20} MiB "
                      "limit (reports.limits.max_message): not downloaded")
            with rs.engine.begin() as conn:
                rs.reject(f"size:{origin}:{uv}:{key}"[:64], "too_large", reason, origin, size,
                          conn=conn)
                rs.mark_seen(origin, uv, [key], conn=conn)
            src.set_flags(folder, {key: _with(flags, KEYWORD_REJECTED)})
            res.rejected += 1
            res.reasons.append(reason)
        else:
            todo.append(key)
    sizes = {k: scan.info[k][1] for k in todo if k in scan.info}
    done = 0
    for chunk in _batches(todo, sizes):
        _batch(src, rs, mb, origin, uv, folder, dest, chunk, sizes, limits, retention_days,
               res)
        done += len(chunk)
        if progress is not None:
            progress(done, len(todo))
        if stop is not None and stop():
            break
    return res


def _batch(src: Store, rs: ReportStore, mb: Mailbox, origin: str, uv: int, folder: str,
           dest: str | None, keys: list[str], sizes: dict[str, int], limits: Limits,
           retention_days: int | None, res: FolderResult) -> None:
    msgs = list(src.fetch(folder, keys, sizes))
    outcomes = [(m, read_message(m.body, limits)) for m in msgs]
    stored, flag, counted = rs.retrying(lambda conn: _record_batch(
        rs, conn, outcomes, origin, uv, retention_days, res))
    for name in ("stored", "duplicates", "expired", "mails", "rejected", "ignored"):
        setattr(res, name, getattr(res, name) + getattr(counted, name))
    res.reasons.extend(counted.reasons)
    # Committed. Only now does the mailbox change.
    if flag:
        src.set_flags(folder, flag)
    if not stored:
        return
    if dest and dest != folder:
        _move(src, rs, origin, uv, folder, dest, stored)
        res.moved += len(stored)
    else:
        src.set_flags(folder, {m.key: _with(m.flags, KEYWORD_STORED) for m in stored})
    log.info("%s: %d report mail(s) filed", origin, len(stored))


def _record_batch(rs: ReportStore, conn: Any, outcomes: list[tuple[Msg, Any]], origin: str,
                  uv: int, retention_days: int | None, total: FolderResult
                  ) -> tuple[list[Msg], dict[str, str], FolderResult]:
    """The database side of a batch, in one transaction, counted apart: PostgreSQL may
    roll it back as a deadlock victim and it is then run again from the start."""
    stored: list[Msg] = []
    flag: dict[str, str] = {}
    res = FolderResult(total.mailbox, total.folder)
    for m, out in outcomes:
        digest = _digest(m.body)
        if out.reports:
            added = rs.add(out.reports, origin, retention_days=retention_days, conn=conn)
            res.stored += added.stored
            res.duplicates += added.duplicates
            res.expired += added.expired
            res.mails += 1
            for i, rej in enumerate(out.rejections):  # a bad second attachment
                rs.reject(f"{digest[:56]}:{i}", rej.code, rej.reason, origin, len(m.body),
                          conn=conn)
            stored.append(m)
        elif out.rejections:
            first = out.rejections[0]
            rs.reject(digest, first.code, out.reason(), origin, len(m.body), conn=conn)
            rs.mark_seen(origin, uv, [m.key], conn=conn)  # keywords may be unsupported
            flag[m.key] = _with(m.flags, KEYWORD_REJECTED)
            res.rejected += 1
            res.reasons.append(out.reason()[:300])
        else:
            rs.mark_seen(origin, uv, [m.key], conn=conn)
            res.ignored += 1
    return stored, flag, res


def _move(src: Store, rs: ReportStore, origin: str, uv: int, folder: str, dest: str,
          msgs: list[Msg]) -> None:
    conn = getattr(src, "conn", None)
    if conn is not None and "MOVE" in getattr(conn, "capabilities", ()):
        from mailctl.sync.imapparse import uid_set

        src.select(folder, write=True)  # type: ignore[attr-defined]
        conn.run(b"UID MOVE " + uid_set(sorted(int(m.key) for m in msgs)) + b" "
                 + src.native(dest))  # type: ignore[attr-defined]
        src.reselect()  # type: ignore[attr-defined]
        return
    for m in msgs:
        rs.begin_move(origin, uv, m.key, _digest(m.body))
    src.append(dest, [Msg(m.key, " ".join(f for f in m.flags.split() if f != "\\Recent"),
                          m.date, m.body) for m in msgs])
    src.delete(folder, [m.key for m in msgs])
    rs.end_move(origin, uv, [m.key for m in msgs])


def _recover_moves(src: Store, rs: ReportStore, origin: str, uv: int, folder: str, dest: str,
                   pending: dict[str, str], keys: set[str],
                   info: dict[str, tuple[str, int]], res: FolderResult) -> None:
    """Copy + delete interrupted: where the copy is in `dest`, finish with the delete;
    elsewhere forget the intent, and the mail is filed again like any other."""
    finished = [k for k in pending if k not in keys]  # the delete happened
    left = {k: d for k, d in pending.items() if k in keys}
    if left:
        dscan = src.scan(dest)
        want_sizes = {info.get(k, ("", -1))[1] for k in left}
        cands = [k for k in dscan.keys if dscan.info.get(k, ("", -2))[1] in want_sizes]
        present = {_digest(m.body) for m in src.fetch(dest, cands, {
            k: dscan.info[k][1] for k in cands if k in dscan.info})}
        copied = [k for k, d in left.items() if d in present]
        if copied:
            src.delete(folder, copied)
            res.moved += len(copied)
        finished += list(left)
    rs.end_move(origin, uv, finished)
