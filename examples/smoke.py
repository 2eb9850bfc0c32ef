"""After `make demo`'s apply: prove on the running sandbox that the example works.

Logs in to every mailbox with the password apply generated, sends one message
to every alias and forward over SMTP, and checks it landed in each destination
over IMAP. Prints a table; exits 1 if anything did not work.

    python examples/smoke.py -f examples/mailctl.yaml --secrets examples/.mailctl/secrets.tsv
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import smtplib
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from mailctl.config.load import load_config
from mailctl.sandbox import Sandbox, SandboxInfo, for_folder
from mailctl.sandbox.state import load_info


def _login(info: SandboxInfo, user: str, password: str) -> imaplib.IMAP4 | None:
    conn = imaplib.IMAP4(info.host, info.ports.imap, timeout=10)
    try:
        conn.login(user, password)
    except imaplib.IMAP4.error:
        conn.logout()
        return None
    return conn


def _arrived(conn: imaplib.IMAP4, marker: str, timeout: float = 10) -> bool:
    conn.select("INBOX")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        typ, data = conn.uid("SEARCH", "HEADER", "X-Mailctl-Demo", marker)
        if typ == "OK" and data and data[0]:
            return True
        time.sleep(0.05)
        conn.noop()
    return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-f", "--file", type=Path, default=Path("examples/mailctl.yaml"))
    ap.add_argument("--secrets", type=Path, required=True)
    args = ap.parse_args()

    config = load_config(args.file)
    passwords: dict[str, str] = {}
    for line in args.secrets.read_text().splitlines():
        addr, _, pw = line.partition("\t")
        passwords[addr] = pw
    dms = next(p for p in config.providers.values() if p.type_name == "dms")
    sandbox: Sandbox = for_folder(config.provider(dms.name).directory)  # type: ignore[attr-defined]
    info = load_info(sandbox.state_dir)
    if not sandbox.status().up or info is None:
        print("the sandbox is not running: mailctl sandbox up -f", args.file, file=sys.stderr)
        return 1

    rows: list[tuple[str, str, bool]] = []
    conns: dict[str, imaplib.IMAP4] = {}
    for state in config.desired.domains.values():
        for addr in state.mailboxes:
            conn = _login(info, addr, passwords.get(addr, ""))
            rows.append(("IMAP login", addr, conn is not None))
            if conn is not None:
                conns[addr] = conn

    def expand(addr: str, seen: frozenset[str] = frozenset()) -> set[str]:
        dom = config.desired.domains.get(addr.rpartition("@")[2])
        if dom is None or addr in seen:
            return set()
        if addr in dom.aliases:
            return set().union(*(expand(d, seen | {addr}) for d in dom.aliases[addr].destinations))
        out = {addr} if addr in dom.mailboxes else set()
        fw = dom.forwards.get(addr)
        if fw is not None:
            out = (out if fw.keep else set()) | {d for d in fw.destinations if d in conns}
        return out

    targets = [a for s in config.desired.domains.values()
               for a in (*s.aliases, *s.forwards) if not a.startswith("@")]
    if info.postfix:
        for rcpt in targets:
            marker = uuid.uuid4().hex
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "demo@example.test", rcpt, "mailctl demo"
            msg["X-Mailctl-Demo"] = marker
            msg.set_content("Delivered by the sandbox.\n")
            with smtplib.SMTP(info.host, info.ports.smtp, timeout=10) as s:
                s.send_message(msg)
            for dest in sorted(expand(rcpt)):
                rows.append((f"SMTP to {rcpt}", dest, _arrived(conns[dest], marker)))
    for conn in conns.values():
        with contextlib.suppress(Exception):
            conn.logout()

    from rich.console import Console
    from rich.table import Table

    table = Table(title="the example, checked on the live sandbox")
    for col in ("check", "mailbox", "result"):
        table.add_column(col)
    for check, who, ok in rows:
        table.add_row(check, who, "[green]ok[/]" if ok else "[red]FAILED[/]")
    Console().print(table)
    if not info.postfix:
        print("(Postfix is off: not root. Only IMAP logins were checked.)")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
