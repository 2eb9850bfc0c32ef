"""Per-account rows (mailctl_jobs_accounts): what each job did, is doing, or why it failed.

procrastinate's own tables say which jobs are queued, running, done or failed;
these rows add what a mail migration needs to be watched: messages and bytes
copied so far (written at most once a second per account while it copies), the
host that copies it, the kind of failure with the server's words, and the
advice `jobs status` shows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mailctl.domain.mailsync import Progress


def started(conn: Any, account: str, job_id: int | None, worker: str) -> None:
    conn.execute("UPDATE mailctl_jobs_accounts SET status = 'copying', worker = %s, "
                 "job_id = COALESCE(%s, job_id), runs = runs + 1, started_at = now(), "
                 "updated_at = now() WHERE account = %s", (worker, job_id, account))


def finished(conn: Any, account: str, res: Any, failure: str | None = None,
             words: str | None = None, advice: str | None = None,
             status: str | None = None) -> None:
    conn.execute(
        "UPDATE mailctl_jobs_accounts SET status = %s, messages = %s, bytes = %s, copied = %s, "
        "failure = %s, words = %s, advice = %s, finished_at = now(), updated_at = now() "
        "WHERE account = %s",
        (status or ("done" if failure is None else "failed"),
         res.copied + res.adopted if res is not None else 0,
         res.bytes if res is not None else 0, res.copied if res is not None else 0,
         failure, (words or "")[:2000] or None, advice, account))


def cancelled(conn: Any, account: str, messages: int, words: str) -> None:
    conn.execute("UPDATE mailctl_jobs_accounts SET status = 'cancelled', messages = %s, "
                 "words = %s, finished_at = now(), updated_at = now() WHERE account = %s",
                 (messages, words, account))


class DbProgress(Progress):
    """The engine's progress, written to the account's row (throttled). `stop`: asked
    after every batch the target confirmed and the state recorded (the engine reports
    progress only then); when it says so, the copy ends there (failures.Aborted)."""

    def __init__(self, conn: Any, conn_lock: threading.Lock, account: str,
                 every: float = 1.0, stop: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.conn, self.conn_lock, self.account, self.every = conn, conn_lock, account, every
        self.stop = stop
        self.last = 0.0
        self.listeners.append(self._write)

    def add(self, address: str, n: int) -> None:
        super().add(address, n)
        if self.stop is not None and self.stop():
            from mailctl.jobs.failures import Aborted

            raise Aborted("cancelled by `mailctl jobs cancel` while copying")

    def _write(self, p: Progress, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        with self.conn_lock:
            self.conn.execute("UPDATE mailctl_jobs_accounts SET messages = %s, "
                              "updated_at = now() WHERE account = %s",
                              (p.done, self.account))
