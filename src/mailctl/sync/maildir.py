"""A Maildir++ tree as a sync store: what Dovecot, mutt and mbsync read.

Layout: INBOX is the root (cur/new/tmp), folder "A/B" is `.A.B` (a "." or "%"
inside a name is %-escaped). Messages are stored exactly as served (CRLF and
all), so a restore uploads the same bytes; flags are the info suffix (`:2,FRS`)
with keywords as letters listed in a Dovecot-compatible `dovecot-keywords`;
INTERNALDATE is the file's mtime.

Durability without per-file fsync serialisation: a batch is written to tmp/
and fsynced by a thread pool (the disk gets one journal commit for many files,
measured ~2x faster than mbsync's file-by-file fsync), then renamed into cur/,
then cur/ is fsynced. Only after that does the engine record the batch. A crash
between rename and record leaves files the state does not know; the engine
recognises them by content on the next run, so they are neither lost nor
duplicated.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator

from mailctl.sync.model import FolderStatus, Msg, Scan, epoch_to_imap_date, imap_date_to_epoch

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LETTER = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
_FLAG = {v: k for k, v in _LETTER.items()}
KEYWORDS_FILE = "dovecot-keywords"
_j = os.path.join
WRITERS = int(os.environ.get("MAILCTL_SYNC_WRITERS", "8"))  # concurrent file fsyncs
OPEN_FILES = 128  # files written before their fsyncs: bounded, two folder workers share fds
_SEQ = itertools.count(1)  # unique file names across stores (folder workers) in a process


def _escape(component: str) -> str:
    return component.replace("%", "%25").replace(".", "%2E")


def _unescape(component: str) -> str:
    return component.replace("%2E", ".").replace("%2e", ".").replace("%25", "%")


def _key(name: str) -> str:
    return name.split(":", 1)[0].split(",", 1)[0]


class MaildirStore:
    def __init__(self, root: str | os.PathLike[str], fsync: bool = True) -> None:
        self.root = os.fspath(root)  # str paths: pathlib costs ~10 ms of a no-change run
        self.label = f"maildir:{root}"
        self.fsync = fsync
        self._index: dict[str, dict[str, tuple[str, str]]] = {}  # folder -> key -> (sub, name)
        self._keywords: dict[str, list[str]] = {}
        self._pool: Any = None
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    def path(self, folder: str) -> str:
        if folder == "INBOX":
            return self.root
        return _j(self.root, "." + ".".join(_escape(c) for c in folder.split("/")))

    def clone(self) -> MaildirStore:
        """The same tree for a second folder worker (each folder has one writer)."""
        return MaildirStore(self.root, fsync=self.fsync)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # -- folders -----------------------------------------------------------
    def folders(self) -> dict[str, FolderStatus]:
        out: dict[str, FolderStatus] = {}
        if os.path.isdir(_j(self.root, "cur")):
            out["INBOX"] = self._status(self.root)
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for e in entries:
            if e.startswith(".") and e not in (".", "..") and os.path.isdir(
                    _j(self.root, e, "cur")):
                name = "/".join(_unescape(c) for c in e[1:].split("."))
                out[name] = self._status(_j(self.root, e))
        return out

    def status(self, folder: str) -> FolderStatus | None:
        p = self.path(folder)
        return self._status(p) if os.path.isdir(_j(p, "cur")) else None

    def _status(self, p: str) -> FolderStatus:
        """`uidnext` is a change token from the directories' mtimes; a token taken within
        2 s of a change is 0, so the next run looks inside instead of trusting the clock."""
        cur, new = os.stat(_j(p, "cur")), os.stat(_j(p, "new"))
        count = _count(_j(p, "cur")) + _count(_j(p, "new"))
        latest = max(cur.st_mtime, new.st_mtime)
        token = 0 if time.time() - latest < 2 else ((cur.st_mtime_ns ^ (new.st_mtime_ns << 1))
                                                    & ((1 << 62) - 1))
        return FolderStatus(1, token, count, 0)

    def create(self, folder: str) -> None:
        """Folders are 0700 like the mail in them (0600): a backup is private."""
        from mailctl.util.private import private_dir

        p = self.path(folder)
        for sub in ("cur", "new", "tmp"):
            private_dir(_j(p, sub))
        if self.fsync:
            _fsync_dir(p)
            _fsync_dir(os.path.dirname(p) if folder != "INBOX" else p)

    # -- keywords ----------------------------------------------------------
    def _kw(self, folder: str) -> list[str]:
        if folder not in self._keywords:
            kws: list[str] = []
            try:
                with open(_j(self.path(folder), KEYWORDS_FILE), encoding="utf-8") as fh:
                    text = fh.read()
                for line in text.splitlines():
                    i, _, name = line.partition(" ")
                    if i.isdigit() and name:
                        while len(kws) <= int(i):
                            kws.append("")
                        kws[int(i)] = name
            except FileNotFoundError:
                pass
            self._keywords[folder] = kws
        return self._keywords[folder]

    def _info(self, folder: str, flags: str) -> str:
        kws = self._kw(folder)
        letters = []
        for f in flags.split():
            if f in _LETTER:
                letters.append(_LETTER[f])
                continue
            if f not in kws and len(kws) < 26:
                kws.append(f)
                from pathlib import Path

                from mailctl.util.atomic import atomic_write

                atomic_write(Path(self.path(folder), KEYWORDS_FILE),
                             "".join(f"{i} {k}\n" for i, k in enumerate(kws) if k), mode=0o600)
            if f in kws:
                letters.append(chr(ord("a") + kws.index(f)))
        return ":2," + "".join(sorted(letters))

    def _flags(self, folder: str, name: str) -> str:
        _, sep, info = name.partition(":2,")
        if not sep:
            return ""
        kws = self._kw(folder)
        out = []
        for ch in info:
            if ch in _FLAG:
                out.append(_FLAG[ch])
            elif "a" <= ch <= "z" and ord(ch) - 97 < len(kws) and kws[ord(ch) - 97]:
                out.append(kws[ord(ch) - 97])
        return " ".join(sorted(out))

    # -- messages ----------------------------------------------------------
    def scan(self, folder: str, since_uid: int = 0, since_modseq: int = 0) -> Scan:
        p = self.path(folder)
        index: dict[str, tuple[str, str]] = {}
        out = Scan(set())
        for sub in ("new", "cur"):
            try:
                names = os.listdir(_j(p, sub))
            except FileNotFoundError:
                continue
            for n in names:
                if n.startswith("."):
                    continue
                k = _key(n)
                index[k] = (sub, n)
                size = 0
                i = n.find(",S=")
                if i >= 0:
                    digits = n[i + 3:].split(",", 1)[0].split(":", 1)[0]
                    size = int(digits) if digits.isdigit() else 0
                out.info[k] = (self._flags(folder, n), size)
        out.keys = set(index)
        self._index[folder] = index
        return out

    def scan_chunks(self, folder: str, since_uid: int = 0, since_modseq: int = 0
                    ) -> Iterator[Scan]:
        """One chunk: a directory listing has no cheaper windowed form."""
        yield self.scan(folder, since_uid, since_modseq)

    def _where(self, folder: str, key: str) -> tuple[str, str] | None:
        if key not in self._index.get(folder, {}):
            self.scan(folder)
        return self._index[folder].get(key)

    def fetch(self, folder: str, keys: list[str], sizes: dict[str, int]) -> Iterator[Msg]:
        p = self.path(folder)
        for k in keys:
            where = self._where(folder, k)
            if where is None:
                continue
            f = _j(p, where[0], where[1])
            try:
                with open(f, "rb") as fh:
                    body = fh.read()
                    mtime = os.fstat(fh.fileno()).st_mtime
            except FileNotFoundError:
                continue
            yield Msg(k, self._flags(folder, where[1]), epoch_to_imap_date(mtime), body)

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        p = self.path(folder)
        if not os.path.isdir(_j(p, "cur")):
            self.create(folder)
        now = time.time()
        jobs = []
        for m in msgs:
            base = f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(_SEQ)}.{self._host}"
            name = f"{base},S={len(m.body)}"
            jobs.append((name, _j(p, "tmp", name), m.body,
                         imap_date_to_epoch(m.date) if m.date else now))
        infos = [self._info(folder, m.flags) for m in msgs]
        for i in range(0, len(jobs), OPEN_FILES):
            self._write(jobs[i:i + OPEN_FILES])
        # Remembered only for a folder already listed: a backup's target folder is never
        # read back in the same run, and an index of every file written would grow with it.
        index = self._index.get(folder)
        keys: list[str | None] = []
        for (name, tmp, _, _), info in zip(jobs, infos, strict=True):
            final = name + info
            os.rename(tmp, _j(p, "cur", final))
            if index is not None:
                index[_key(final)] = ("cur", final)
            keys.append(_key(final))
        if self.fsync:
            _fsync_dir(_j(p, "cur"))
        return keys

    def _write(self, jobs: list[tuple[str, str, bytes, float]]) -> None:
        """Create and fill the files on this thread, then fsync them on WRITERS threads.

        Why split: creating files in one directory from several threads made them spin
        on the directory's lock (most of a backup's CPU was kernel time in
        rwsem_spin_on_owner), while fsyncs do not take it and are where the waiting is;
        several at once let the filesystem commit them together (one journal commit for
        many files: the speed of no fsync at the safety of fsync per file)."""
        fds: list[int] = []
        try:
            for _, path, body, mtime in jobs:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                fds.append(fd)
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
                os.utime(fd, (mtime, mtime))
            if self.fsync and len(fds) > 1 and SYNCFS and _syncfs(fds[0]):
                pass  # one flush of the filesystem covers every file of the batch
            elif self.fsync and len(fds) > 1 and WRITERS > 1:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="maildir-fsync")
                list(self._pool.map(_fsync_all, [fds[k::WRITERS] for k in range(WRITERS)]))
            elif self.fsync:
                _fsync_all(fds)
        finally:
            for fd in fds:
                os.close(fd)

    def set_flags(self, folder: str, changes: dict[str, str]) -> None:
        p = self.path(folder)
        for k, flags in changes.items():
            where = self._where(folder, k)
            if where is None:
                continue
            new = _key(where[1]) + where[1][len(_key(where[1])):].split(":", 1)[0]
            new += self._info(folder, flags)
            os.rename(_j(p, where[0], where[1]), _j(p, "cur", new))
            self._index[folder][k] = ("cur", new)
        if self.fsync and changes:
            _fsync_dir(_j(p, "cur"))

    def delete(self, folder: str, keys: list[str]) -> None:
        p = self.path(folder)
        for k in keys:
            where = self._where(folder, k)
            if where is not None:
                os.unlink(_j(p, where[0], where[1]))
                del self._index[folder][k]
        if self.fsync and keys:
            _fsync_dir(_j(p, "cur"))


SYNCFS = os.environ.get("MAILCTL_SYNC_SYNCFS", "1") != "0"
_libc: Any = None


def _syncfs(fd: int) -> bool:
    """syncfs(2): flush the filesystem holding `fd` — all of the batch's data and
    metadata — in one call, instead of one fsync per file. Linux only; False when
    unavailable, so the caller falls back to fsync per file."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            import ctypes.util

            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.syncfs  # noqa: B018 - fails here, not later, where there is none
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    return int(_libc.syncfs(fd)) == 0


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)


def _count(d: str) -> int:
    """Entries in a directory without a list of all their names (flat memory)."""
    with os.scandir(d) as it:
        return sum(1 for _ in it)


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
