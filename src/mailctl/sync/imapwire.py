"""A small pipelined IMAP4rev1 client: raw socket, literals sliced by length.

Why not imaplib: it cannot pipeline, has no LITERAL+/MULTIAPPEND, leaves Nagle
on (69 ms per APPEND at 10 ms RTT, see docs/sync.md) and re-scans every
response with regular expressions. Here a response is read as line segments
plus literals (the `{n}` length says how many bytes to take, bodies are never
scanned), and several tagged commands can be in flight; the caller collects
them in order with `wait()`; parsing what was read is imapparse.py's job. Only
the standard library is imported, and `ssl` only for imaps, so that a no-change
run starts fast.
"""

from __future__ import annotations

import re
import socket
import sys

from mailctl.secret import Secret
from mailctl.sync.imapparse import Response, quote

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LIT_TAIL = re.compile(rb"\{(\d+)\+?\}$")
_RESP_CODE = re.compile(rb"\[([A-Z-]+)(?: ([^\]]*))?\]")
_NEWS_TAILS = (b" EXISTS", b" RECENT")
IDLE_MAX = 29 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
# struct linger {int l_onoff, l_linger}: {1, 0} resets on close, {0, 0} is the default
_LINGER_RESET = (1).to_bytes(4, sys.byteorder) + bytes(4)
_LINGER_GRACEFUL = bytes(8)


def reset_when_dropped(sock: socket.socket) -> None:
    """If this process dies, reset the connection instead of letting the kernel deliver
    what we had queued: a server finishes any command it receives whole, even from a
    dead client. Measured on Dovecot after a kill -9 mid-restore: queued MULTIAPPENDs
    were committed up to 1.6 s later with a graceful close, within ~50 ms with this.
    `close_gracefully` undoes it for a clean end (LOGOUT, QUIT)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


def close_gracefully(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_GRACEFUL)


def _news(line: bytes) -> bool:
    """`* n EXISTS`, or `* n RECENT` with n > 0: the server reports new mail."""
    return line.endswith(b" EXISTS") or (line.endswith(b" RECENT")
                                         and not line.startswith(b"* 0 "))


class ImapError(Exception):
    """A NO/BAD answer or a broken connection; the message never holds a password."""


class Connection:
    """One IMAP session. Not thread-safe: one owner at a time."""

    def __init__(self, host: str, port: int, *, tls: bool = False, cafile: str | None = None,
                 timeout: float = 60.0) -> None:
        self.host = host
        # An ASCII name as bytes: a str host makes socket import the idna codec (~2 ms).
        addr: Any = host.encode() if host.isascii() else host  # typeshed: str only
        sock = socket.create_connection((addr, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reset_when_dropped(sock)  # logout() restores the graceful close
        if tls:
            import ssl

            ctx = ssl.create_default_context(cafile=cafile)
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self._buf = bytearray()
        self._pos = 0
        self._tagn = 0
        self._pending: set[bytes] = set()
        self._done: dict[bytes, bytes] = {}
        self.untagged: list[Response] = []
        self.capabilities: set[str] = set()
        self._enabled = False
        # Set whenever the server reports new mail (EXISTS/RECENT) in any untagged response;
        # the fetch daemon clears it after SELECT and IDLEs only while it stays clear.
        self.new_mail = False
        self._idle_tag = b""
        greeting = self._read_response()
        if not greeting.line.startswith(b"* OK") and not greeting.line.startswith(b"* PREAUTH"):
            raise ImapError(f"unexpected greeting from {host}: {greeting.line[:80]!r}")
        self._caps_from(greeting.line)

    # -- reading -----------------------------------------------------------
    def _fill(self) -> None:
        if self._pos > 1 << 20 and self._pos > len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ImapError(f"connection to {self.host} closed by the server")
        self._buf += chunk

    def _read_line(self) -> bytes:
        while True:
            i = self._buf.find(b"\r\n", self._pos)
            if i >= 0:
                line = bytes(self._buf[self._pos:i])
                self._pos = i + 2
                return line
            self._fill()

    def _read_exact(self, n: int) -> bytes:
        """One copy out of the receive buffer (a bytearray slice would make two)."""
        while len(self._buf) - self._pos < n:
            self._fill()
        with memoryview(self._buf) as view:
            data = view[self._pos:self._pos + n].tobytes()
        self._pos += n
        return data

    def _read_response(self) -> Response:
        parts: list[bytes] = []
        literals: list[bytes] = []
        while True:
            line = self._read_line()
            m = _LIT_TAIL.search(line)
            if not m:
                parts.append(line)
                return Response(b"".join(parts), literals)
            parts.append(line[: m.start()] + b"\x00LIT")
            literals.append(self._read_exact(int(m.group(1))))

    # -- commands ----------------------------------------------------------
    def send(self, command: bytes, *literal_data: bytes) -> bytes:
        """Send a command without waiting; literals go non-synchronizing (LITERAL+).

        `command` holds one `\\x00` per literal, where `{n+}` and its data go."""
        self._tagn += 1
        tag = b"m%d" % self._tagn
        pieces = command.split(b"\x00")
        if len(pieces) - 1 != len(literal_data):
            raise ValueError("literal placeholders do not match the data")
        sync = "LITERAL+" not in self.capabilities
        out = [tag, b" ", pieces[0]]
        for data, rest in zip(literal_data, pieces[1:], strict=True):
            if sync:
                self.sock.sendall(b"".join(out) + b"{%d}\r\n" % len(data))
                out = []
                while True:
                    r = self._read_response()
                    if r.line.startswith(b"+"):
                        break
                    if r.line.startswith(tag + b" "):
                        raise ImapError(self._describe(r.line))
                    self.new_mail = self.new_mail or _news(r.line)
                    self.untagged.append(r)
            else:
                out.append(b"{%d+}\r\n" % len(data))
            out += [data, rest]
        out.append(b"\r\n")
        _send_pieces(self.sock, out)
        self._pending.add(tag)
        return tag

    def wait(self, tag: bytes, check: bool = True) -> tuple[bytes, list[Response]]:
        """Read until `tag` completes; returns its tagged line and every untagged response
        read meanwhile. Dovecot runs pipelined commands concurrently (a SEARCH may finish
        after the FETCH sent behind it), so responses cannot be attributed to a command by
        order: callers pipeline only commands whose responses identify themselves (FETCH
        carries the UID, STATUS the folder) and take what arrives."""
        while tag not in self._done:
            r = self._read_response()
            head = r.line.split(b" ", 1)[0]
            if head in self._pending:
                self._pending.discard(head)
                self._done[head] = r.line
            elif head != b"+":
                if r.line[-7:] in _NEWS_TAILS and _news(r.line):  # cheap on bulk FETCHes
                    self.new_mail = True
                self.untagged.append(r)
        line = self._done.pop(tag)
        got, self.untagged = self.untagged, []
        self._caps_from(line)
        if check and not line[len(tag) + 1:].startswith(b"OK"):
            raise ImapError(self._describe(line))
        return line, got

    def wait_all(self, tags: list[bytes]) -> list[Response]:
        got: list[Response] = []
        for t in tags:
            got += self.wait(t)[1]
        return got

    def run(self, command: bytes, *literal_data: bytes) -> tuple[bytes, list[Response]]:
        return self.wait(self.send(command, *literal_data))

    def _describe(self, line: bytes) -> str:
        text = line.decode("utf-8", "replace")
        return f"{self.host}: {text[:300]}"

    def _caps_from(self, line: bytes) -> None:
        m = _RESP_CODE.search(line)
        if m and m.group(1) == b"CAPABILITY" and m.group(2):
            self.capabilities = set(m.group(2).decode().upper().split())

    # -- IDLE (RFC 2177) ----------------------------------------------------
    @property
    def idling(self) -> bool:
        return bool(self._idle_tag)

    def idle_start(self) -> None:
        """Send IDLE and wait for the server's `+`. Updates it sends first (mail that
        arrived since the last command) set `new_mail` like any other."""
        if "IDLE" not in self.capabilities:
            raise ImapError(f"{self.host} does not offer IDLE")
        tag = self.send(b"IDLE")
        while True:
            r = self._read_response()
            if r.line.startswith(b"+"):
                self._idle_tag = tag
                # an EXISTS that came in the same packet as the `+` is news now: left in
                # the buffer, no select() would ever report it
                self._take_idle_responses()
                return
            if r.line.startswith(tag + b" "):
                self._pending.discard(tag)
                raise ImapError(self._describe(r.line))
            self.new_mail = self.new_mail or _news(r.line)

    def buffered(self) -> bool:
        """A complete response already received but not read, or bytes TLS holds:
        select() on the socket would not see them, so `idle_read()` must be called
        without waiting. (Part of a line waits for select() like any other.)"""
        pending = getattr(self.sock, "pending", None)
        return self._buf.find(b"\r\n", self._pos) >= 0 or bool(pending and pending())

    def idle_read(self) -> bool:
        """During IDLE, once the socket is readable (or `buffered()`): take what arrived,
        consume the complete responses, return `new_mail`. A tagged end of the IDLE or a
        BYE (the server gave up on us) raises ImapError, as does a closed connection."""
        if self._buf.find(b"\r\n", self._pos) < 0:
            self._fill()
        self._take_idle_responses()
        return self.new_mail

    def _take_idle_responses(self) -> None:
        while self._buf.find(b"\r\n", self._pos) >= 0:
            r = self._read_response()
            if r.line.startswith(self._idle_tag + b" ") or r.line.startswith(b"* BYE"):
                self._pending.discard(self._idle_tag)
                self._idle_tag = b""
                raise ImapError(self._describe(r.line))
            self.new_mail = self.new_mail or _news(r.line)

    def idle_wait(self, timeout: float) -> bool:
        """Wait in IDLE until new mail is reported (True) or `timeout` passes (False)."""
        import select  # not on the lean path of a backup
        import time

        deadline = time.monotonic() + min(timeout, IDLE_MAX)
        while not self.new_mail:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.buffered() or select.select([self.sock], [], [], left)[0]:
                self.idle_read()
        return self.new_mail

    def idle_done(self) -> None:
        """End IDLE: DONE, then the tagged OK (updates read meanwhile count too)."""
        tag, self._idle_tag = self._idle_tag, b""
        if not tag:
            return
        self.sock.sendall(b"DONE\r\n")
        _, resp = self.wait(tag)
        self.new_mail = self.new_mail or any(_news(r.line) for r in resp)

    def idle(self, timeout: float) -> bool:
        """One IDLE round: start, wait for new mail or `timeout`, DONE. True on new mail."""
        self.idle_start()
        try:
            return self.idle_wait(timeout)
        finally:
            self.idle_done()

    # -- session -----------------------------------------------------------
    def refresh_capabilities(self) -> None:
        _, resp = self.run(b"CAPABILITY")
        for r in resp:
            if r.line.startswith(b"* CAPABILITY"):
                self.capabilities = set(r.line[13:].decode().upper().split())

    def login(self, user: str, password: Secret) -> None:
        if not self.capabilities:
            self.refresh_capabilities()
        if "STARTTLS" in self.capabilities and "LOGINDISABLED" in self.capabilities:
            raise ImapError(f"{self.host} refuses LOGIN without TLS: use imaps://")
        try:
            line, _ = self.wait(self.send(b"LOGIN " + quote(user) + b" \x00",
                                          password.reveal().encode()), check=False)
        except OSError as exc:
            raise ImapError(f"{self.host}: connection lost during login ({exc})") from None
        if b" OK" not in line[:12]:
            raise ImapError(f"{self.host}: login failed for {user}")
        if b"[CAPABILITY" not in line:
            self.refresh_capabilities()

    def authenticate(self, mechanism: str, response: bytes) -> tuple[bool, str]:
        """SASL AUTHENTICATE with one client response (PLAIN, XOAUTH2, OAUTHBEARER): sent
        with the command when the server has SASL-IR (RFC 4959), else after its `+`.
        (ok, the server's words). A `+` after our response is an error challenge (XOAUTH2
        and OAUTHBEARER put their JSON error there): it is answered empty, as the RFCs
        ask, and the tagged NO follows. The response holds a secret: never in an error."""
        import base64

        if not self.capabilities:
            self.refresh_capabilities()
        if f"AUTH={mechanism.upper()}" not in self.capabilities:
            return False, f"{self.host} does not offer AUTH={mechanism.upper()}"
        data = base64.b64encode(response) or b"="
        self._tagn += 1
        tag = b"m%d" % self._tagn
        try:
            if "SASL-IR" in self.capabilities:
                self.sock.sendall(tag + b" AUTHENTICATE " + mechanism.encode() + b" " + data
                                  + b"\r\n")
                sent = True
            else:
                self.sock.sendall(tag + b" AUTHENTICATE " + mechanism.encode() + b"\r\n")
                sent = False
            while True:
                r = self._read_response()
                if r.line.startswith(b"+"):
                    self.sock.sendall((b"" if sent else data) + b"\r\n")
                    sent = True
                    continue
                if r.line.startswith(tag + b" "):
                    break
                self.untagged.append(r)
        except OSError as exc:
            raise ImapError(f"{self.host}: connection lost during login ({exc})") from None
        self.untagged = []
        ok = r.line[len(tag) + 1:].startswith(b"OK")
        if ok:
            self._caps_from(r.line)
            if b"[CAPABILITY" not in r.line:
                self.refresh_capabilities()
        return ok, r.line[len(tag) + 1:].decode("utf-8", "replace")[:200]

    def enable(self) -> None:
        """ENABLE CONDSTORE/QRESYNC before the first SELECT, not at login: a no-change run
        only needs LIST-STATUS (HIGHESTMODSEQ there needs no ENABLE), so it saves the trip."""
        if self._enabled:
            return
        self._enabled = True
        if "ENABLE" in self.capabilities and "QRESYNC" in self.capabilities:
            self.run(b"ENABLE QRESYNC")
        elif "ENABLE" in self.capabilities and "CONDSTORE" in self.capabilities:
            self.run(b"ENABLE CONDSTORE")

    def logout(self) -> None:
        try:
            close_gracefully(self.sock)
            if self._idle_tag:  # a clean end: DONE first, then LOGOUT
                self.sock.sendall(b"DONE\r\n")
                self._idle_tag = b""
            self.sock.sendall(b"zz LOGOUT\r\n")
        except OSError:
            pass
        finally:
            self.sock.close()


def _send_pieces(sock: socket.socket, pieces: list[bytes]) -> None:
    """Send in ~256 KB writes: few syscalls and full segments, without first joining a
    whole MULTIAPPEND group (up to 16 MB) into one more copy."""
    chunk: list[bytes] = []
    size = 0
    for p in pieces:
        if len(p) >= 1 << 18:
            if chunk:
                sock.sendall(b"".join(chunk))
                chunk, size = [], 0
            sock.sendall(p)
            continue
        chunk.append(p)
        size += len(p)
        if size >= 1 << 18:
            sock.sendall(b"".join(chunk))
            chunk, size = [], 0
    if chunk:
        sock.sendall(b"".join(chunk))
