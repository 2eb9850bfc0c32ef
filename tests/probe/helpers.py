"""Probe routes against the shared sandbox (tests/fixtures/mailstack.py)."""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mailctl.probe.resolve import Route, plan
from mailctl.probe.settings import ProbeSettings
from mailctl.sandbox import SandboxInfo
from tests.fixtures.mailstack import MailStack, unique_domain


def route_dict(info: SandboxInfo, user: str, env: str, *, submission: bool = True,
               imaps: bool = True, **extra: Any) -> dict[str, Any]:
    """A route: submission STARTTLS+AUTH (or port-25 SMTP) -> IMAPS (or IMAP STARTTLS)."""
    ref = f"${{env:{env}}}"
    smtp: dict[str, Any] = (
        {"host": info.host, "port": info.ports.submission, "tls": "starttls",
         "username": user, "password": ref, "ca_file": str(info.ca_file)}
        if submission else {"host": info.host, "port": info.ports.smtp, "tls": "none"})
    imap: dict[str, Any] = {"host": info.host, "username": user, "password": ref,
                            "ca_file": str(info.ca_file),
                            "port": info.ports.imaps if imaps else info.ports.imap,
                            "tls": "tls" if imaps else "starttls"}
    smtp.update(extra.pop("smtp", {}))
    imap.update(extra.pop("imap", {}))
    return {"sender": user if submission else "probe-sender@outside.test", "recipient": user,
            "smtp": smtp, "imap": imap, "timeout": 10, **extra}


def make_route(info: SandboxInfo, user: str, env: str, name: str = "r", **kw: Any) -> Route:
    settings = ProbeSettings.model_validate({"routes": {name: route_dict(info, user, env, **kw)}})
    return plan(settings, Path("/")).routes[0]


def new_account(stack: MailStack, password: str = "probe-secret-pw-1") -> tuple[str, str]:
    user = f"probe@{unique_domain('probe')}"
    stack.set(accounts={user: password})
    return user, password


@contextlib.contextmanager
def imap_session(info: SandboxInfo, user: str, password: str,
                 mailbox: str = "INBOX") -> Iterator[imaplib.IMAP4]:
    conn = imaplib.IMAP4(info.host, info.ports.imap, timeout=10)
    try:
        conn.login(user, password)
        conn.select(mailbox)
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


def mailbox_state(info: SandboxInfo, user: str, password: str,
                  mailbox: str = "INBOX") -> dict[str, set[str]]:
    """Message-ID -> flags of every message in the mailbox (expunged ones are gone)."""
    with imap_session(info, user, password, mailbox) as conn:
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK", data
        out: dict[str, set[str]] = {}
        for part in data:
            if isinstance(part, tuple):
                head, body = part[0].decode(), part[1].decode()
                flags = head.split("FLAGS (", 1)[1].split(")", 1)[0].split()
                mid = body.split(":", 1)[1].strip() if ":" in body else ""
                out[mid] = {f for f in flags if f != "\\Recent"}
        return out
