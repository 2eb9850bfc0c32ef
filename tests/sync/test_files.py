"""What the sync commands leave on disk: modes of everything they create, nothing at all
for a dry run, no password anywhere. Real Dovecot, real `mailctl` in a subprocess, run
with umask 000 so that the modes are mailctl's own and not the umask's."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import ROOT, account, assert_private, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
T0 = 1_650_000_000


def mailctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    return subprocess.run([sys.executable, "-m", "mailctl", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**e, **(env or {})}, umask=0, timeout=120)


def _account(stack: MailStack, name: str) -> tuple[str, str]:
    a, pa = account(stack, name)
    fill(stack.info, a, pa, {"INBOX": [(message(10 + i), "(\\Seen $Work)", T0) for i in range(3)],
                             "Archive.2020": [(message(20), "($Old)", T0)]})
    return a, pa


def test_backup_restore_and_fetch_create_private_files_only(
        mailstack: MailStack, tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = _account(mailstack, "perm")
    b, pb = account(mailstack, "permdst")
    p1, p2 = pwfile(tmp_path, pa), pwfile(tmp_path, pb, "pb")
    bk, xdg = tmp_path / "bk", tmp_path / "xdg"
    r = mailctl("backup", url(info, a), str(bk), "--password-file", p1)
    assert r.returncode == 0, r.stderr
    assert {".mailctl-sync.db", ".mailctl-sync.db.lock", "dovecot-keywords", ".Archive.2020",
            "cur", "new", "tmp"} <= {p.name for p in bk.iterdir()}
    assert_private(bk)  # the DIR itself, folders, messages, keywords, state, lock
    r = mailctl("restore", str(bk), url(info, b), "--password-file", p2,
                env={"XDG_STATE_HOME": str(xdg)})
    assert r.returncode == 0, r.stderr
    assert_private(xdg)  # mailctl/, mailctl/sync/, the state DB and its lock
    assert list((xdg / "mailctl" / "sync").glob("*.db"))
    home, ph = account(mailstack, "permhome")
    cfg = tmp_path / "fetch.yaml"
    cfg.write_text(yaml.safe_dump({
        "deliver": {"lmtp": str(info.lmtp_socket)}, "state": "state/fetch.db",
        "accounts": [{"src": url(info, a), "password_file": p1, "to": home}]}))
    r = mailctl("fetch", "-f", str(cfg), "--once", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accounts"][0]["delivered"] == 3
    assert_private(tmp_path / "state")
    for text in (r.stdout, r.stderr):
        assert pa not in text and pb not in text and ph not in text


def test_state_db_of_an_older_version_is_tightened(mailstack: MailStack,
                                                    tmp_path: Path) -> None:
    """A state file created 0644 by an earlier mailctl becomes 0600 on the next run, and
    so do the -wal and -shm SQLite makes beside it."""
    info = mailstack.info
    a, pa = _account(mailstack, "older")
    bk = tmp_path / "bk"
    bk.mkdir(mode=0o755)
    (bk / ".mailctl-sync.db").touch(mode=0o644)
    os.chmod(bk / ".mailctl-sync.db", 0o644)
    r = mailctl("backup", url(info, a), str(bk), "--password-file", pwfile(tmp_path, pa))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((bk / ".mailctl-sync.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(bk.stat().st_mode) == 0o755  # the user's own directory: left alone


def test_dry_runs_create_nothing(mailstack: MailStack, tmp_path: Path) -> None:
    info = mailstack.info
    a, pa = _account(mailstack, "dry")
    b, pb = account(mailstack, "drydst")
    p1, p2 = pwfile(tmp_path, pa), pwfile(tmp_path, pb, "pb")
    before = sorted(tmp_path.rglob("*"))
    r = mailctl("sync", url(info, a), url(info, b), "--password1-file", p1,
                "--password2-file", p2, "--state", str(tmp_path / "X"), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["copied"] == 4
    r = mailctl("backup", url(info, a), str(tmp_path / "bk"), "--password-file", p1,
                "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["copied"] == 4
    assert sorted(tmp_path.rglob("*")) == before  # no state DB, lock, directory
    # with a state from a real run, a dry run reads it (nothing left to copy) and
    # leaves it byte for byte as it was
    assert mailctl("backup", url(info, a), str(tmp_path / "bk"), "--password-file",
                   p1).returncode == 0
    db = tmp_path / "bk" / ".mailctl-sync.db"
    snap = {p: p.read_bytes() for p in sorted((tmp_path / "bk").rglob("*")) if p.is_file()}
    r = mailctl("backup", url(info, a), str(tmp_path / "bk"), "--password-file", p1,
                "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["totals"]["copied"] == 0, r.stderr
    assert {p: p.read_bytes() for p in sorted((tmp_path / "bk").rglob("*"))
            if p.is_file()} == snap
    assert db.exists()


def test_a_second_run_on_the_same_state_is_refused(mailstack: MailStack,
                                                   tmp_path: Path) -> None:
    import fcntl

    info = mailstack.info
    a, pa = _account(mailstack, "locked")
    bk = tmp_path / "bk"
    bk.mkdir(mode=0o700)
    fd = os.open(bk / ".mailctl-sync.db.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running backup holds it
        r = mailctl("backup", url(info, a), str(bk), "--password-file", pwfile(tmp_path, pa))
        assert r.returncode == 1 and "another sync with the same state is running" in r.stderr
        assert not (bk / "cur").exists()  # nothing copied beside the running one
    finally:
        os.close(fd)
