"""Every mailbox of a domain through the sync engine, several at once.

Why threads in one process (and not `mailctl migrate`'s process per account):
the sign-in objects (a master password, OAuth2 tokens refreshed for all
mailboxes) stay in memory instead of being handed to child processes through
files, one progress display and ETA can count every mailbox, and there is no
interpreter start per mailbox. Each mailbox still has its own sync state
(SQLite, kill -9 safe: engine.py) and its own lock, and one mailbox's failure
is recorded for it while the others go on; the engine's hashing and socket
reads release the GIL, and the servers do most of the work (docs/domain.md
has the measured figures).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mailctl.errors import MailctlError


def safe_name(address: str) -> str:
    """A mailbox address as one path component (a local part may hold `/`)."""
    keep = set("abcdefghijklmnopqrstuvwxyz0123456789@._+-")
    name = "".join(c if c in keep else f"%{ord(c):02X}" for c in address.lower())
    return "%2E" + name[1:] if name.startswith(".") else name


@dataclass
class MailboxResult:
    address: str
    ok: bool = True
    error: str | None = None
    copied: int = 0
    adopted: int = 0
    flags: int = 0
    deleted: int = 0
    bytes: int = 0
    seconds: float = 0.0
    reconnects: int = 0  # sessions lost and opened again during the run
    folders: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "ok": self.ok, "error": self.error,
                "copied": self.copied, "adopted": self.adopted, "flags": self.flags,
                "deleted": self.deleted, "bytes": self.bytes,
                "reconnects": self.reconnects, "seconds": round(self.seconds, 3)}


class Progress:
    """Counts over every mailbox, for a progress bar and an ETA. Thread-safe."""

    def __init__(self, total: int = 0) -> None:
        self.total, self.done, self.bytes = total, 0, 0
        self.started = time.monotonic()
        self.active: dict[str, int] = {}
        self.lock = threading.Lock()
        self.listeners: list[Callable[[Progress], None]] = []

    def add(self, address: str, n: int) -> None:
        with self.lock:
            self.done += n
            self.active[address] = self.active.get(address, 0) + n
        for fn in self.listeners:
            fn(self)

    def finished(self, address: str) -> None:
        with self.lock:
            self.active.pop(address, None)
        for fn in self.listeners:
            fn(self)

    def eta(self) -> float | None:
        """Seconds left at the rate so far, None before there is a rate."""
        elapsed = time.monotonic() - self.started
        if self.done <= 0 or elapsed < 0.5 or self.total <= self.done:
            return None if self.total > self.done else 0.0
        return (self.total - self.done) * elapsed / self.done


def locked_state(path: str) -> Any:
    """flock beside a mailbox's state: two runs never sync one mailbox at once."""
    from mailctl.sync.runner import _locked
    from mailctl.util.private import private_dir

    private_dir(os.path.dirname(os.path.abspath(path)))
    return _locked(path + ".lock")


LOST = ("closed by the server", "connection lost", "Connection reset", "Broken pipe",
        "timed out", "EOF occurred")
RETRIES = 3  # sessions lost during one run (a token expiring, a restart) that are resumed


def _lost(text: str) -> bool:
    """The session went away (the server closed it: a token that expired, as Exchange
    Online does with `BYE AccessTokenExpired`; a restart; the network): worth a new one."""
    return any(w in text for w in LOST)


def sync_one(address: str, open_src: Callable[[], Any], open_dst: Callable[[], Any],
             state_path: str, opts: Any, bind: tuple[str, str],
             progress: Progress | None = None,
             maps: Callable[[Any, Any], list[tuple[str, str]]] | None = None,
             open_state: Callable[[], Any] | None = None) -> MailboxResult:
    """One mailbox: open both sides, lock and open its state, run the engine.
    `bind` names the pair the state belongs to (refused for any other pair);
    `maps` (given both stores) sets the folder maps before the copy starts.
    `open_state`: the state elsewhere than in a local file (the job queue keeps it in
    PostgreSQL and locks the account there); `state_path` then only names it.

    A session lost on the way is not the end of a long copy: both sides are opened
    again (signing in anew: an OAuth2 token is refreshed then) and the engine resumes
    from its state, up to RETRIES times. `res.reconnects` counts them."""
    from mailctl.sync import engine
    from mailctl.sync.imapwire import ImapError
    from mailctl.sync.model import SyncError
    from mailctl.sync.state import State

    res = MailboxResult(address)
    t0 = time.monotonic()
    seen: dict[str, int] = {}

    def folder_step(folder: str, done: int, total: int) -> None:
        # the engine counts each folder from 0 (and again after a reconnect): increments
        prev = seen.get(folder, 0)
        seen[folder] = done
        if progress is not None and done > prev:
            progress.add(address, done - prev)

    try:
        with (contextlib.nullcontext() if open_state is not None
              else locked_state(state_path)):
            state = open_state() if open_state is not None else State(state_path)
            try:
                problem = state.check_endpoints(*bind)
                if problem:
                    raise MailctlError(f"sync state {problem}")
                for attempt in range(RETRIES + 1):
                    seen.clear()
                    src = dst = None
                    try:
                        src, dst = open_src(), open_dst()
                        if maps is not None:
                            opts.maps = maps(src, dst)
                        report = engine.run(src, dst, state, opts, folder_step)
                    except (ImapError, SyncError, OSError) as exc:
                        if attempt < RETRIES and _lost(str(exc)):
                            res.reconnects += 1
                            continue
                        raise
                    finally:
                        for store in (src, dst):
                            if store is not None:
                                with contextlib.suppress(OSError, ImapError):
                                    store.close()
                    errors = [f"{f.src}: {f.error}" for f in report.folders if f.error]
                    if errors and attempt < RETRIES and any(_lost(e) for e in errors):
                        res.reconnects += 1
                        _add(res, report)
                        continue
                    break
            finally:
                state.close()
        _add(res, report)
        res.folders = [f.as_dict() for f in report.folders]
        errors = [f"{f.src}: {f.error}" for f in report.folders if f.error]
        if errors:
            res.ok, res.error = False, "; ".join(errors)[:500]
    except TimeoutError:
        res.ok, res.error = False, "another run is working on this mailbox"
    except (SyncError, MailctlError, OSError, ImapError) as exc:
        from mailctl.secret import scrub

        res.ok = False
        res.error = scrub(f"{exc.strerror or exc}: {exc.filename or ''}"
                          if isinstance(exc, OSError) else str(exc))[:500]
    finally:
        res.seconds = time.monotonic() - t0
        if progress is not None:
            progress.finished(address)
    return res


def _add(res: MailboxResult, report: Any) -> None:
    res.copied += report.total("copied")
    res.adopted += report.total("adopted")
    res.flags += report.total("flags")
    res.deleted += report.total("deleted")
    res.bytes += report.total("bytes")


def run_all(addresses: Iterable[str], one: Callable[[str], MailboxResult], jobs: int
            ) -> dict[str, MailboxResult]:
    """`one(address)` for each, `jobs` at a time; results by address, in input order."""
    items = list(addresses)
    if jobs <= 1 or len(items) <= 1:
        return {a: one(a) for a in items}
    with ThreadPoolExecutor(min(jobs, len(items)), thread_name_prefix="mailbox") as pool:
        return dict(zip(items, pool.map(one, items), strict=True))
