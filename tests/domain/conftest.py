"""A domain on real sandboxes: config folder, master users, mail in and out over imaplib."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import Result, run_cli, write_config
from tests.fixtures.mailstack import MailStack, unique_domain, write_dms
from tests.sync.helpers import dump, fill, message

MASTER, MASTER_PW = "admin", "master-secret-Pw-4711"


@dataclass
class Site:
    """A config folder whose providers are sandboxes' dms folders."""

    path: Path
    domain: str
    stacks: dict[str, MailStack] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None
            ) -> Result:
        return run_cli(*args, cwd=self.path, env={**self.env, **(env or {})}, timeout=timeout)

    def passwords(self, name: str = "secrets.tsv") -> dict[str, str]:
        out: dict[str, str] = {}
        p = self.path / name
        if p.exists():
            for line in p.read_text().splitlines():
                if line:
                    a, pw = line.split("\t", 1)
                    out[a] = pw  # the last wins, as apply appends
        return out


def enable_master(stack: MailStack, name: str = MASTER, password: str = MASTER_PW) -> None:
    """`setup dovecot-master add`: docker-mailserver's dovecot-masters.cf, then reload."""
    write_dms(stack.dms_dir, masters={name: password})
    stack.sandbox.reload()


def provider_block(name: str, stack: MailStack) -> str:
    return f"  {name}: {{type: dms, path: {stack.dms_dir}}}\n"


def access_block(name: str, stack: MailStack, auth: str = "master",
                 extra: str = "") -> str:
    head = f"  {name}:\n    imap: imap://{stack.info.host}:{stack.info.ports.imap}\n"
    if auth == "master":
        return head + ("    auth: master\n    master: {user: admin, password: "
                       "\"${file:master.pw}\"}\n" + extra)
    return head + f"    auth: {auth}\n" + extra


def make_site(tmp_path: Path, stacks: dict[str, MailStack], domain_yaml: str,
              access: dict[str, str] | None = None, domain: str | None = None) -> Site:
    domain = domain or unique_domain("dom")
    (tmp_path / "master.pw").write_text(MASTER_PW + "\n")
    text = "providers:\n" + "".join(provider_block(n, s) for n, s in stacks.items())
    if access is None:
        access = {n: access_block(n, s) for n, s in stacks.items()}
    if access:
        text += "mail_access:\n" + "".join(access.values())
    text += f"domains:\n  {domain}:\n" + domain_yaml
    write_config(tmp_path, text)
    return Site(tmp_path, domain, dict(stacks))


def mail_plan(rng: random.Random, n: int, start: int = 0
              ) -> dict[str, list[tuple[bytes, str, int]]]:
    """n messages over INBOX, Archive, Sent and Lists/dev with mixed flags and dates."""
    plan: dict[str, list[tuple[bytes, str, int]]] = {}
    folders = ["INBOX", "INBOX", "Archive", "Sent", "Lists.dev"]
    for i in range(start, start + n):
        f = rng.choice(folders)
        flags = rng.choice(["()", "(\\Seen)", "(\\Seen \\Flagged)", "(\\Answered \\Seen)",
                            "($label1 \\Seen)"])
        plan.setdefault(f, []).append((message(i, big=rng.random() < 0.03, rng=rng), flags,
                                       1_600_000_000 + i * 977))
    return plan


def fill_user(stack: MailStack, user: str, pw: str, n: int, seed: int = 1,
              start: int = 0) -> None:
    fill(stack.info, user, pw, mail_plan(random.Random(seed), n, start))


def content(stack: MailStack, user: str, pw: str) -> dict[str, list[tuple[bytes, str, int]]]:
    """What a user sees: per folder, sorted (body, flags, instant), empty folders left out."""
    from tests.sync.helpers import epochs

    return {k: v for k, v in epochs(dump(stack.info, user, pw)).items() if v}


def master_login(user: str) -> str:
    return f"{user}*{MASTER}"


def wait_until(pred: Any, timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return bool(pred())


@pytest.fixture
def two_stacks(mailstack_factory: Any) -> tuple[MailStack, MailStack]:
    old, new = mailstack_factory(), mailstack_factory()
    enable_master(old)
    enable_master(new)
    return old, new
