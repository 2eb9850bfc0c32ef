"""Filling and reading real mailboxes over plain imaplib (independent of the code under test)."""

from __future__ import annotations

import imaplib
import random
import stat
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

from mailctl.sandbox import SandboxInfo
from tests.fixtures.mailstack import MailStack, unique_domain

ROOT = Path(__file__).resolve().parents[2]


def account(stack: MailStack, name: str = "u") -> tuple[str, str]:
    addr, pw = f"{name}@{unique_domain()}", f"pw-{name}-secret-123"
    stack.set(accounts={addr: pw})
    return addr, pw


def url(info: SandboxInfo, user: str) -> str:
    return f"imap://{user}@{info.host}:{info.ports.imap}"


def connect(info: SandboxInfo, user: str, pw: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4(info.host, info.ports.imap, timeout=30)
    c.login(user, pw)
    return c


def message(i: int, big: bool = False, rng: random.Random | None = None) -> bytes:
    """Realistic enough: headers, text, some multipart with an attachment, odd bytes."""
    rng = rng or random.Random(i)
    msg = EmailMessage()
    msg["From"], msg["To"] = f"sender{i}@example.test", "rcpt@example.test"
    msg["Subject"] = f"message {i} {rng.random():.6f}"
    msg["Message-ID"] = f"<m{i}.{rng.getrandbits(40)}@example.test>"
    msg.set_content("line\n" * rng.randint(5, 40) + f"body {i}\n")
    if big:
        msg.add_attachment(rng.randbytes(30_000), maintype="application", subtype="octet-stream",
                           filename=f"f{i}.bin")
    return msg.as_bytes()


def fill(info: SandboxInfo, user: str, pw: str, plan: dict[str, list[tuple[bytes, str, int]]]
         ) -> None:
    """plan: folder (IMAP name, "." separator) -> [(body, "(flags)", epoch date)].

    imaplib for the session, but the messages go as MULTIAPPEND (RFC 3502) of up to 100
    with LITERAL+ written by hand: Dovecot commits (and fsyncs) once per command, so one
    APPEND per message made filling a soak's mailbox take ~17 s for 500 messages."""
    c = connect(info, user, pw)
    try:
        for folder, msgs in plan.items():
            if folder != "INBOX":
                c.create(folder)
            for i in range(0, len(msgs), 100):
                _multiappend(c, folder, msgs[i:i + 100])
    finally:
        c.logout()


def _multiappend(c: imaplib.IMAP4, folder: str, msgs: list[tuple[bytes, str, int]]) -> None:
    if not msgs:
        return
    tag = c._new_tag()  # imaplib's own tag sequence
    out = [tag + b' APPEND "' + folder.encode() + b'"']
    for body, flags, date in msgs:
        out.append(b" " + flags.encode() + b" " + imaplib.Time2Internaldate(date).encode()
                   + b" {%d+}\r\n" % len(body) + body)
    c.send(b"".join(out) + b"\r\n")
    while True:
        line = c.readline()
        if line.startswith(tag + b" "):
            assert line.split()[1] == b"OK", line
            return


def dump(info: SandboxInfo, user: str, pw: str) -> dict[str, list[tuple[bytes, str, str]]]:
    """Every folder's messages as sorted (body, flags, INTERNALDATE) - what a user sees."""
    c = connect(info, user, pw)
    out: dict[str, list[tuple[bytes, str, str]]] = {}
    try:
        _, lines = c.list()
        for raw in lines:
            assert isinstance(raw, bytes)
            name = raw.rsplit(b' "." ', 1)[1].strip(b'"').decode()
            if b"\\Noselect" in raw or b"\\NonExistent" in raw:
                continue
            c.select(f'"{name}"', readonly=True)
            _, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            msgs = []
            for part in data:
                if isinstance(part, tuple):
                    meta = part[0].decode()
                    flags = meta.split("FLAGS (", 1)[1].split(")", 1)[0]
                    flags = " ".join(sorted(f for f in flags.split() if f != "\\Recent"))
                    date = meta.split('INTERNALDATE "', 1)[1].split('"', 1)[0]
                    msgs.append((bytes(part[1]), flags, date))
            out[name] = sorted(msgs)
    finally:
        c.logout()
    return out


def epochs(d: dict[str, list[tuple[bytes, str, str]]]) -> dict[str, list[tuple[bytes, str, int]]]:
    """Dates as instants (a Maildir keeps the instant, not the sender's zone)."""
    import calendar
    import time

    def ep(s: str) -> int:
        t = time.strptime(s[:20], "%d-%b-%Y %H:%M:%S")
        off = (int(s[22:24]) * 3600 + int(s[24:26]) * 60) * (-1 if s[21] == "-" else 1)
        return calendar.timegm(t) - off

    return {k: sorted((b, f, ep(dt)) for b, f, dt in v) for k, v in d.items()}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The lean entry in a subprocess, as a user or cron would run it."""
    import os

    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mailctl.sync", *args], capture_output=True,
                          text=True, env=e, cwd=ROOT, timeout=120)


def pwfile(tmp: Path, pw: str, name: str = "pw") -> str:
    p = tmp / name
    p.write_text(pw + "\n")
    p.chmod(0o600)
    return str(p)


def modes(top: Path) -> dict[str, int]:
    """Mode of `top` and of everything below it, by path relative to `top`."""
    out = {".": stat.S_IMODE(top.stat().st_mode)}
    for p in top.rglob("*"):
        out[str(p.relative_to(top))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def assert_private(top: Path) -> None:
    """Directories 0700, files 0600: everything below `top` was created by mailctl."""
    wrong = {p: oct(m) for p, m in modes(top).items()
             if m != (0o700 if (top / p).is_dir() else 0o600)}
    assert not wrong, wrong
