"""One mail roundtrip: IMAP watch, SMTP send, wait for the marker, delete, sweep.

The IMAP side connects first and (with IDLE) is already listening when the
message is sent, so a broken mailbox fails fast and the measured delivery
time is not rounded up to a poll interval. Every failure is tagged with the
stage it happened in; the stage is what an operator acts on (connect = is it
up, tls = certificate, auth = credentials, send = the SMTP code, ...).
"""

from __future__ import annotations

import contextlib
import imaplib
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Any

from mailctl.probe import imap
from mailctl.probe.resolve import Route
from mailctl.secret import scrub

MARKER = "X-Mailctl-Probe"
SENT = "X-Mailctl-Probe-Sent"  # sender's unix time: what leftovers are swept by
FIRST_POLL = 0.005
IDLE_AFTER = 0.5
STAGES = ("connect", "tls", "auth", "send", "receive_timeout", "imap", "cleanup", "spam")


@dataclass
class ProbeResult:
    route: str
    ok: bool = False
    stage: str | None = None  # where it failed; "spam": delivered, but into a spam folder
    service: str | None = None  # smtp | imap
    smtp_code: int | None = None
    message: str = ""
    send_seconds: float | None = None
    delivery_seconds: float | None = None
    roundtrip_seconds: float | None = None
    folder: str | None = None  # where the probe message was found
    idle: bool = False
    leftovers: int = 0  # probe messages of earlier runs found in the watched folders
    swept: int = 0  # of which deleted (older than sweep_after)
    started_at: float = field(default_factory=time.time)
    total_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.ok:
            return f"ok in {self.roundtrip_seconds or 0:.3f}s"
        return self.message


class StageError(Exception):
    def __init__(self, stage: str, service: str, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.stage, self.service, self.detail, self.code = stage, service, detail, code


def _code_of(exc: BaseException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        return int(codes[0]) if codes else None
    code = getattr(exc, "smtp_code", None)
    return int(code) if isinstance(code, int) else None


def _detail(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r}: {c} {m.decode(errors='replace')}"
                         for r, (c, m) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error
        text = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
        return f"{exc.smtp_code} {text}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.removeprefix("b'").removesuffix("'") if text.startswith("b'") else text


@contextlib.contextmanager
def stage(name: str, service: str) -> Any:
    """Turn any failure inside into a StageError; TLS failures are `tls` wherever they occur."""
    try:
        yield
    except StageError:
        raise
    except ssl.SSLError as exc:
        raise StageError("tls", service, _detail(exc)) from exc
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, imap.ImapError) as exc:
        if isinstance(exc, smtplib.SMTPNotSupportedError) and name == "tls":
            raise StageError("tls", service, "server does not offer STARTTLS") from exc
        raise StageError(name, service, _detail(exc), _code_of(exc)) from exc


def build_message(route: Route, token: str, sent_at: float) -> bytes:
    rs = route.settings
    domain = rs.sender.rpartition("@")[2] or "mailctl.invalid"
    lines = [
        f"From: <{rs.sender}>",
        f"To: <{rs.rcpt()}>",
        f"Subject: mailctl probe {route.name} {token}",
        f"Date: {formatdate(sent_at)}",
        f"Message-ID: <mailctl-probe.{token}@{domain}>",
        f"{MARKER}: {token}",
        f"{SENT}: {sent_at:.6f}",
        f"X-Mailctl-Probe-Route: {route.name}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"mailctl roundtrip probe for route {route.name}; deleted by the probe on arrival.",
        "",
    ]
    return "\r\n".join(lines).encode("ascii", "replace")


def connect_imap(route: Route) -> imaplib.IMAP4:
    ims = route.settings.imap
    timeout = route.settings.connect_timeout
    conn: imaplib.IMAP4
    with stage("connect", "imap"):
        if ims.tls == "tls":
            conn = imap.SslIMAP(ims.host, ims.effective_port(), ssl_context=route.imap_tls,
                                timeout=timeout)
        else:
            conn = imap.PlainIMAP(ims.host, ims.effective_port(), timeout=timeout)
    try:
        if ims.tls == "starttls":
            with stage("tls", "imap"):
                conn.starttls(route.imap_tls)
        with stage("auth", "imap"):
            conn.login(ims.username, route.imap_password.reveal())
        with stage("imap", "imap"):
            imap.refresh_capabilities(conn)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.shutdown()
        raise
    return conn


def send(route: Route, msg: bytes) -> None:
    sms = route.settings.smtp
    timeout = route.settings.connect_timeout
    server: smtplib.SMTP
    with stage("connect", "smtp"):
        if sms.tls == "tls":
            server = smtplib.SMTP_SSL(sms.host, sms.effective_port(), local_hostname=sms.helo,
                                      timeout=timeout, context=route.smtp_tls)
        else:
            server = smtplib.SMTP(sms.host, sms.effective_port(), local_hostname=sms.helo,
                                  timeout=timeout)
    try:
        with stage("connect", "smtp"):
            server.ehlo()
        if sms.tls == "starttls":
            with stage("tls", "smtp"):
                server.starttls(context=route.smtp_tls)
                server.ehlo()
        if sms.username and route.smtp_password is not None:
            with stage("auth", "smtp"):
                server.login(sms.username, route.smtp_password.reveal())
        with stage("send", "smtp"):
            server.sendmail(route.settings.sender, [route.settings.rcpt()], msg)
        with contextlib.suppress(Exception):
            server.quit()
    finally:
        with contextlib.suppress(Exception):
            server.close()


def run_route(route: Route, sweep_after: float) -> ProbeResult:
    """One complete probe of `route`; never raises for a mail-side failure."""
    res = ProbeResult(route.name)
    t_start = time.monotonic()
    conn: imaplib.IMAP4 | None = None
    try:
        conn = connect_imap(route)
        _Roundtrip(route, conn, res, sweep_after).run()
    except StageError as exc:
        res.ok, res.stage, res.service, res.smtp_code = False, exc.stage, exc.service, exc.code
        res.message = scrub(f"{exc.service} {exc.stage}: {exc.detail}")[:400]
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.logout()
        res.total_seconds = time.monotonic() - t_start
    return res


class _Roundtrip:
    def __init__(self, route: Route, conn: imaplib.IMAP4, res: ProbeResult,
                 sweep_after: float) -> None:
        self.route, self.conn, self.res, self.sweep_after = route, conn, res, sweep_after
        self.ims = route.settings.imap
        self.selected = ""

    def select(self, folder: str) -> None:
        if folder != self.selected:
            imap.check(*self.conn.select(imap.quote(folder)), f"SELECT {folder}")
            self.selected = folder

    def run(self) -> None:
        res, ims = self.res, self.ims
        with stage("imap", "imap"):
            self.select(ims.mailbox)
            first_uid = imap.uid_next(self.conn)
            spam = self._spam_uidnext()
        res.idle = ims.idle and imap.has_idle(self.conn)
        token = uuid.uuid4().hex
        t0 = time.monotonic()
        send(self.route, build_message(self.route, token, time.time()))
        t_sent = time.monotonic()
        res.send_seconds = t_sent - t0
        with stage("imap", "imap"):
            hit = self._wait(token, first_uid, spam, t0 + self.route.settings.timeout)
        if hit is None:
            with contextlib.suppress(StageError):
                self._sweep(spam)
            raise StageError("receive_timeout", "imap",
                             f"probe message not in {ims.mailbox}"
                             f"{' or ' + ', '.join(spam) if spam else ''} "
                             f"after {self.route.settings.timeout:g}s")
        folder, uids, t_found = hit
        res.folder = folder
        res.delivery_seconds = t_found - t_sent
        res.roundtrip_seconds = t_found - t0
        with stage("cleanup", "imap"):
            imap.delete_uids(self.conn, uids)
            self._sweep(spam)
        if folder != ims.mailbox:
            raise StageError("spam", "imap", f"landed in spam folder {folder} "
                             f"after {res.roundtrip_seconds:.3f}s")
        res.ok = True
        res.message = f"delivered to {folder} in {res.roundtrip_seconds:.3f}s"

    def _wait(self, token: str, first_uid: int, spam: dict[str, int],
              deadline: float) -> tuple[str, list[bytes], float] | None:
        """Until the marker shows up in the mailbox (or a spam folder) or the deadline.

        Polls at growing intervals (5 ms, x1.2) and, once an interval would
        reach IDLE_AFTER, waits in IDLE instead. Not IDLE from the start:
        Dovecot batches IDLE notifications for 0.5 s (measured), which would
        add half a second to every measurement on a fast system; polling
        early keeps the error under ~20 % of the elapsed time, and IDLE then
        bounds it by the server's batching rather than by poll_interval."""
        poll = self.ims.poll_interval
        delay = FIRST_POLL
        idler = imap.Idle(self.conn) if self.res.idle else None
        next_spam = time.monotonic() + poll
        while True:
            uids = imap.search_header(self.conn, MARKER, token, first_uid)
            now = time.monotonic()
            if uids:
                return self.ims.mailbox, uids, now
            if spam and (now >= next_spam or now >= deadline):
                next_spam = now + poll
                hit = self._search_spam(spam, token)
                if hit:
                    return hit[0], hit[1], time.monotonic()
            if now >= deadline:
                return None
            left = deadline - now
            if idler is not None and delay >= IDLE_AFTER:
                idler.start()
                idler.wait(min(poll, left))
                idler.done()
                continue
            time.sleep(min(delay, left))
            delay = min(delay * 1.2, poll)
            imap.check(*self.conn.noop(), "NOOP")

    def _spam_uidnext(self) -> dict[str, int]:
        """UIDNEXT of each configured spam folder that exists (others are skipped)."""
        out = {}
        for folder in self.ims.spam_folders:
            if folder == self.ims.mailbox:
                continue
            nxt = self._status(folder, "UIDNEXT")
            if nxt is not None:
                out[folder] = nxt
        return out

    def _status(self, folder: str, item: str) -> int | None:
        typ, data = self.conn.status(imap.quote(folder), f"({item})")
        if typ != "OK":
            return None  # no such folder
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        _, _, rest = text.upper().partition(item + " ")
        num = rest.split(")")[0].split()[0] if rest else ""
        return int(num) if num.isdigit() else None

    def _search_spam(self, spam: dict[str, int], token: str) -> tuple[str, list[bytes]] | None:
        for folder, first_uid in spam.items():
            nxt = self._status(folder, "UIDNEXT")
            if nxt is None or nxt <= first_uid:
                continue
            self.select(folder)
            uids = imap.search_header(self.conn, MARKER, token, first_uid)
            if uids:
                return folder, uids
        self.select(self.ims.mailbox)
        return None

    def _sweep(self, spam: dict[str, int]) -> None:
        """Delete earlier runs' probe messages older than sweep_after, by their sent header.

        Never by arrival date: IMAP dates are day-granular and a date alone
        cannot tell our messages from the user's."""
        cutoff = time.time() - self.sweep_after
        for folder in [self.ims.mailbox, *spam]:
            if folder != self.selected and not self._status(folder, "MESSAGES"):
                continue
            self.select(folder)
            typ, data = self.conn.uid("SEARCH", "HEADER", MARKER, '""')
            uids = imap.uids_of(imap.check(typ, data, "UID SEARCH"))
            if not uids:
                continue
            self.res.leftovers += len(uids)
            old = [uid for uid, sent in self._sent_times(uids).items()
                   if sent is not None and sent < cutoff]
            imap.delete_uids(self.conn, old)
            self.res.swept += len(old)

    def _sent_times(self, uids: list[bytes]) -> dict[bytes, float | None]:
        typ, data = self.conn.uid("FETCH", b",".join(uids).decode(),
                                  f"(UID BODY.PEEK[HEADER.FIELDS ({SENT})])")
        out: dict[bytes, float | None] = {}
        for part in imap.check(typ, data, "UID FETCH"):
            if not isinstance(part, tuple):
                continue
            head, body = part[0], part[1]
            _, _, after = head.upper().partition(b"UID ")
            uid = after.split()[0] if after else b""
            value: float | None = None
            for line in body.decode(errors="replace").splitlines():
                name, _, v = line.partition(":")
                if name.strip().lower() == SENT.lower():
                    with contextlib.suppress(ValueError):
                        value = float(v.strip())
            if uid.isdigit():
                out[uid] = value
        return out
