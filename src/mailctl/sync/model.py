"""The vocabulary both stores speak, so the engine never cares which side is IMAP.

Keys are strings: an IMAP UID ("4711") or a Maildir file's unique part. Flags
travel as one canonical string (sorted, space-separated, no `\\Recent`), so
comparing and storing them is a string compare. Dates travel in IMAP
INTERNALDATE form, so IMAP→IMAP keeps the sender's zone; a Maildir keeps the
instant (as mtime, Dovecot's convention).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SYSTEM_FLAGS = {"\\SEEN": "\\Seen", "\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged",
                "\\DELETED": "\\Deleted", "\\DRAFT": "\\Draft"}


class SyncError(Exception):
    """Something the user can act on (unreachable server, missing folder, refused delete)."""


class UsageError(SyncError):
    """The command line is wrong (a URL, a number out of range, a file named on it):
    found before anything is done, exit 64. The text reads `<what> (expected <what>)`."""


# Plain classes, not dataclasses: `dataclasses` imports inspect and ast (~10-30 ms),
# a large share of the no-change run's budget.
class FolderStatus:
    """What one round trip tells about a folder: enough to skip it when nothing moved."""

    __slots__ = ("messages", "modseq", "uidnext", "uidvalidity")

    def __init__(self, uidvalidity: int, uidnext: int, messages: int, modseq: int = 0) -> None:
        self.uidvalidity, self.uidnext, self.messages, self.modseq = (
            uidvalidity, uidnext, messages, modseq)


class Msg:
    __slots__ = ("body", "date", "flags", "key")

    def __init__(self, key: str, flags: str, date: str, body: bytes) -> None:
        self.key, self.flags, self.body = key, flags, body
        self.date = date  # IMAP INTERNALDATE, e.g. "17-Jul-1996 02:44:25 -0700"


class Scan:
    """A folder's current keys, and flags/sizes of those that are new or changed."""

    __slots__ = ("info", "keys", "modseq")

    def __init__(self, keys: set[str], info: dict[str, tuple[str, int]] | None = None,
                 modseq: int = 0) -> None:
        self.keys = keys
        self.info = info if info is not None else {}  # key -> (flags, size)
        self.modseq = modseq


TYPE_CHECKING = False  # not from typing: importing it costs ~5 ms of a no-change run
if TYPE_CHECKING:
    from typing import Protocol

    class Store(Protocol):
        """One side of a sync. Folder names passed in and out use "/" as separator."""

        label: str

        def folders(self) -> dict[str, FolderStatus]: ...
        def status(self, folder: str) -> FolderStatus | None: ...
        def create(self, folder: str) -> None: ...
        def scan(self, folder: str, since_uid: int = 0, since_modseq: int = 0) -> Scan: ...
        def scan_chunks(self, folder: str, since_uid: int = 0, since_modseq: int = 0
                        ) -> Iterator[Scan]: ...
        def fetch(self, folder: str, keys: list[str], sizes: dict[str, int]) -> Iterator[Msg]: ...
        def append(self, folder: str, msgs: list[Msg]) -> list[str | None]: ...
        def set_flags(self, folder: str, changes: dict[str, str]) -> None: ...
        def delete(self, folder: str, keys: list[str]) -> None: ...
        def close(self) -> None: ...
else:
    Store = object  # at run time only an annotation


def norm_flags(flags: object) -> str:
    """Canonical flag string from a parsed FLAGS list or any iterable of names."""
    out = set()
    for f in flags if isinstance(flags, list | tuple | set | frozenset) else []:
        s = f.decode() if isinstance(f, bytes) else str(f)
        if s.startswith("\\"):
            s = SYSTEM_FLAGS.get(s.upper(), s)
            if s.upper() == "\\RECENT":
                continue
        out.add(s)
    return " ".join(sorted(out))


HASH_TAG = "s:"  # marks content_hash's current definition in stored pairs


def content_hash(body: bytes) -> str:
    """Identity of a message by content, line endings aside (servers may normalise them):
    SHA-256 (hardware-accelerated, and it releases the GIL) of the body without CRs.
    Deleting CRs is ~2x cheaper than replacing CRLF; hashing was the largest share of a
    backup's client CPU. Tagged, so a hash stored by the earlier definition (untagged
    BLAKE2b of CRLF->LF) is never compared with one of this."""
    import hashlib

    return HASH_TAG + hashlib.sha256(body.translate(None, b"\r")).hexdigest()[:32]


def imap_date_to_epoch(s: str) -> float:
    """ "17-Jul-1996 02:44:25 -0700" -> seconds since the epoch."""
    import calendar

    try:
        d, rest = s.strip().split("-", 1)
        mon, rest = rest.split("-", 1)
        year, hms, tz = rest.split(" ")
        hh, mm, ss = (int(x) for x in hms.split(":"))
        t = calendar.timegm((int(year), MONTHS.index(mon.title()) + 1, int(d), hh, mm, ss))
        off = (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60) * (-1 if tz[0] == "-" else 1)
        return float(t - off)
    except (ValueError, IndexError):
        return time.time()


def epoch_to_imap_date(t: float) -> str:
    g = time.gmtime(t)
    return f"{g.tm_mday:02d}-{MONTHS[g.tm_mon - 1]}-{g.tm_year} {g.tm_hour:02d}:{g.tm_min:02d}:" \
           f"{g.tm_sec:02d} +0000"
