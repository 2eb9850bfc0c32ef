"""A generator of Google-Takeout-shaped mbox files, written by hand (never Python's
mailbox writer, which quotes mboxo-style and loses `>From ` lines: domain-ops notes).

What it produces, as Takeout does (and the awkward cases it may not always show):
From_ lines `From <gmail id>@xxx <asctime date with +0000>`, `X-GM-THRID` and
`X-Gmail-Labels` headers, mboxrd quoting of body lines `From ...` (-> `>From`) and
`>From ...` (-> `>>From`), a blank line after every message, CRLF or LF line ends,
folded label headers, labels with commas (quoted), RFC 2047-encoded non-ASCII labels,
nested labels, system labels (Inbox, Sent, Drafts, Spam, Trash, Starred, Important,
Unread, Opened, Archived, Chat, Category ...).

`Mail.expected` says where each message must land (`labels=folders`) and with which
flags, computed from the label list by rules written here independently of the code
under test.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.header import Header
from pathlib import Path

SYSTEM = {"Inbox", "Sent", "Drafts", "Spam", "Trash", "Starred", "Important", "Unread",
          "Opened", "Archived", "Chat"}
USER_LABELS = ["Work", "Work/Project X", "Family", "Reçus & factures", "Привет",
               "Receipts, 2024", "Travel/日本"]


@dataclass
class Mail:
    gid: int
    labels: list[str]
    body: bytes  # the message as a user sees it, LF line ends
    date: float
    expected_folders: list[str] = field(default_factory=list)
    expected_flags: str = ""


def _expect(labels: list[str]) -> tuple[list[str], str]:
    low = {x.lower() for x in labels}
    flags = []
    if "unread" not in low:
        flags.append("\\Seen")
    if "starred" in low:
        flags.append("\\Flagged")
    if "important" in low:
        flags.append("$Important")
    if "drafts" in low:
        flags.append("\\Draft")
    if "chat" in low:
        return [], ""
    if "trash" in low:
        folders = ["Trash"]
    elif "spam" in low:
        folders = ["Junk"]
    else:
        folders = []
        if "drafts" in low:
            folders.append("Drafts")
        if "sent" in low:
            folders.append("Sent")
        if "inbox" in low:
            folders.append("INBOX")
        folders += [x for x in labels if x not in SYSTEM and not x.startswith("Category ")]
        if not folders:
            folders = ["Archive"]
    return folders, " ".join(sorted(flags))


def make_mails(n: int, seed: int = 1) -> list[Mail]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        labels: list[str] = []
        r = rng.random()
        if r < 0.05:
            labels = ["Chat"]
        elif r < 0.10:
            labels = ["Trash", rng.choice(USER_LABELS)]
        elif r < 0.14:
            labels = ["Spam", "Inbox"]
        elif r < 0.20:
            labels = ["Archived"]
        elif r < 0.25:
            labels = ["Drafts"]
        else:
            if rng.random() < 0.6:
                labels.append("Inbox")
            if rng.random() < 0.2:
                labels.append("Sent")
            labels += rng.sample(USER_LABELS, rng.randint(0, 3))
            if rng.random() < 0.3:
                labels.append("Category Updates")
        for sys_label, p in (("Unread", 0.3), ("Starred", 0.1), ("Important", 0.2),
                             ("Opened", 0.5)):
            if rng.random() < p:
                labels.append(sys_label)
        rng.shuffle(labels)
        date = 1_700_000_000 + i * 3600 + rng.randint(0, 3599)
        body_lines = [f"Line {j} of message {i}" for j in range(rng.randint(2, 8))]
        if i % 7 == 0:
            body_lines.insert(1, "From here on the body starts with From")
        if i % 11 == 0:
            body_lines.insert(1, ">From an already quoted line")
            body_lines.insert(2, ">>From twice")
        if i % 13 == 0:
            body_lines.append("")  # a body ending in an empty line
        headers = [
            f"From: Sender {i} <sender{i}@example.test>",
            "To: alice@example.test",
            f"Subject: Takeout message {i}",
            f"Message-ID: <takeout-{i}@example.test>",
            time.strftime("Date: %a, %d %b %Y %H:%M:%S +0000", time.gmtime(date)),
        ]
        body = ("\n".join(headers) + "\n\n" + "\n".join(body_lines) + "\n").encode()
        m = Mail(1_780_000_000_000_000_000 + i * 7919, labels, body, date)
        m.expected_folders, m.expected_flags = _expect(labels)
        out.append(m)
    return out


def _label_header(labels: list[str], fold: bool) -> bytes:
    parts = []
    for x in labels:
        text = f'"{x}"' if "," in x else x
        if not text.isascii():
            text = Header(text, "utf-8").encode()  # =?utf-8?b?...?=
        parts.append(text)
    value = ",".join(parts)
    if fold and len(parts) > 1:  # fold after commas, as long headers are
        value = ",\n ".join(parts)
    return f"X-Gmail-Labels: {value}\n".encode()


def write_mbox(path: Path, mails: list[Mail], *, crlf: bool = False, fold: bool = True) -> None:
    out = bytearray()
    for m in mails:
        stamp = time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(m.date))
        head, _, rest = m.body.partition(b"\n\n")
        quoted = []
        for line in rest.split(b"\n"):
            stripped = line.lstrip(b">")
            if stripped.startswith(b"From "):
                line = b">" + line  # mboxrd: one more '>' on every (>*)From line
            quoted.append(line)
        msg = (f"X-GM-THRID: {m.gid // 3}\n".encode() + _label_header(m.labels, fold)
               + head + b"\n\n" + b"\n".join(quoted))
        block = f"From {m.gid}@xxx {stamp}\n".encode() + msg + b"\n"
        out += block.replace(b"\n", b"\r\n") if crlf else block
    path.write_bytes(bytes(out))


def stored_body(m: Mail, fold: bool = True) -> bytes:
    """What must arrive at the server: the message as exported (Takeout's two headers in
    front, the label header folded as written), mboxrd quoting undone, CRLF line ends."""
    labels = _label_header(m.labels, fold)
    return (f"X-GM-THRID: {m.gid // 3}\n".encode() + labels + m.body).replace(b"\n", b"\r\n")
