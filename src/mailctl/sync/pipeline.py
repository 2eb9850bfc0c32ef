"""Copying a folder's new messages with the source read and the target write overlapped.

Why: fetch and upload alternating on one thread left one server idle while the
other worked, which made IMAP->IMAP slower than Dovecot's dsync (0.6x). Here
the caller's thread reads the source (socket reads, parsing; content hashing
only when target messages must be matched) and cuts batches; one uploader
thread hashes and writes them (Maildir: write, fsync, rename; IMAP:
MULTIAPPEND) and commits each batch's pairs to the state. The
queue between them holds at most QUEUE_DEPTH batches, so memory stays bounded
by batch size, not by mailbox size.

Durability is unchanged: a batch's pairs are committed only after the target
confirmed it (fsync done, or the tagged OK with APPENDUID). For IMAP targets
the uploader sends batch N+1 before it waits for N's OK, so the target server
never waits for our SQLite commit; N is still committed only after its OK. A
kill -9 in between leaves messages at the target the state does not know;
the next run adopts them by content hash instead of copying them again.

A server may also complete a command after the client that sent it died, later
than the next run's look at the target. So before a batch goes to such a target
(`late_writes`: IMAP) its keys and hashes are committed as pending (state.py);
the engine uses what a dead run left there (engine.sync_folder).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable

from mailctl.sync.model import Msg, Store, content_hash
from mailctl.sync.state import State

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

QUEUE_DEPTH = 2
Progress = Callable[[str, int, int], None]
Index = tuple[dict[str, list[str]], dict[str, str]]  # hash -> target keys, target key -> flags


class _Batch:
    __slots__ = ("adopt", "msgs", "reflag", "size")

    def __init__(self) -> None:
        self.msgs: list[tuple[Msg, str]] = []  # (message, content hash or "")
        self.adopt: list[tuple[str, str, str, str]] = []  # (skey, dkey, flags, hash)
        self.reflag: dict[str, str] = {}
        self.size = 0


class Copier:
    """Feed it the new keys of a folder window by window (`copy`), then `close()`.

    `index` is called once, before the first message is copied and before anything
    is written to the target: it fetches target messages the state does not know,
    to recognise them by content (see engine.sync_folder)."""

    def __init__(self, src: Store, dst: Store, state: State, name: str, dname: str, fr: Any,
                 *, dry_run: bool, batch_bytes: int, batch_count: int,
                 index: Callable[[], Index], progress: Progress | None = None,
                 total: int = 0, reflag: bool = True) -> None:
        """`reflag`: give an adopted target twin the source's flags (off once users
        work on the target: engine.Options.add_only)."""
        self.src, self.dst, self.state, self.name, self.dname = src, dst, state, name, dname
        self.fr, self.dry, self.progress, self.total = fr, dry_run, progress, total
        self.batch_bytes, self.batch_count = batch_bytes, batch_count
        self.reflag = reflag
        self._get_index = index
        self._index: Index | None = None
        self._batch = _Batch()
        self._queue: queue.Queue[_Batch | None] = queue.Queue(QUEUE_DEPTH)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.done = 0
        # Writes the target may still complete after we died: journal them first.
        self.late = bool(getattr(dst, "late_writes", False)) and not dry_run

    def copy(self, keys: list[str], sizes: dict[str, int]) -> None:
        if not keys:
            return
        if self._index is None:
            self._index = self._get_index()
        index, dflags = self._index
        if self.dry and not index:
            self.fr.copied += len(keys)
            self.fr.bytes += sum(sizes.get(k, 0) for k in keys)
            return
        for m in self.src.fetch(self.name, keys, sizes):
            # Without twins to look for, the uploader thread hashes (sha256 runs without
            # the GIL there, beside this thread's parsing); "" marks "not yet".
            h = content_hash(m.body) if index else ""
            b = self._batch
            twins = index.get(h) if index else None
            if twins:
                dkey = twins.pop()
                if self.reflag and dflags.get(dkey, m.flags) != m.flags:
                    b.reflag[dkey] = m.flags
                b.adopt.append((m.key, dkey, m.flags, h))
                self.fr.adopted += 1
                self.done += 1
            else:
                b.msgs.append((m, h))
                b.size += len(m.body)
            if b.size >= self.batch_bytes or len(b.msgs) + len(b.adopt) >= self.batch_count:
                self._hand_over()

    def close(self) -> None:
        """Flush the last batch and wait until every batch is durable and recorded.
        Re-raises the uploader's error, if it had one."""
        try:
            self._hand_over()
        finally:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
        if self._error is not None:
            raise self._error

    # -- the uploader side -------------------------------------------------
    def _hand_over(self) -> None:
        b, self._batch = self._batch, _Batch()
        if not (b.msgs or b.adopt or b.reflag):
            return
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._upload_loop, name="sync-upload",
                                            daemon=True)
            self._thread.start()
        self._queue.put(b)

    def _upload_loop(self) -> None:
        start = getattr(self.dst, "append_start", None)
        finish = getattr(self.dst, "append_finish", None)
        pending: tuple[_Batch, Any] | None = None  # sent, not yet confirmed (IMAP)
        while True:
            b = self._queue.get()
            if self._error is not None:
                if b is None:
                    return
                continue  # drain, so the reader never blocks on a full queue
            if b is not None:
                b.msgs = [(m, h or content_hash(m.body)) for m, h in b.msgs]
            try:
                if b is not None and b.msgs and self.late:
                    self.state.add_pending(self.name, [(m.key, h) for m, h in b.msgs])
                if b is None:
                    if pending is not None:
                        self._record(pending[0], finish(pending[1]) if finish else [])
                    return
                if self.dry or not b.msgs or start is None or finish is None:
                    if pending is not None:
                        self._record(pending[0], finish(pending[1]) if finish else [])
                        pending = None
                    keys = self.dst.append(self.dname, [m for m, _ in b.msgs]) \
                        if b.msgs and not self.dry else [None] * len(b.msgs)
                    self._record(b, keys)
                    continue
                handle = start(self.dname, [m for m, _ in b.msgs])
                if pending is not None:
                    self._record(pending[0], finish(pending[1]))
                pending = (b, handle)
            except BaseException as exc:  # handed to the reader thread by close()/copy()
                self._error = exc
                if b is None:
                    return

    def _record(self, b: _Batch, keys: Iterable[str | None]) -> None:
        """After the target confirmed the batch: flags of adopted twins, then the pairs."""
        adopt = b.adopt + [(m.key, k or "", m.flags, h)
                           for (m, h), k in zip(b.msgs, keys, strict=True)]
        if not self.dry:
            if b.reflag:
                self.dst.set_flags(self.dname, b.reflag)
            if adopt:
                self.state.add_pairs(self.name, adopt, pending=self.late and bool(b.msgs))
        self.fr.copied += len(b.msgs)
        self.fr.bytes += b.size
        self.done += len(b.msgs)
        if self.progress:
            self.progress(self.name, self.done, max(self.total, self.done))


def run_folders(src: Any, dst: Any, work: list[Any], jobs: int,
                one: Callable[[Any, Any, Any], None]) -> None:
    """Several folders at once, each worker on its own source and target session.

    Why: both servers are single-threaded per session, and a migration's time is
    mostly theirs (the client used ~1.5 CPU-s of a 6 s run); two sessions per side let
    them use both cores, while each folder still has one writer, so its messages keep
    their order at the target. Worker 0 reuses the given stores; the others clone
    them and close their clones. The first non-SyncError exception is re-raised."""
    items = iter(work)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(s: Any, d: Any) -> None:
        try:
            while not errors:
                with lock:
                    item = next(items, None)
                if item is None:
                    return
                one(s, d, item)
        except BaseException as exc:
            errors.append(exc)
        finally:
            if s is not src:
                s.close()
                d.close()

    threads = [threading.Thread(target=worker, name=f"sync-folder-{i}",
                                args=(src, dst) if i == 0 else (src.clone(), dst.clone()))
               for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
