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
from typing import Any

from mailctl.secret import Secret
from mailctl.sync.endpoint import Endpoint
from mailctl.sync.imapwire import (
    Connection,
    ImapError,
    Literal,
    fetch_items,
    parse_sexp,
    parse_uid_set,
    quote,
    uid_set,
)
from mailctl.sync.model import FolderStatus, Msg, Scan, SyncError, norm_flags

FETCH_BATCH_BYTES = 8 << 20
FETCH_BATCH_MAX = 1000
APPEND_BATCH = 100
APPEND_BATCH_BYTES = 16 << 20
_STATUS_ITEMS = b"(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"


def _text(v: Any) -> str:
    return bytes(v).decode("utf-8", "surrogateescape")


class ImapStore:
    def __init__(self, ep: Endpoint, password: Secret, *, cafile: str | None = None,
                 readonly: bool = False) -> None:
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
                c.login(self.ep.user, self._password)
            except OSError as exc:
                raise SyncError(f"{self.label}: cannot connect ({exc.strerror or exc})") from None
            except ImapError as exc:
                raise SyncError(str(exc)) from None
            self._conn = c
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.logout()
            self._conn = None
            self._selected = None

    def has(self, cap: str) -> bool:
        return cap in self.conn.capabilities

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
        self._learn_sep()
        return quote(folder.replace("/", self.sep))

    def canonical(self, name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else name.replace(self.sep, "/")

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
        st = self.select(folder)
        out = Scan(set(), {}, st.modseq)
        if st.messages == 0:
            return out
        c = self.conn
        items = b"(UID FLAGS RFC822.SIZE)"
        if since_modseq and st.modseq and "CONDSTORE" in c.capabilities:
            t_all = c.send(b"UID SEARCH ALL")
            t_chg = c.send(b"UID FETCH 1:* " + items + b" (CHANGEDSINCE %d)" % since_modseq)
            t_new = c.send(b"UID FETCH %d:* " % (since_uid + 1) + items)
            responses = c.wait_all([t_all, t_chg, t_new])
            for r in responses:
                if r.line.startswith(b"* SEARCH"):
                    out.keys.update(r.line[9:].decode().split())
        else:
            responses = c.run(b"UID FETCH 1:* " + items)[1]
        for r in responses:
            got = fetch_items(r)
            if got is None or b"UID" not in got[1]:
                continue
            d = got[1]
            key = _text(d[b"UID"])
            out.keys.add(key)
            out.info[key] = (norm_flags(d.get(b"FLAGS", [])), int(d.get(b"RFC822.SIZE", 0)))
        return out

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
            for r in resp:
                got = fetch_items(r)
                if got is None:
                    continue
                d = got[1]
                body = d.get(b"BODY[]")
                if b"UID" not in d or not isinstance(body, bytes):
                    continue
                yield Msg(_text(d[b"UID"]), norm_flags(d.get(b"FLAGS", [])),
                          _text(d.get(b"INTERNALDATE", b"")), bytes(body))

    def append(self, folder: str, msgs: list[Msg]) -> list[str | None]:
        """Upload; returns the new UIDs (APPENDUID) in order, None where unknown."""
        c = self.conn
        multi = "MULTIAPPEND" in c.capabilities
        groups: list[list[Msg]] = []
        for m in msgs:
            if (not groups or not multi or len(groups[-1]) >= APPEND_BATCH
                    or sum(len(x.body) for x in groups[-1]) + len(m.body) > APPEND_BATCH_BYTES):
                groups.append([])
            groups[-1].append(m)
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
            tags.append((g, c.send(b"".join(parts), *(m.body for m in g))))
        out: list[str | None] = []
        errors = []
        for g, tag in tags:
            line, _ = c.wait(tag, check=False)
            if b" OK" not in line[:12]:
                errors.append(line.decode("utf-8", "replace")[:200])
                out.extend([None] * len(g))
                continue
            i = line.find(b"[APPENDUID ")
            uids = parse_uid_set(line[i + 11:].split(b"]")[0].split()[1]) if i >= 0 else []
            out.extend(str(u) for u in uids) if len(uids) == len(g) else out.extend(
                [None] * len(g))
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


def _status(items: list[Any]) -> FolderStatus:
    d = {bytes(items[i]).upper(): int(items[i + 1]) for i in range(0, len(items) - 1, 2)}
    return FolderStatus(d.get(b"UIDVALIDITY", 0), d.get(b"UIDNEXT", 0), d.get(b"MESSAGES", 0),
                        d.get(b"HIGHESTMODSEQ", 0))


__all__ = ["ImapStore", "Literal", "parse_sexp"]
