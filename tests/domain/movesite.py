"""A domain on one sandbox with its zone on the local Knot, ready to move to another."""

from __future__ import annotations

import imaplib
import random
import time
from collections import Counter
from pathlib import Path

from tests.domain.conftest import (
    MASTER_PW,
    Site,
    access_block,
    fill_user,
    master_login,
    provider_block,
)
from tests.fixtures.cli import write_config
from tests.fixtures.dnsserver import DnsLab
from tests.fixtures.mailstack import MailStack, lmtp_deliver, make_message, unique_domain
from tests.sync.helpers import connect, dump

USERS = ("alice", "bob", "carol", "dave")
DOMAIN_YAML = """    provider: old
    dns: {{host: knot, mx_hosts: [mx.old.{d}]}}
    mailboxes:
      - local_part: alice
        aliases: [info, sales]
      - local_part: bob
      - local_part: carol
      - local_part: dave
    aliases:
      - local_part: team
        destinations: [alice, bob]
"""


def make_move_site(tmp: Path, old: MailStack, new: MailStack, lab: DnsLab,
                   per_user: int = 100) -> Site:
    """Config (providers old/new, master access to both, the zone at Knot), the domain
    applied at `old` with mail, its records published; returns the Site."""
    domain = unique_domain("mv")
    (tmp / "master.pw").write_text(MASTER_PW + "\n")
    text = ("providers:\n" + provider_block("old", old) + provider_block("new", new)
            + "mail_access:\n" + access_block("old", old) + access_block("new", new)
            + "dns:\n  hosts:\n    knot:\n      class: octodns_bind.Rfc2136Provider\n"
            f"      host: 127.0.0.1\n      port: {lab.auth_port}\n      timeout: 2\n"
            f"      key_name: {lab.tsig_name}\n      key_secret: \"${{env:TSIG_SECRET}}\"\n"
            "      key_algorithm: hmac-sha256\n"
            f"domains:\n  {domain}:\n" + DOMAIN_YAML.format(d=domain))
    write_config(tmp, text)
    site = Site(tmp, domain, {"old": old, "new": new}, env={"TSIG_SECRET": lab.tsig_secret})
    lab.publish(domain, 'www A 192.0.2.80\n@ TXT "site-verification=keep-me"', updatable=True)
    r = site.run("apply", "--secrets-out", "secrets.tsv")
    assert r.code == 0, r.all
    r = site.run("dns", "apply", "--resolver", lab.resolver, "--ns-port", str(lab.auth_port),
                 "--wait", "10")
    assert r.code == 0, r.all
    for n, user in enumerate(USERS):
        fill_user(old, master_login(f"{user}@{domain}"), MASTER_PW, per_user, seed=n + 1)
    return site


def deliver(stack: MailStack, address: str, tag: str) -> bytes:
    """One message through LMTP (what Postfix does for mail from outside); its body."""
    msg = make_message(tag, subject=f"delivered {tag}")
    lmtp_deliver(stack.info, [address], msg)
    return msg if isinstance(msg, bytes) else msg.encode()


def contents(stack: MailStack, address: str) -> dict[str, Counter[bytes]]:
    """folder -> how often each message body is there (what a user would count)."""
    return {f: Counter(body for body, _, _ in msgs)
            for f, msgs in dump(stack.info, master_login(address), MASTER_PW).items() if msgs}


def body_count(stack: MailStack, address: str, marker: str) -> int:
    c = connect(stack.info, master_login(address), MASTER_PW)
    try:
        total = 0
        for folder in ("INBOX",):
            c.select(folder, readonly=True)
            _, data = c.search(None, "SUBJECT", f'"{marker}"')
            total += len(data[0].split()) if data and data[0] else 0
        return total
    finally:
        c.logout()


def wait_delivered(stack: MailStack, address: str, marker: str, n: int = 1,
                   timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while body_count(stack, address, marker) < n:
        assert time.monotonic() < deadline, f"{marker} not delivered to {address}"
        time.sleep(0.1)


def user_session(stack: MailStack, address: str) -> imaplib.IMAP4:
    return connect(stack.info, master_login(address), MASTER_PW)


def random_tag(rng: random.Random, what: str) -> str:
    return f"{what}-{rng.getrandbits(48):012x}"
