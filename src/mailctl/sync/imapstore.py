"""An IMAP account as a sync store, on the pipelined client in imapwire.

The costs that matter were measured (docs/sync.md): one round trip per
message is fatal at WAN latency, and Dovecot pays a transaction per APPEND
command. So bodies are fetched by UID ranges bounded by bytes with two
commands in flight, uploads go as MULTIAPPEND batches (pipelined LITERAL+
APPENDs when the server lacks it), and folder states come from one
LIST-STATUS round trip so unchanged folders are never selected.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailctl.secret import Secret
from mailctl.sync.endpoint import Endpoint
from mailctl.sync.imapparse import (
    Literal,
    Response,
    fetch_items,
    parse_sexp,
    parse_uid_set,
    quote,
    uid_set,
)
from mailctl.sync.imapwire import Connection, ImapError
from mailctl.sync.model import FolderStatus, Msg, Scan, SyncError, norm_flags
from mailctl.sync.utf7 import decode as decode_utf7
from mailctl.sync.utf7 import encode as encode_utf7

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailctl.sync.auth import Auth

FETCH_BATCH_BYTES = 2 << 20
FETCH_BATCH_MAX = 1000
APPEND_BATCH = 250
APPEND_BATCH_BYTES = 8 << 20
SCAN_WINDOW = 5000
_STATUS_ITEMS = b"(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"


def _text(v: Any) -> str:
    return bytes(v).decode("utf-8", "surrogateescape")


class ImapStore:
    # The server may complete an APPEND after we died (see pipeline.py, state.py).
    late_writes = True

    def __init__(self, ep: Endpoint, password: Secret | Auth, *, cafile: str | None = None,
                 readonly: bool = False) -> None:
        """`password`: the account's own password, or how to sign in without it
        (sync/auth.py: a master user, OAuth2)."""
        self.ep = ep
        self.label = ep.label
        self._password = password
        self._cafile = cafile
        self.readonly = readonly
        self._conn: Connection | None = None
        self._selected: tuple[str, bool] | None = None
        self._sel_status = FolderStatus(0, 0, 0)
        self.sep = "."
        self._sep_known = False

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            try:
                c = Connection(self.ep.host, self.ep.port, tls=self.ep.tls, cafile=self._cafile)
            except OSError as exc:
                raise SyncError(f"{self.label}: cannot connect ({exc.strerror or exc})") from None
            except ImapError as exc:
                raise SyncError(str(exc)) from None
            try:
                if isinstance(self._password, Secret):
                    c.login(self.ep.user, self._password)
                else:
                    self._password.login(c, self.ep.user)
            except (OSError, ImapError, SyncError) as exc:
                c.sock.close()
                if isinstance(exc, SyncError):
                    raise
                if isinstance(exc, OSError):
                    raise SyncError(f"{self.label}: connection lost during login "
                                    f"({exc.strerror or exc})") from None
                raise SyncError(str(exc)) from None
            self._conn = c
        return self._conn

    def clone(self) -> ImapStore:
        """Another session on the same account, for a second folder worker."""
        twin = ImapStore(self.ep, self._password, cafile=self._cafile, readonly=self.readonly)
        twin.sep, twin._sep_known = self.sep, self._sep_known
        return twin

    def close(self) -> None:
        if self._conn is not None:
            self._conn.logout()
            self._conn = None
            self._selected = None

    def reselect(self) -> None:
        """Forget the selected folder's cached status: the next select() asks the server
        (a long-lived session, e.g. the fetch daemon's IDLE one, sees the folder change)."""
        self._selected = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def has(self, cap: str) -> bool:
        return cap in self.conn.capabilities

    @property
    def exact_delete(self) -> bool:
        """delete() removes exactly the given messages (UID EXPUNGE, RFC 4315); without
        UIDPLUS an EXPUNGE also takes whatever else a user had marked \\Deleted."""
        return self.has("UIDPLUS")

    # -- names -------------------------------------------------------------
    def _learn_sep(self) -> None:
        if not self._sep_known:
            _, resp = self.conn.run(b'LIST "" ""')
            for r in resp:
                p = r.parse()
                if len(p) >= 4 and p[1] == b"LIST" and isinstance(p[3], bytes):
                    self.sep = _text(p[3]) if p[3].upper() != b"NIL" else "/"
            self._sep_known = True

    def native(self, folder: str) -> bytes:
        """The name as the server spells it: its separator, modified UTF-7 (utf7.py)."""
        self._learn_sep()
        return quote(encode_utf7(folder.replace("/", self.sep)))

    def canonical(self, name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else decode_utf7(name).replace(self.sep, "/")

    # -- folders -----------------------------------------------------------
    def folders(self) -> dict[str, FolderStatus]:
        c = self.conn
        listed: dict[str, FolderStatus] = {}
        names: list[str] = []
        cmd = b'LIST "" "*"'
        if "LIST-STATUS" in c.capabilities:
            cmd += b" RETURN (STATUS " + self._items() + b")"
        _, resp = c.run(cmd)
        for r in resp:
            p = r.parse()
            if len(p) < 5:
                continue
            if p[1] == b"LIST":
                attrs = {bytes(a).upper() for a in p[2]} if isinstance(p[2], list) else set()
                if isinstance(p[3], bytes) and p[3].upper() != b"NIL":
                    self.sep, self._sep_known = _text(p[3]), True
                if not attrs & {b"\\NOSELECT", b"\\NONEXISTENT"}:
                    names.append(_text(p[4]))
            elif p[1] == b"STATUS" and isinstance(p[3], list):
                listed[_text(p[2])] = _status(p[3])
        missing = [n for n in names if n not in listed]
        tags = [c.send(b"STATUS " + quote(n) + b" " + self._items()) for n in missing]
        for r in c.wait_all(tags):
            p = r.parse()
            if len(p) >= 4 and p[1] == b"STATUS" and isinstance(p[3], list):
                listed[_text(p[2])] = _status(p[3])
        return {self.canonical(n): listed[n] for n in names if n in listed}

    def special_use(self) -> dict[str, str]:
        """role ("Sent", "Drafts", "Junk", "Trash", "Archive") -> folder, from the
        SPECIAL-USE attributes (RFC 6154) of LIST, asked for explicitly where the
        server advertises the extension (some report them only then)."""
        c = self.conn
        cmd = b'LIST "" "*"'
        if "SPECIAL-USE" in c.capabilities:
            cmd += b" RETURN (SPECIAL-USE)"
        _, resp = c.run(cmd)
        out: dict[str, str] = {}
        for r in resp:
            p = r.parse()
            if len(p) < 5 or p[1] != b"LIST" or not isinstance(p[2], list):
                continue
            for a in p[2]:
                role = bytes(a).decode("ascii", "replace").lstrip("\\").title()
                if role in ("Sent", "Drafts", "Junk", "Trash", "Archive"):
                    out.setdefault(role, self.canonical(_text(p[4])))
        return out

    def _items(self) -> bytes:
        if "CONDSTORE" in self.conn.capabilities:
            return _STATUS_ITEMS
        return _STATUS_ITEMS.replace(b" HIGHESTMODSEQ", b"")

    def status(self, folder: str) -> FolderStatus | None:
        _, resp = self.conn.wait(self.conn.send(
            b"STATUS " + self.native(folder) + b" " + self._items()), check=False)
        for r in resp:
            p = r.parse()
            if len(p) >= 4 and p[1] == b"STATUS" and isinstance(p[3], list):
                return _status(p[3])
        return None

    def create(self, folder: str) -> None:
        line, _ = self.conn.wait(self.conn.send(b"CREATE " + self.native(folder)), check=False)
        if b" OK" not in line[:12] and b"ALREADYEXISTS" not in line.upper() \
                and self.status(folder) is None:
            raise SyncError(f"{self.label}: cannot create folder {folder}: {line[:200]!r}")

    def select(self, folder: str, write: bool = False) -> FolderStatus:
        want = (folder, write or not self.readonly)
        if self._selected == want:
            return self._sel_status
        self.conn.enable()
        verb = b"SELECT " if want[1] else b"EXAMINE "
        cond = b" (CONDSTORE)" if "CONDSTORE" in self.conn.capabilities else b""
        try:
            _, resp = self.conn.run(verb + self.native(folder) + cond)
        except ImapError as exc:
            self._selected = None
            raise SyncError(f"cannot open folder {folder}: {exc}") from None
        st = FolderStatus(0, 0, 0, 0)
        for r in resp:
            line = r.line
            if line.endswith(b" EXISTS"):
                st.messages = int(line.split()[1])
            for code, attr in ((b"[UIDVALIDITY ", "uidvalidity"), (b"[UIDNEXT ", "uidnext"),
                               (b"[HIGHESTMODSEQ ", "modseq")):
                i = line.find(code)
                if i >= 0:
                    setattr(st, attr, int(line[i + len(code):].split(b"]")[0]))
        self._selected, self._sel_status = want, st
        return st

    # -- messages ----------------------------------------------------------
    def scan(self, folder: str, since_uid: int = 0, since_modseq: int = 0) -> Scan:
        """The whole listing at once (verify, fetch, the target side); see scan_chunks."""
        out = Scan(set(), {}, 0)
        for chunk in self.scan_chunks(folder, since_uid, since_modseq):
            out.keys |= chunk.keys
            out.info.update(chunk.info)
            out.modseq = chunk.modseq
        return out

    def scan_chunks(self, folder: str, since_uid: int = 0, since_modseq: int = 0
                    ) -> Iterator[Scan]:
        """The listing in UID windows of SCAN_WINDOW, so memory does not grow with the
        mailbox: the engine copies a window's new messages before listing the next.
        With CONDSTORE and a previous pass: one chunk of what changed or arrived, plus
        every UID (for deletions) from one UID SEARCH."""
        st = self.select(folder)
        if st.messages == 0:
            return
        c = self.conn
        items = b" (UID FLAGS RFC822.SIZE)"
        if since_modseq and st.modseq and "CONDSTORE" in c.capabilities:
            out = Scan(set(), {}, st.modseq)
            t_all = c.send(b"UID SEARCH ALL")
            t_chg = c.send(b"UID FETCH 1:*" + items + b" (CHANGEDSINCE %d)" % since_modseq)
            t_new = c.send(b"UID FETCH %d:*" % (since_uid + 1) + items)
            for r in c.wait_all([t_all, t_chg, t_new]):
                if r.line.startswith(b"* SEARCH"):
                    out.keys.update(r.line[9:].decode().split())
                else:
                    _listed(r, out, 0, 0)
            yield out
            return
        top = st.uidnext - 1
        lo = 1
        while True:
            hi = lo + SCAN_WINDOW - 1
            last = top <= 0 or hi >= top  # `lo:*` also catches mail arriving meanwhile
            out = Scan(set(), {}, st.modseq)
            for r in c.run(b"UID FETCH %d:" % lo + (b"*" if last else b"%d" % hi) + items)[1]:
                _listed(r, out, lo, 0 if last else hi)
            yield out
            if last:
                return
            lo = hi + 1

    def fetch(self, folder: str, keys: list[str], sizes: dict[str, int]) -> Iterator[Msg]:
        """Bodies of `keys` in byte-bounded UID batches, two commands in flight."""
        self.select(folder)
        c = self.conn
        batches: list[list[int]] = []
        cur: list[int] = []
        size = 0
        for k in sorted(keys, key=int):
            s = sizes.get(k, 16384)
            if cur and (size + s > FETCH_BATCH_BYTES or len(cur) >= FETCH_BATCH_MAX):
                batches.append(cur)
                cur, size = [], 0
            cur.append(int(k))
            size += s
        if cur:
            batches.append(cur)
        cmd = b"UID FETCH %s (UID FLAGS INTERNALDATE BODY.PEEK[])"
        inflight = [c.send(cmd % uid_set(b)) for b in batches[:2]]
        nxt = 2
        while inflight:
            _, resp = c.wait(inflight.pop(0))
            if nxt < len(batches):
                inflight.append(c.send(cmd % uid_set(batches[nxt])))
                nxt += 1
            for i, r in enumerate(resp):
                resp[i] = _NONE  # drop each response as it is handed on (memory)
                got = fetch_items(r, raw=True)
                if got is None:
                    continue
                d = got[1]
                body = d.get(b"BODY[]")
                if b"UID" not in d or not isinstance(body, bytes):
                    continue
                yield Msg(_text(d[b"UID"]), norm_flags(d.get(b"FLAGS", [])),
                          _text(d.get(b"INTERNALDATE", b"")), body)

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        """Upload; returns the new UIDs (APPENDUID) in order, None where unknown."""
        return self.append_finish(self.append_start(folder, msgs))

    def append_start(self, folder: str, msgs: list[Msg]) -> Any:
        """Send the MULTIAPPEND commands without waiting, so the engine can hand the
        server the next batch before it commits the state for this one."""
        c = self.conn
        multi = "MULTIAPPEND" in c.capabilities
        groups: list[list[Msg]] = []
        size = 0
        for m in msgs:
            if (not groups or not multi or len(groups[-1]) >= APPEND_BATCH
                    or size + len(m.body) > APPEND_BATCH_BYTES):
                groups.append([])
                size = 0
            groups[-1].append(m)
            size += len(m.body)
        name = self.native(folder)
        if self._selected and self._selected[0] == folder:
            self._selected = None  # its EXISTS/UIDNEXT are about to change
        tags = []
        for g in groups:
            parts = [b"APPEND " + name]
            for m in g:
                flags = " ".join(f for f in m.flags.split() if f != "\\Recent").encode()
                date = b' "' + m.date.encode() + b'"' if m.date else b""
                parts.append(b" (" + flags + b")" + date + b" \x00")
            tags.append((len(g), c.send(b"".join(parts), *(m.body for m in g))))
        return (folder, tags)

    def append_finish(self, handle: Any) -> list[str | None]:
        folder, tags = handle
        out: list[str | None] = []
        errors = []
        for n, tag in tags:
            line, _ = self.conn.wait(tag, check=False)
            if b" OK" not in line[:12]:
                errors.append(line.decode("utf-8", "replace")[:200])
                out.extend([None] * n)
                continue
            i = line.find(b"[APPENDUID ")
            uids = parse_uid_set(line[i + 11:].split(b"]")[0].split()[1]) if i >= 0 else []
            out.extend(str(u) for u in uids) if len(uids) == n else out.extend([None] * n)
        if errors:
            raise SyncError(f"{self.label}: APPEND to {folder} refused: {errors[0]}")
        return out

    def set_flags(self, folder: str, changes: dict[str, str]) -> None:
        self.select(folder, write=True)
        by_flags: dict[str, list[int]] = {}
        for k, f in changes.items():
            by_flags.setdefault(f, []).append(int(k))
        self.conn.wait_all([self.conn.send(b"UID STORE %s FLAGS.SILENT (%s)" % (
            uid_set(sorted(u)), f.encode())) for f, u in by_flags.items()])

    def delete(self, folder: str, keys: list[str]) -> None:
        if not keys:
            return
        self.select(folder, write=True)
        s = uid_set(sorted(int(k) for k in keys))
        self.conn.run(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % s)
        self.conn.run(b"UID EXPUNGE %s" % s if "UIDPLUS" in self.conn.capabilities
                      else b"EXPUNGE")
        self._selected = None


_NONE = Response(b"", [])


def _listed(r: Response, out: Scan, lo: int, hi: int) -> None:
    """One `* n FETCH (UID u FLAGS (..) RFC822.SIZE s)` into `out`, if lo <= u (<= hi).
    The bounds matter: `lo:*` answers the highest UID even when it is below lo."""
    got = fetch_items(r)
    if got is None or b"UID" not in got[1]:
        return
    d = got[1]
    uid = int(d[b"UID"])
    if uid < lo or (hi and uid > hi):
        return
    key = str(uid)
    out.keys.add(key)
    out.info[key] = (_flags(d.get(b"FLAGS", [])), int(d.get(b"RFC822.SIZE", 0)))


_FLAG_CACHE: dict[tuple[bytes, ...], str] = {}


def _flags(raw: Any) -> str:
    """norm_flags, memoised: a mailbox has few distinct flag sets, and sharing one string
    per set keeps a large listing small."""
    k = tuple(raw) if isinstance(raw, list) else ()
    got = _FLAG_CACHE.get(k)
    if got is None:
        got = norm_flags(raw)
        if len(_FLAG_CACHE) < 4096:
            _FLAG_CACHE[k] = got
    return got


def _status(items: list[Any]) -> FolderStatus:
    d = {bytes(items[i]).upper(): int(items[i + 1]) for i in range(0, len(items) - 1, 2)}
    return FolderStatus(d.get(b"UIDVALIDITY", 0), d.get(b"UIDNEXT", 0), d.get(b"MESSAGES", 0),
                        d.get(b"HIGHESTMODSEQ", 0))


__all__ = ["ImapStore", "Literal", "parse_sexp"]
