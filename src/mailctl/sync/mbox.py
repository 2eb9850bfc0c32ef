"""A Google Takeout mbox as a read-only sync source: `mbox:PATH`.

"Export from Google, import into our own server" is then one `mailctl sync`.
Takeout writes one mbox per account (`All mail Including Spam and Trash.mbox`),
each message once, its Gmail labels in an `X-Gmail-Labels` header. Gmail has
labels, IMAP has folders, so the labels are mapped (docs/sync.md, "Google
Takeout"):

- `labels=folders` (the default): one copy in the folder of every label the
  message has, as Gmail's own IMAP shows it (Inbox -> INBOX, Sent, Drafts, user
  labels by name, `Work/Project` nested); Trash and Spam hold their messages
  alone (Gmail hides trashed and spam mail from every other label); a message
  with no folder label goes to Archive. Chosen as the default because a label
  is where people look for a message, and most mail clients show keywords
  poorly or not at all; the price is storage for messages with several labels.
- `labels=keywords`: one copy, in the first of Trash, Spam, Drafts, Sent,
  INBOX, the first user label, Archive; the other user labels become keywords.
  No duplicates, but Dovecot's Maildir keeps only 26 keywords per folder in
  file names (the rest live only in its index, lost if it is rebuilt:
  ../shared/notes/domain-ops.md), so this suits few labels.

Either way: `Unread` absent -> \\Seen, `Starred` -> \\Flagged, `Important` ->
$Important, `Drafts` -> \\Draft; Gmail's automatic `Category ...` tabs,
`Opened` and `Archived` carry no folder; `Chat` messages are skipped. The
folders report SPECIAL-USE roles, so the target's own Sent/Drafts/Junk/Trash/
Archive receive them (roles.py).

Reading, as measured on Python's `mailbox` (../shared/notes/domain-ops.md): a
message starts at a `From ` line that follows a blank line (or starts the
file) and looks like a From_ line (sender, then a date); body lines quoted
mboxrd-style (`>From `, `>>From `) lose one `>`; CRLF and LF files both work
(the separator blank line is dropped either way); folded and RFC 2047-encoded
`X-Gmail-Labels` are unfolded and decoded; labels with a comma come quoted.
Bodies are served with CRLF line ends (what IMAP expects). Keys are Gmail's
message ids from the From_ lines, so a fresh export of the same account maps
to the same keys (and nothing is copied twice); several .mbox files in a
directory (a per-label export) merge by that id.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import BinaryIO

from mailctl.sync.model import FolderStatus, Msg, Scan, SyncError, epoch_to_imap_date

_FROM_LINE = re.compile(
    rb"^From (\S+) +(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +)?"
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) "
    rb"(\d{1,2}):(\d\d):(\d\d)(?: +([+-]\d{4}))? +(\d{4})")
_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SYSTEM = {"inbox", "sent", "drafts", "draft", "spam", "trash", "starred", "important",
          "unread", "opened", "archived", "chat"}
ROLE_FOLDERS = {"Sent": "Sent", "Drafts": "Drafts", "Junk": "Junk", "Trash": "Trash",
                "Archive": "Archive"}
MODES = ("folders", "keywords")


class _Entry:
    __slots__ = ("date", "end", "file", "flags", "key", "labels", "start")

    def __init__(self, key: str, file: int, start: int, end: int, date: str) -> None:
        self.key, self.file, self.start, self.end, self.date = key, file, start, end, date
        self.labels: list[str] = []
        self.flags = ""


def split_labels(value: str) -> list[str]:
    """`Inbox,"Foo, Bar",Work/X` -> ["Inbox", "Foo, Bar", "Work/X"] (already unfolded and
    decoded); surrounding spaces go, empty labels are dropped."""
    out: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [x for x in out if x]


def header_labels(head: bytes) -> list[str]:
    """The X-Gmail-Labels of a message's header section (bytes up to the blank line)."""
    from email.header import decode_header, make_header
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    raw = BytesHeaderParser(policy=compat32).parsebytes(head).get_all("X-Gmail-Labels") or []
    labels: list[str] = []
    for value in raw:
        text = re.sub(r"\r?\n[ \t]", " ", str(value))
        if "=?" in text:
            with contextlib.suppress(ValueError, LookupError, UnicodeError):
                text = str(make_header(decode_header(text)))
        labels.extend(split_labels(text))
    return labels


def _folder_of(label: str) -> str | None:
    """A user label's folder name: `/`-separated, no empty parts."""
    parts = [p.strip() for p in label.split("/")]
    parts = [p for p in parts if p]
    return "/".join(parts) or None


def place(labels: list[str], mode: str = "folders") -> tuple[list[str], str]:
    """(folders, flags) for a message with these labels; no folders = skip it (Chat)."""
    low = {lb.lower() for lb in labels}
    if "chat" in low:
        return [], ""
    flags = set()
    if "unread" not in low:
        flags.add("\\Seen")
    if "starred" in low:
        flags.add("\\Flagged")
    if "important" in low:
        flags.add("$Important")
    if low & {"drafts", "draft"}:
        flags.add("\\Draft")
    user = []
    for lb in labels:
        if lb.lower() in SYSTEM or lb.lower().startswith("category "):
            continue
        name = _folder_of(lb)
        if name is not None and name.upper() != "INBOX" and name not in user:
            user.append(name)
        elif name is not None and name.upper() == "INBOX" and "inbox" not in low:
            low.add("inbox")
    if "trash" in low:
        folders = ["Trash"]
    elif "spam" in low:
        folders = ["Junk"]
    else:
        folders = []
        if low & {"drafts", "draft"}:
            folders.append("Drafts")
        if "sent" in low:
            folders.append("Sent")
        if "inbox" in low:
            folders.append("INBOX")
        folders += user
        if not folders:
            folders = ["Archive"]
    if mode == "keywords":
        primary = folders[0]
        for name in folders[1:]:
            if name in user:
                flags.add(keyword(name))
        folders = [primary]
    return folders, " ".join(sorted(flags))


def keyword(label: str) -> str:
    """A label as an IMAP keyword: an ASCII atom. Non-ASCII in modified UTF-7 (as Gmail
    spells labels over IMAP), atom specials as `_` (a space would split it in two,
    measured)."""
    from mailctl.sync.utf7 import encode

    return re.sub(r'[\s(){%*"\\\]\x00-\x1f\x7f]', "_", encode(label))


def _date(m: re.Match[bytes]) -> str:
    import calendar

    mon = _MONTHS.index(m.group(2).decode())
    day, hh, mi, ss = (int(m.group(i)) for i in (3, 4, 5, 6))
    tz = (m.group(7) or b"+0000").decode()
    year = int(m.group(8))
    try:
        t = calendar.timegm((year, mon + 1, day, hh, mi, ss))
    except (ValueError, OverflowError):
        return ""
    off = (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60) * (-1 if tz[0] == "-" else 1)
    return epoch_to_imap_date(t - off)


class MboxStore:
    """Read-only; `path` is an .mbox file or a directory of them."""

    late_writes = False

    def __init__(self, path: str, mode: str = "folders") -> None:
        if mode not in MODES:
            raise SyncError(f"mbox labels={mode!r} (expected folders or keywords)")
        self.path, self.mode = path, mode
        self.label = f"mbox:{path}" + ("" if mode == "folders" else f"?labels={mode}")
        self._files: list[str] = []
        self._entries: dict[str, _Entry] | None = None
        self._folders: dict[str, list[str]] = {}  # folder -> keys in file order
        self._flags: dict[str, str] = {}
        self._token = 0
        self.skipped = 0  # Chat messages

    # -- reading the file(s) --------------------------------------------------
    def _load(self) -> dict[str, _Entry]:
        if self._entries is not None:
            return self._entries
        if os.path.isdir(self.path):
            self._files = sorted(os.path.join(self.path, n) for n in os.listdir(self.path)
                                 if n.lower().endswith(".mbox")
                                 and os.path.isfile(os.path.join(self.path, n)))
        else:
            self._files = [self.path]
        token = 0
        entries: dict[str, _Entry] = {}
        for i, name in enumerate(self._files):
            try:
                st = os.stat(name)
                token ^= (st.st_size * 1_000_003) ^ st.st_mtime_ns ^ (i << 40)
                for e in self._index(name, i):
                    got = entries.get(e.key)
                    if got is None:
                        entries[e.key] = e
                    else:  # the same message in another label's file: one, all labels
                        got.labels += [lb for lb in e.labels if lb not in got.labels]
            except OSError as exc:
                raise SyncError(f"{self.label}: cannot read {name} "
                                f"({exc.strerror or exc})") from None
        self._token = (token & ((1 << 62) - 1)) or 1
        for key, e in entries.items():
            folders, flags = place(e.labels, self.mode)
            if not folders:
                self.skipped += 1
            self._flags[key] = flags
            for f in folders:
                self._folders.setdefault(f, []).append(key)
        self._entries = entries
        return entries

    def _index(self, name: str, file_no: int) -> Iterator[_Entry]:
        """One pass over the file, keeping offsets and labels, never whole bodies."""
        cur: _Entry | None = None
        head: list[bytes] | None = None
        pos = 0
        blank = True  # the file's start counts as after a blank line
        seen: dict[str, int] = {}
        with open(name, "rb") as fh:
            for line in fh:
                m = _FROM_LINE.match(line) if blank and line.startswith(b"From ") else None
                if m is not None:
                    if cur is not None:
                        cur.end = pos
                        if head is not None:
                            cur.labels = header_labels(b"".join(head))
                        yield cur
                    ident = m.group(1)
                    gid = ident.split(b"@", 1)[0]
                    key = "g" + gid.decode() if gid.isdigit() else f"o{file_no}.{pos}"
                    n = seen.get(key, 0)
                    seen[key] = n + 1
                    if n:
                        key = f"{key}-{n}"
                    cur = _Entry(key, file_no, pos + len(line), 0, _date(m))
                    head = []
                elif head is not None:
                    if line in (b"\n", b"\r\n"):
                        if cur is not None:
                            cur.labels = header_labels(b"".join(head))
                        head = None
                    else:
                        head.append(line)
                blank = line in (b"\n", b"\r\n")
                pos += len(line)
        if cur is not None:
            cur.end = pos
            if head is not None:
                cur.labels = header_labels(b"".join(head))
            yield cur

    # -- the store protocol ---------------------------------------------------
    def folders(self) -> dict[str, FolderStatus]:
        self._load()
        return {f: FolderStatus(1, self._token, len(keys), self._token)
                for f, keys in self._folders.items()}

    def status(self, folder: str) -> FolderStatus | None:
        return self.folders().get(folder)

    def special_use(self) -> dict[str, str]:
        self._load()
        return {role: f for role, f in ROLE_FOLDERS.items() if f in self._folders}

    def scan(self, folder: str, since_uid: int = 0, since_modseq: int = 0) -> Scan:
        entries = self._load()
        keys = self._folders.get(folder, [])
        return Scan(set(keys), {k: (self._flags[k], entries[k].end - entries[k].start)
                                for k in keys})

    def scan_chunks(self, folder: str, since_uid: int = 0, since_modseq: int = 0
                    ) -> Iterator[Scan]:
        yield self.scan(folder)

    def fetch(self, folder: str, keys: list[str], sizes: dict[str, int]) -> Iterator[Msg]:
        entries = self._load()
        handles: dict[int, BinaryIO] = {}
        try:
            for k in keys:
                e = entries.get(k)
                if e is None:
                    continue
                fh = handles.get(e.file)
                if fh is None:
                    fh = handles[e.file] = open(self._files[e.file], "rb")  # noqa: SIM115
                fh.seek(e.start)
                raw = fh.read(e.end - e.start)
                yield Msg(k, self._flags[k], e.date, body_of(raw))
        except OSError as exc:
            raise SyncError(f"{self.label}: cannot read ({exc.strerror or exc})") from None
        finally:
            for fh in handles.values():
                fh.close()

    def _read_only(self) -> SyncError:
        return SyncError(f"{self.label} is a source only (expected it as SRC, not DST)")

    def create(self, folder: str) -> None:
        raise self._read_only()

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        raise self._read_only()

    def set_flags(self, folder: str, changes: dict[str, str]) -> None:
        raise self._read_only()

    def delete(self, folder: str, keys: list[str]) -> None:
        raise self._read_only()

    def close(self) -> None:
        pass


def body_of(raw: bytes) -> bytes:
    """A message as stored between its From_ line and the next: the separator blank line
    dropped, mboxrd quoting undone, line ends made CRLF."""
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n\n"):
        raw = raw[:-1]
    if b">From " in raw:
        raw = _QUOTED_FROM.sub(rb"\1", raw)
    return _BARE_LF.sub(b"\r\n", raw)
