"""`reports fetch`: one pass (`--once`) or wait for mail with IMAP IDLE, else poll.

The IDLE machinery is the sync client's (imapwire.Connection: idle_start,
idle_read, idle_done, new_mail, IDLE_MAX). Each IDLE-watched folder has its own
session, since IDLE watches the selected folder only; one select() waits on
all of them and on a wake-up socket that signals write to, so SIGTERM/SIGINT
end a wait at once. A signal during a pass lets the current batch finish
(commit, then the mailbox step) before stopping. A dropped session is
reconnected with backoff (1 s doubling to 5 min); a pass also runs every
IDLE_MAX (29 min, RFC 2177) and after each reconnect.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from mailctl.reports.fetch import FolderResult, fetch_folder, open_source
from mailctl.reports.resolve import Mailbox
from mailctl.reports.store import ReportStore
from mailctl.reports.unpack import Limits
from mailctl.sync.imapwire import IDLE_MAX, ImapError
from mailctl.sync.model import Store, SyncError

MAX_BACKOFF = 300.0
Emit = Callable[[FolderResult], None]
Progress = Callable[[str, int, int], None]


class Runner:
    def __init__(self, rs: ReportStore, boxes: list[Mailbox], limits: Limits,
                 retention_days: int | None, emit: Emit, progress: Progress | None = None
                 ) -> None:
        self.rs, self.boxes, self.limits = rs, boxes, limits
        self.retention = retention_days
        self.emit, self.progress = emit, progress
        self.stopping = False
        self._pruned = 0.0

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def _pass(self, mb: Mailbox, store: Store, folder: str) -> FolderResult:
        where = f"{mb.label}/{folder}"

        def prog(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress(where, done, total)

        res = fetch_folder(store, self.rs, mb, folder, self.limits, self.retention, prog,
                           lambda: self.stopping)
        self.emit(res)
        if self.retention and time.monotonic() - self._pruned > 3600:
            self.rs.prune(self.retention)  # retention holds in a long-running fetch too
            self._pruned = time.monotonic()
        return res

    def _failed(self, mb: Mailbox, folder: str, exc: Exception) -> FolderResult:
        from mailctl.secret import scrub

        res = FolderResult(mb.label, folder, errors=[scrub(str(exc))[:300] or type(exc).__name__])
        self.emit(res)
        return res

    def once(self) -> list[FolderResult]:
        results: list[FolderResult] = []
        for mb in self.boxes:
            store = None
            folder = ""
            try:
                store = open_source(mb)
                for folder in mb.settings.folders:
                    results.append(self._pass(mb, store, folder))
                    if self.stopping:
                        break
            except (SyncError, ImapError, OSError) as exc:
                results.append(self._failed(mb, folder, exc))
            finally:
                if store is not None:
                    with contextlib.suppress(Exception):
                        store.close()
            if self.stopping:
                break
        return results

    def forever(self, wake: socket.socket | None = None) -> bool:
        """Until stopped; True if the latest pass of some folder had errors."""
        watches = [_Watch(mb, f) for mb in self.boxes for f in mb.settings.folders]
        latest: dict[tuple[str, str], bool] = {}
        try:
            while not self.stopping:
                now = time.monotonic()
                for w in watches:
                    if self.stopping:
                        break
                    if w.store is None and now < w.retry:
                        continue
                    try:
                        if w.store is None:
                            w.store = open_source(w.mb)
                            conn = getattr(w.store, "conn", None)
                            w.idle = (w.mb.settings.mode != "poll" and conn is not None
                                      and "IDLE" in conn.capabilities)
                            w.due = 0.0
                        conn = getattr(w.store, "conn", None) if w.idle else None
                        news = conn is not None and (conn.new_mail or not conn.idling)
                        if news or now >= w.due:
                            if conn is not None:
                                conn.idle_done()
                                conn.new_mail = False
                            res = self._pass(w.mb, w.store, w.folder)
                            latest[(w.mb.label, w.folder)] = bool(res.errors)
                            w.backoff = 0.0
                            w.due = time.monotonic() + (IDLE_MAX if w.idle
                                                        else w.mb.settings.poll_interval)
                            if conn is not None and not self.stopping:
                                w.store.select(w.folder)  # type: ignore[attr-defined]
                                conn.new_mail = False
                                conn.idle_start()
                    except (SyncError, ImapError, OSError) as exc:
                        latest[(w.mb.label, w.folder)] = True
                        self._failed(w.mb, w.folder, exc)
                        w.drop(time.monotonic())
                if self.stopping:
                    break
                self._wait(watches, wake)
        finally:
            for w in watches:
                w.close()
        return any(latest.values())

    def _wait(self, watches: list[_Watch], wake: socket.socket | None) -> None:
        live = [w for w in watches if w.store is not None and w.idle]
        conns = [getattr(w.store, "conn", None) for w in live]
        # what is already received is read first: select() cannot see it, and a loop
        # that only waited for it to be read would spin
        self._read_idle([(w, c) for w, c in zip(live, conns, strict=True)
                         if c is not None and c.buffered()])
        if any(c is not None and c.new_mail for c in conns):
            return
        now = time.monotonic()
        times = [w.due if w.store is not None else w.retry for w in watches]
        timeout = max(0.0, min([now + 5.0, *times]) - now)
        fds: list[Any] = [c.sock for c in conns if c is not None]
        if wake is not None:
            fds.append(wake)
        try:
            ready = select.select(fds, [], [], timeout)[0]
        except OSError:
            ready = fds
        if wake is not None and wake in ready:
            with contextlib.suppress(OSError):
                wake.recv(64)
        self._read_idle([(w, c) for w, c in zip(live, conns, strict=True)
                         if c is not None and c.sock in ready])

    @staticmethod
    def _read_idle(ready: list[tuple[_Watch, Any]]) -> None:
        for w, c in ready:
            try:
                c.idle_read()
            except (ImapError, OSError):
                w.drop(time.monotonic())


class _Watch:
    def __init__(self, mb: Mailbox, folder: str) -> None:
        self.mb, self.folder = mb, folder
        self.store: Store | None = None
        self.idle = False
        self.due = 0.0
        self.retry = 0.0
        self.backoff = 0.0

    def drop(self, now: float) -> None:
        if self.store is not None:
            conn = getattr(self.store, "conn", None) if self.store is not None else None
            with contextlib.suppress(Exception):
                if conn is not None:
                    conn.sock.close()
            self.store = None
        self.backoff = min(max(1.0, self.backoff * 2), MAX_BACKOFF)
        self.retry = now + self.backoff

    def close(self) -> None:
        if self.store is None:
            return
        conn = getattr(self.store, "conn", None) if self.idle else None
        with contextlib.suppress(Exception):
            if conn is not None:
                conn.sock.settimeout(5)
                conn.idle_done()
        with contextlib.suppress(Exception):
            self.store.close()
        self.store = None


def run(runner: Runner, once: bool) -> bool:
    """Run with SIGTERM/SIGINT handled (finish the batch in hand, then stop). Returns
    whether the last pass of some folder had errors."""
    from mailctl.util.signals import stop_signals

    with stop_signals(runner.stop) as wake:
        if once:
            return any(r.errors for r in runner.once())
        return runner.forever(wake)
