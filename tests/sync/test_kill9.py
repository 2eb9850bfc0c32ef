"""kill -9 at random moments, re-run, and the copy is complete with no duplicates.

Every soak runs the real `mailctl` command in a subprocess, SIGKILLs it again and
again, then lets one run finish and proves the result with `mailctl verify` (exact:
nothing missing, nothing extra, flags and dates equal). Afterwards every byte the
runs printed and every state file they left is scanned for the passwords.

Where the kills land matters more than how many there are. A kill right after the
target committed a batch leaves the next pipelined MULTIAPPEND in the server's hands;
the server may commit it after the client died, while the next run is already
looking at the target. That is the window in which restore used to duplicate mail
(issue 10), so the soaks kill on progress at the target as well as on a timer.
"""

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
from tests.sync.helpers import (
    ROOT,
    account,
    assert_private,
    cli,
    connect,
    fill,
    message,
    pwfile,
    url,
)

pytestmark = pytest.mark.mailstack
N = 300
# restore/migrate soaks: four folders, each more than one default batch (~2 MB)
FOLDERS = {"INBOX": 260, "Archive": 150, "Sent": 70, "Lists.python": 20}


class Soak:
    """Runs one command again and again, killing it; keeps what it printed."""

    def __init__(self, argv: list[str], copied: Callable[[], int], seed: int,
                 env: dict[str, str] | None = None) -> None:
        self.argv = [sys.executable, "-m", "mailctl", *argv]
        self.copied = copied
        self.rng = random.Random(seed)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")},
                    **(env or {})}
        self.output: list[str] = []
        self.landed = 0  # kills that hit a run before it finished

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def _reap(self, p: subprocess.Popen[bytes]) -> None:
        out, err = p.communicate()
        self.output.append((out + err).decode("utf-8", "replace"))

    def kill_on_progress(self, rounds: int, most: int) -> None:
        """SIGKILL once 1..`most` further messages reached the target: by then the
        uploader has usually sent the next batch, which the server may still commit."""
        for _ in range(rounds):
            target = self.copied() + self.rng.randint(1, most)
            p = self.start()
            deadline = time.monotonic() + 60
            while p.poll() is None and time.monotonic() < deadline:
                if self.copied() >= target:
                    p.send_signal(signal.SIGKILL)
                    self.landed += 1
                    break
                time.sleep(0.002)
            self._reap(p)

    def kill_on_timer(self, rounds: int, lo: float = 0.05, hi: float = 1.5) -> None:
        """SIGKILL at a random moment, as the report did (start-up, login, listing...)."""
        for _ in range(rounds):
            p = self.start()
            try:
                p.wait(self.rng.uniform(lo, hi))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                self.landed += 1
            self._reap(p)

    def finish(self) -> str:
        r = subprocess.run(self.argv, cwd=ROOT, env=self.env, capture_output=True, text=True,
                           timeout=300)
        self.output.append(r.stdout + r.stderr)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout


def assert_no_leak(secrets: list[str], texts: list[str], *trees: Path) -> None:
    """No password in anything printed, nor in any file below `trees` that is not mail
    (state DBs with their -wal/-shm, keyword lists, lock files)."""
    blobs = list(texts)
    for tree in trees:
        for p in tree.rglob("*") if tree.is_dir() else [tree]:
            if p.is_file() and "/cur/" not in str(p) and "/new/" not in str(p):
                blobs.append(p.read_bytes().decode("latin-1"))
    for s in secrets:
        assert not any(s in b for b in blobs), "a password leaked"


def assert_exact(v: subprocess.CompletedProcess[str], expect: dict[str, int]) -> None:
    assert v.returncode == 0, v.stdout + v.stderr
    rep = json.loads(v.stdout)
    got = {f["src"]: (f["src_count"], f["dst_count"], f["missing"], f["extra"],
                      f["flag_mismatch"]) for f in rep["folders"] if f["src_count"]}
    assert got == {k.replace(".", "/"): (n, n, 0, 0, 0) for k, n in expect.items()}


def _fill_big(stack: MailStack, name: str, plan: dict[str, int]) -> tuple[str, str]:
    a, pa = account(stack, name)
    rng = random.Random(name)
    n = 0
    box: dict[str, list[tuple[bytes, str, int]]] = {}
    for folder, count in plan.items():
        box[folder] = [(message(n + i, big=(n + i) % 25 == 0, rng=rng),
                        ("(\\Seen)", "()", "(\\Flagged $Work)")[(n + i) % 3],
                        1_600_000_000 + n + i) for i in range(count)]
        n += count
    fill(stack.info, a, pa, box)
    return a, pa


def _counter(stack: MailStack, user: str, pw: str, folders: list[str]) -> Callable[[], int]:
    watch = connect(stack.info, user, pw)

    def copied() -> int:
        n = 0
        for folder in folders:
            typ, data = watch.status(folder, "(MESSAGES)")
            if typ == "OK" and isinstance(data[0], bytes):
                n += int(data[0].rsplit(b"MESSAGES ", 1)[1].rstrip(b")"))
        return n

    return copied


def _source(stack: MailStack) -> tuple[str, str]:
    a, pa = account(stack, "big")
    rng = random.Random(1)
    fill(stack.info, a, pa, {
        "INBOX": [(message(i, big=i % 25 == 0), "(\\Seen)" if i % 3 else "()", 1_600_000_000 + i)
                  for i in range(N - 60)],
        "Archive": [(message(5000 + i, rng=rng), "($Old)", 1_500_000_000) for i in range(60)],
    })
    return a, pa


def test_kill9_during_backup_then_complete_without_duplicates(mailstack: MailStack,
                                                              tmp_path: Path) -> None:
    a, pa = _source(mailstack)
    pw, bk = pwfile(tmp_path, pa), tmp_path / "bk"

    def copied() -> int:
        return sum(len(os.listdir(d)) for d in (bk / "cur", bk / ".Archive" / "cur")
                   if d.is_dir())

    soak = Soak(["backup", url(mailstack.info, a), str(bk), "--password-file", pw], copied,
                seed=4711, env={"MAILCTL_SYNC_BATCH": "7"})  # many commit points
    soak.kill_on_progress(6, 60)
    assert soak.landed >= 3  # the kills did interrupt runs
    soak.finish()
    v = cli("verify", url(mailstack.info, a), f"maildir:{bk}", "--password1-file", pw, "--json")
    assert_exact(v, {"INBOX": N - 60, "Archive": 60})
    assert len(list((bk / "cur").iterdir())) == N - 60
    assert_no_leak([pa], soak.output, bk)


def test_kill9_during_sync_to_a_remote_server(mailstack: MailStack,
                                              mailstack_factory: Callable[..., MailStack],
                                              tmp_path: Path) -> None:
    remote = mailstack_factory()
    a, pa = _fill_big(mailstack, "syncsrc", FOLDERS)
    b, pb = account(remote, "dest")
    p1, p2 = pwfile(tmp_path, pa), pwfile(tmp_path, pb, "pb")
    state = tmp_path / "state" / "s.db"
    state.parent.mkdir(mode=0o700)
    soak = Soak(["sync", url(mailstack.info, a), url(remote.info, b), "--password1-file", p1,
                 "--password2-file", p2, "--state", str(state)],
                _counter(remote, b, pb, list(FOLDERS)), seed=17)
    soak.kill_on_progress(6, 120)
    soak.kill_on_timer(4, 0.05, 0.6)
    assert soak.landed >= 3
    soak.finish()
    v = cli("verify", url(mailstack.info, a), url(remote.info, b), "--password1-file", p1,
            "--password2-file", p2, "--json")
    assert_exact(v, FOLDERS)
    assert_no_leak([pa, pb], soak.output, state.parent)
    assert_private(state.parent)  # the state DB, its lock, a killed run's -wal/-shm


def test_kill9_during_restore_then_complete_without_duplicates(
        mailstack: MailStack, tmp_path: Path) -> None:
    """The report: backup, then restore into an empty account with kills at random
    moments, then one run to completion; verify found 439 extra messages."""
    info = mailstack.info
    a, pa = _fill_big(mailstack, "rsrc", FOLDERS)
    b, pb = account(mailstack, "rdst")
    p1, p2, bk = pwfile(tmp_path, pa), pwfile(tmp_path, pb, "pb"), tmp_path / "bk"
    r = cli("backup", url(info, a), str(bk), "--password-file", p1)
    assert r.returncode == 0, r.stderr
    xdg = tmp_path / "xdg"  # restore keeps its state under $XDG_STATE_HOME
    soak = Soak(["restore", str(bk), url(info, b), "--password-file", p2],
                _counter(mailstack, b, pb, list(FOLDERS)), seed=10,
                env={"XDG_STATE_HOME": str(xdg)})
    soak.kill_on_progress(6, 120)
    soak.kill_on_timer(4, 0.05, 0.6)
    assert soak.landed >= 3
    out = soak.finish()
    v = cli("verify", f"maildir:{bk}", url(info, b), "--password2-file", p2, "--json")
    assert_exact(v, FOLDERS)
    v = cli("verify", url(info, a), url(info, b), "--password1-file", p1, "--password2-file", p2,
            "--json")
    assert_exact(v, FOLDERS)
    again = cli("restore", str(bk), url(info, b), "--password-file", p2, "--json",
                env={"XDG_STATE_HOME": str(xdg)})
    assert json.loads(again.stdout)["totals"]["copied"] == 0, out
    assert_no_leak([pa, pb], soak.output, bk, xdg)
    assert_private(xdg)


def _children_of_the_pairs(marker: str) -> list[int]:
    """Live processes whose command line names `marker` (a pair's state directory)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd and int(d.name) != os.getpid():
                out.append(int(d.name))
    return out


def test_kill9_during_migrate_then_complete_without_duplicates(
        mailstack: MailStack, mailstack_factory: Callable[..., MailStack],
        tmp_path: Path) -> None:
    """`mailctl migrate` SIGKILLed (the parent only, as `kill -9 PID` does): its pair
    processes die with it, and the re-runs complete every pair exactly."""
    remote = mailstack_factory()
    plans = [{"INBOX": 200, "Archive": 90, "Sent": 40}, {"INBOX": 120, "Lists.python": 60}]
    states = tmp_path / "states"
    states.mkdir(mode=0o700)
    rows = ["src,dst,password1_file,password2_file,state"]
    secrets: list[str] = []
    pairs: list[tuple[str, str, str, dict[str, int]]] = []
    for n, plan in enumerate(plans):
        a, pa = _fill_big(mailstack, f"mold{n}", plan)
        b, pb = account(remote, f"mnew{n}")
        rows.append(f"{url(mailstack.info, a)},{url(remote.info, b)},"
                    f"{pwfile(tmp_path, pa, f'a{n}')},{pwfile(tmp_path, pb, f'b{n}')},"
                    f"{states / f'{n}.db'}")
        secrets += [pa, pb]
        pairs.append((a, b, pb, plan))
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("\n".join(rows) + "\n")
    counters = [_counter(remote, b, pb, list(plan)) for _, b, pb, plan in pairs]
    soak = Soak(["migrate", "--accounts", str(accounts), "--json"],
                lambda: sum(c() for c in counters), seed=23)
    rounds = [("progress", 120)] * 5 + [("timer", 0.6)] * 3
    for how, arg in rounds:
        if how == "progress":
            soak.kill_on_progress(1, int(arg))
        else:
            soak.kill_on_timer(1, 0.1, arg)
        deadline = time.monotonic() + 0.5  # PR_SET_PDEATHSIG: no orphan keeps copying
        while _children_of_the_pairs(str(states)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _children_of_the_pairs(str(states))
    assert soak.landed >= 3
    out = json.loads(soak.finish())
    assert out["ok"] and [r["exit"] for r in out["accounts"]] == [0, 0]
    for n, (a, b, _, plan) in enumerate(pairs):
        v = cli("verify", url(mailstack.info, a), url(remote.info, b), "--password1-file",
                str(tmp_path / f"a{n}"), "--password2-file", str(tmp_path / f"b{n}"), "--json")
        assert_exact(v, plan)
    assert_no_leak(secrets, soak.output, states)
    assert_private(states)


def test_kill9_during_fetch_then_complete_delivers_each_message_once(
        mailstack: MailStack, mailstack_factory: Callable[..., MailStack],
        tmp_path: Path) -> None:
    """`mailctl fetch --once` with `check:` (the exactly-once mode) SIGKILLed while it
    delivers: in the end every remote message is in the local INBOX exactly once, as
    `verify --delivered` proves (it ignores the trace headers LMTP adds)."""
    import yaml

    remote = mailstack_factory()
    far, pf = _fill_big(remote, "fsrc", {"INBOX": 150})
    home, ph = account(mailstack, "fhome")
    p1, p2 = pwfile(tmp_path, pf, "pf"), pwfile(tmp_path, ph, "ph")
    cfg = tmp_path / "fetch.yaml"
    cfg.write_text(yaml.safe_dump({
        "deliver": {"lmtp": str(mailstack.info.lmtp_socket)}, "state": "st/fetch.db",
        "accounts": [{"src": url(remote.info, far), "password_file": p1, "to": home,
                      "check": url(mailstack.info, home), "check_password_file": p2}]}))
    soak = Soak(["fetch", "-f", str(cfg), "--once", "--json"],
                _counter(mailstack, home, ph, ["INBOX"]), seed=5)
    soak.kill_on_progress(6, 30)
    soak.kill_on_timer(4, 0.05, 0.8)
    assert soak.landed >= 3
    out = json.loads(soak.finish())["accounts"][0]
    assert out["errors"] == []  # (`redelivered`: sent again because it never arrived)
    v = cli("verify", url(remote.info, far), url(mailstack.info, home), "--password1-file", p1,
            "--password2-file", p2, "--folders", "INBOX", "--delivered", "--json")
    assert v.returncode == 0, v.stdout + v.stderr
    inbox = json.loads(v.stdout)["folders"][0]
    assert (inbox["src_count"], inbox["dst_count"], inbox["missing"], inbox["extra"]) == (
        150, 150, 0, 0)
    assert_no_leak([pf, ph], soak.output, tmp_path / "st")
    assert_private(tmp_path / "st")
