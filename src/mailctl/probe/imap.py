"""imaplib with IDLE (RFC 2177), UIDPLUS-safe deletion and a marker search.

Python 3.11's imaplib has no IDLE, so a probe that polls measures the poll
interval as much as the mail system. IDLE needs to wait on the socket with a
deadline, which imaplib's buffered `sock.makefile()` cannot do: a timed-out
read poisons the file object, and bytes already buffered are invisible to
select(). So the connection reads through `_Reader`, a buffer we can inspect.
"""

from __future__ import annotations

import imaplib
import re
import select
import socket
import ssl
import time
from typing import IO, Any, Literal, cast

_EXISTS_RE = re.compile(rb"^\* \d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_FLAG_DELETED = r"(\Deleted)"


class _Reader:
    """Line/block reads over a socket with a buffer whose fill level is visible."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed by the server")
        self.buf += chunk

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0 or (0 < limit <= len(self.buf)):
                n = end + 1 if end >= 0 else limit
                if 0 < limit < n:
                    n = limit
                line = bytes(self.buf[:n])
                del self.buf[:n]
                return line
            self._fill()

    def read(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def ready(self, timeout: float) -> bool:
        """True if a read would not block (buffered, TLS-pending or on the wire)."""
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        readable, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        return bool(readable)

    def close(self) -> None:
        self.buf.clear()


def _attach(conn: imaplib.IMAP4) -> None:
    conn.file.close()
    conn.file = cast(IO[bytes], _Reader(conn.sock))


def reader_of(conn: imaplib.IMAP4) -> _Reader:
    if not isinstance(conn.file, _Reader):
        raise ImapError("IDLE needs a connection from mailctl.probe.imap")
    return conn.file


class PlainIMAP(imaplib.IMAP4):
    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        _attach(self)

    def starttls(self, ssl_context: Any | None = None) -> tuple[Literal["OK"], list[None]]:
        result = super().starttls(ssl_context)
        _attach(self)
        return result


class SslIMAP(imaplib.IMAP4_SSL):
    def open(self, host: str = "", port: int | None = 993, timeout: float | None = None) -> None:
        super().open(host, port, timeout)
        _attach(self)


class ImapError(Exception):
    """A command the server answered with NO/BAD, or an unusable answer."""


def check(typ: str, data: list[Any], what: str) -> list[Any]:
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise ImapError(f"{what}: {typ} {detail}".strip())
    return data


def quote(text: str) -> str:
    """imaplib sends arguments verbatim; a search string must be a quoted IMAP string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uids_of(data: list[Any]) -> list[bytes]:
    return [u for part in data if isinstance(part, bytes) for u in part.split()]


def uid_next(conn: imaplib.IMAP4) -> int:
    """UIDNEXT from the last SELECT/EXAMINE (1 if the server did not say)."""
    _, data = conn.response("UIDNEXT")
    try:
        return int(data[-1]) if data and data[-1] else 1
    except (TypeError, ValueError):
        return 1


def search_header(conn: imaplib.IMAP4, header: str, value: str, from_uid: int = 1) -> list[bytes]:
    """UIDs carrying `header: value`, looking only at UIDs >= from_uid (cheap on big boxes)."""
    typ, data = conn.uid("SEARCH", f"UID {from_uid}:*", "HEADER", header, quote(value))
    return uids_of(check(typ, data, "UID SEARCH"))


def delete_uids(conn: imaplib.IMAP4, uids: list[bytes]) -> None:
    """Flag and expunge exactly these UIDs: other mail, even if \\Deleted, stays.

    A plain EXPUNGE would also remove messages the user flagged \\Deleted but
    did not expunge yet, so without UIDPLUS the probe refuses to expunge."""
    if not uids:
        return
    uid_set = b",".join(uids).decode()
    check(*conn.uid("STORE", uid_set, "+FLAGS.SILENT", _FLAG_DELETED), "UID STORE")
    if "UIDPLUS" not in conn.capabilities:
        raise ImapError("server lacks UIDPLUS: refusing a plain EXPUNGE that would also "
                        "remove other messages flagged \\Deleted")
    check(*conn.uid("EXPUNGE", uid_set), "UID EXPUNGE")


def refresh_capabilities(conn: imaplib.IMAP4) -> None:
    """Servers announce UIDPLUS, IDLE, ... only after login; imaplib keeps the greeting's."""
    typ, data = conn.capability()
    if typ == "OK" and data and isinstance(data[-1], bytes):
        conn.capabilities = tuple(data[-1].decode(errors="replace").upper().split())


def has_idle(conn: imaplib.IMAP4) -> bool:
    return "IDLE" in conn.capabilities and isinstance(conn.file, _Reader)


class Idle:
    """One IDLE session, split in three so the probe can send while the server watches.

    Starting IDLE before the SMTP leg means the server's EXISTS arrives on the
    socket the moment the message is stored; the probe reads it afterwards
    without having lost any time. The server's untagged lines are consumed
    here (imaplib never sees them); the caller re-searches, so nothing of
    value is lost."""

    _count = 0

    def __init__(self, conn: imaplib.IMAP4) -> None:
        self.conn = conn
        self.reader = reader_of(conn)
        self.tag = b""
        self.seen = False

    def start(self) -> None:
        Idle._count += 1
        self.tag = f"PIDLE{Idle._count}".encode()
        self.seen = False
        self.conn.send(self.tag + b" IDLE\r\n")
        while True:  # up to the continuation; the server may send updates first
            line = self.reader.readline()
            if line.startswith(b"+"):
                return
            if line.startswith(self.tag):
                raise ImapError(f"IDLE refused: {line.decode(errors='replace').strip()}")
            self.seen = self.seen or bool(_EXISTS_RE.match(line))

    def wait(self, timeout: float) -> bool:
        """Until the server reports new mail (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.reader.ready(remaining):
                break
            self.seen = bool(_EXISTS_RE.match(self.reader.readline()))
        return self.seen

    def done(self) -> bool:
        self.conn.send(b"DONE\r\n")
        while True:
            line = self.reader.readline()
            if line.startswith(self.tag):
                if not line[len(self.tag):].lstrip().upper().startswith(b"OK"):
                    raise ImapError(f"IDLE ended badly: {line.decode(errors='replace').strip()}")
                return self.seen
            self.seen = self.seen or bool(_EXISTS_RE.match(line))
