"""`reports import FILE...`: files and mailboxes on disk into the store, each report once.

Files are stored in transactions of up to BATCH files: a commit per file would
be an fsync per file (SQLite runs with synchronous=FULL, see db.py).
A crash loses at most the open batch, and re-running the import stores it
(everything already stored counts as a duplicate). Retention is applied as in
a fetch: reports older than the period are not stored, and the store is pruned
at the end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from mailctl.reports.ingest import read_file
from mailctl.reports.store import ReportStore
from mailctl.reports.unpack import Limits

BATCH = 200


def import_files(store: ReportStore, files: list[Path], limits: Limits,
                 retention_days: int | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(0, len(files), BATCH):
        batch = files[i:i + BATCH]
        rows.extend(store.retrying(lambda conn, batch=batch: [  # type: ignore[misc]
            _one(store, conn, path, limits, retention_days) for path in batch]))
    if retention_days:
        store.prune(retention_days)
    return rows


def _one(store: ReportStore, conn: Connection, path: Path, limits: Limits,
         retention_days: int | None) -> dict[str, Any]:
    row: dict[str, Any] = {"file": str(path), "stored": 0, "duplicates": 0, "expired": 0,
                           "rejected": 0, "ignored": 0, "reasons": []}
    size = path.stat().st_size
    if size > limits.max_message:
        reason = (f"{size >> 20} MiB exceeds the {limits.max_message >> 20} MiB limit "
                  "(reports.limits.max_message)")
        row["rejected"], row["reasons"] = 1, [reason]
        store.reject(f"file:{hashlib.sha256(str(path.resolve()).encode()).hexdigest()}"[:64],
                     "too_large", reason, str(path), size, conn=conn)
        return row
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    for i, out in enumerate(read_file(path.name, data, limits)):
        if out.reports:
            added = store.add(out.reports, str(path), retention_days=retention_days,
                              conn=conn)
            row["stored"] += added.stored
            row["duplicates"] += added.duplicates
            row["expired"] += added.expired
        if out.rejections:
            row["rejected"] += 1
            row["reasons"].append(out.reason()[:300])
            store.reject(f"{digest[:56]}:{i}", out.rejections[0].code, out.reason(),
                         str(path), len(data), conn=conn)
        if out.not_report:
            row["ignored"] += 1
    return row
