"""Secrets at rest and on the way out: the store's files, hashed-only token secrets,
`tokens rotate`, QR files, and where a generated password may appear."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from mailctl.accounts import db as dbmod
from mailctl.accounts.store import Store
from tests.accounts.conftest import NO_RATE_LIMIT, Server, Site, make_site, secret_of
from tests.accounts.test_sandbox import decode_qr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: mailctl must not rely on the user's umask for private files."""
    old = os.umask(0)
    yield
    os.umask(old)


def store_bytes(site: Site) -> bytes:
    return b"".join(p.read_bytes() for p in site.dir.glob("mailctl-accounts.db*"))


# -- the store's files -----------------------------------------------------------------


def test_store_and_its_wal_and_shm_are_0600(site: Site, open_umask: None,
                                            serve: Callable[..., Server]) -> None:
    os.chmod(site.dir, 0o755)
    site.json("tokens", "add", "t")
    db = site.dir / "mailctl-accounts.db"
    assert mode(db) == 0o600
    server = serve(site)  # holds the database open: its -wal and -shm exist meanwhile
    assert server.post("/?t=wrong")[0] == 403  # a write (the rate limiter) went through
    for suffix in ("-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        assert part.exists() and mode(part) == 0o600, suffix
    assert mode(site.dir) == 0o755  # the user's config folder is not ours to change


def test_a_folder_made_for_the_store_is_0700(tmp_path: Path, open_umask: None) -> None:
    site = make_site(tmp_path, tmp_path / "dms",
                     accounts_yaml="accounts:\n  database: sqlite:///state/sub/acc.db\n")
    site.json("tokens", "add", "t")
    assert mode(tmp_path / "state") == 0o700 and mode(tmp_path / "state" / "sub") == 0o700
    assert mode(tmp_path / "state" / "sub" / "acc.db") == 0o600


def test_an_old_world_readable_store_is_narrowed(site: Site) -> None:
    site.json("tokens", "add", "t")
    db = site.dir / "mailctl-accounts.db"
    journal = db.with_name(db.name + "-journal")
    journal.write_bytes(b"")
    for p in (db, journal):
        os.chmod(p, 0o644)  # what mailctl made before, with the usual umask
    r = site.cli("tokens", "list")
    assert r.code == 0 and "narrowed to 0600" in r.err
    assert mode(db) == 0o600 and mode(journal) == 0o600


def test_store_that_cannot_be_opened_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file where the store's folder should be")
    site = make_site(tmp_path, tmp_path / "dms", db_url=f"sqlite:///{tmp_path}/afile/acc.db")
    r = site.cli("tokens", "list")
    assert r.code == 1 and "cannot open the accounts store" in r.err
    assert "Traceback" not in r.all


# -- token secrets ---------------------------------------------------------------------


def test_hashed_by_default_the_store_holds_no_secret(site: Site) -> None:
    tok = site.json("tokens", "add", "party", "--maxuse", "5")
    secret = secret_of(tok)
    assert tok["secret_stored"] is False
    assert secret.encode() not in store_bytes(site)
    shown = site.cli("tokens", "show", "party", "--json")
    assert shown.code == 0 and "url" not in json.loads(shown.out) and secret not in shown.all
    qr = site.cli("tokens", "qr", "party")
    assert qr.code == 1 and "is not stored" in qr.err and "tokens rotate party" in qr.err
    assert "Traceback" not in qr.all and qr.out == ""
    # and the secret still makes accounts (its hash is looked up)
    svc_store = Store(f"sqlite:///{site.dir / 'mailctl-accounts.db'}")
    try:
        found = svc_store.find_secret(secret)
        assert found is not None and found.name == "party" and found.secret is None
        assert svc_store.find_secret(secret[:-1] + "x") is None
    finally:
        svc_store.close()


def test_stored_secrets_are_shown_again_and_can_be_forgotten(site: Site) -> None:
    make_site(site.dir, site.dms, accounts_yaml=NO_RATE_LIMIT + "  token_secrets: stored\n")
    tok = site.json("tokens", "add", "party")
    secret = secret_of(tok)
    assert tok["secret_stored"] is True
    assert site.json("tokens", "show", "party")["url"] == tok["url"]
    # switching to hashed leaves made tokens alone, and says so
    make_site(site.dir, site.dms, accounts_yaml=NO_RATE_LIMIT)
    listed = site.cli("tokens", "list")
    assert "party still has its secret stored" in listed.err and "--forget-secret" in listed.err
    forgot = site.json("tokens", "mod", "party", "--forget-secret")
    assert forgot["secret_stored"] is False and forgot["usecount"] == 0
    assert secret.encode() not in store_bytes(site)
    assert "url" not in site.json("tokens", "show", "party")
    store = Store(f"sqlite:///{site.dir / 'mailctl-accounts.db'}")
    try:
        assert store.find_secret(secret) is not None  # the printed URL keeps working
    finally:
        store.close()


def test_rotate_issues_a_new_secret_and_the_old_one_stops_at_once(
        site: Site, serve: Callable[..., Server], open_umask: None) -> None:
    old = secret_of(site.json("tokens", "add", "r", "--maxuse", "5"))
    server = serve(site)
    assert server.post(f"/?t={old}")[0] == 200
    png = site.dir / "r.png"
    png.write_bytes(b"old poster")
    os.chmod(png, 0o644)
    r = site.cli("tokens", "rotate", "r", "--png", png, "--json")
    assert r.code == 0, r.all
    rotated = json.loads(r.out)
    new = secret_of(rotated)
    assert new != old and len(new) >= 32
    assert "old URL and codes no longer work" in r.err and "shown only now" in r.err
    assert server.post(f"/?t={old}")[0] == 403
    code, _, body = server.post(f"/?t={new}")
    assert code == 200, body
    assert decode_qr(png) == [f"DCACCOUNT:{rotated['url']}"] and mode(png) == 0o600
    after = site.json("tokens", "show", "r")
    assert after["usecount"] == 2 and after["maxuse"] == 5  # settings and count stay
    assert new not in server.log.read_text() and old not in server.log.read_text()
    missing = site.cli("tokens", "rotate", "nope")
    assert missing.code == 1 and "no token named nope" in missing.err


def test_upgrade_from_the_previous_schema_keeps_everything(tmp_path: Path) -> None:
    """A store made by the last release (schema 0002: secrets stored, NOT NULL) opens,
    upgrades, and its tokens, their secrets, counts and accounts all survive."""
    site = make_site(tmp_path, tmp_path / "dms", accounts_yaml=NO_RATE_LIMIT)
    db = tmp_path / "mailctl-accounts.db"
    engine = dbmod.make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "mailctl.accounts:migrations")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    old_secret = "old-release-secret-0123456789abcdef"
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO tokens (name, secret, secret_hash, domain, prefix, expiry, maxuse, "
            "usecount, created) VALUES ('legacy', :s, :h, 'example.org', 'tmp.', '1d', 3, 1, 1)"),
            {"s": old_secret, "h": dbmod_hash(old_secret)})
        c.execute(text("INSERT INTO accounts (address, token_id, token_name, provider, "
                       "created, state) VALUES ('tmp.old@example.org', 1, 'legacy', 'sb', 1, "
                       "'active')"))
    engine.dispose()

    shown = site.json("tokens", "show", "legacy")
    assert shown["url"].endswith(f"t={old_secret}&n=legacy") and shown["usecount"] == 1
    assert shown["secret_stored"] is True and shown["state"] == "active"
    assert site.json("accounts", "list")[0]["token"] == "legacy"
    store = Store(f"sqlite:///{db}")
    try:
        assert store.find_secret(old_secret) is not None
        assert dbmod.current_revision(store.engine) == dbmod.HEAD
    finally:
        store.close()
    # the account still points at its token by id (a table rebuild with foreign keys on
    # would have set it to NULL): deleting the token finds it
    assert site.json("tokens", "del", "legacy") == {"deleted": "legacy", "accounts_kept": 1}


def dbmod_hash(secret: str) -> str:
    from mailctl.accounts.model import secret_hash

    return secret_hash(secret)


# -- QR files and generated passwords ---------------------------------------------------


def test_qr_files_are_0600_and_replaced_atomically(site: Site, open_umask: None) -> None:
    png, svg = site.dir / "login.png", site.dir / "invite.svg"
    for p in (png, svg):
        p.write_text("someone else's file")
        os.chmod(p, 0o666)
    r = site.cli("accounts", "add", "qr@example.org", "--png", png)
    assert r.code == 0, r.all
    assert mode(png) == 0o600 and decode_qr(png)[0].startswith("DCLOGIN:qr@example.org?p=")
    t = site.cli("tokens", "add", "inv", "--svg", svg)
    assert t.code == 0 and mode(svg) == 0o600 and svg.read_text().startswith("<?xml")
    assert not list(site.dir.glob(".*.tmp"))  # no temp file left behind


def stderr_password(err: str) -> str:
    m = re.search(r"password \(shown once, stored nowhere\): (\S+)", err)
    assert m, err
    return m.group(1)


def test_generated_password_never_reaches_stdout_unless_asked(site: Site) -> None:
    r = site.cli("accounts", "add", "a@example.org")
    assert r.code == 0, r.all
    pw = stderr_password(r.err)
    assert len(pw) >= 32 and pw not in r.out and r.err.count(pw) == 1

    j = site.cli("accounts", "add", "b@example.org", "--json")
    body = json.loads(j.out)
    pw = stderr_password(j.err)
    assert "password" not in body and pw not in j.out and body["email"] == "b@example.org"

    rev = site.cli("accounts", "add", "c@example.org", "--json", "--reveal-password")
    assert len(json.loads(rev.out)["password"]) >= 32
    assert json.loads(rev.out)["password"] not in rev.err

    png = site.dir / "d.png"
    q = site.cli("accounts", "add", "d@example.org", "--png", png, "--json")
    assert q.code == 0 and set(json.loads(q.out)) >= {"email", "files"}
    assert "password" not in json.loads(q.out) and "dclogin" not in json.loads(q.out)
    code_pw = decode_qr(png)[0].split("?p=")[1].split("&")[0]
    assert code_pw not in q.all and "only in the code" in q.err

    term = site.cli("accounts", "add", "e@example.org", "--qr")
    blocks = set("█▀▄")
    assert term.code == 0 and not blocks & set(term.out) and blocks & set(term.err)


def test_secrets_out_gets_the_password_and_nothing_prints_it(site: Site,
                                                             open_umask: None) -> None:
    out = site.dir / "new.tsv"
    r = site.cli("accounts", "add", "f@example.org", "--secrets-out", out)
    assert r.code == 0, r.all
    addr, pw = out.read_text().rstrip("\n").split("\t")
    assert addr == "f@example.org" and len(pw) >= 32 and mode(out) == 0o600
    assert pw not in r.all and f"written to {out}" in r.err
    r = site.cli("accounts", "add", "g@example.org", "--secrets-out", out)
    assert [ln.split("\t")[0] for ln in out.read_text().splitlines()] == \
        ["f@example.org", "g@example.org"]  # appended


def test_files_are_taken_back_when_the_account_is_not_made(site: Site) -> None:
    out, png = site.dir / "s.tsv", site.dir / "x.png"
    out.write_text("earlier@example.org\tkeep-me\n")
    site.json("tokens", "add", "t", "--maxuse", "1")
    site.dms.rmdir()  # the provider cannot write: nothing is made
    r = site.cli("accounts", "add", "x@example.org", "--token", "t", "--png", png,
                 "--secrets-out", out)
    assert r.code == 3 and "Traceback" not in r.all
    assert not png.exists() and out.read_text() == "earlier@example.org\tkeep-me\n"
    assert site.json("tokens", "show", "t")["usecount"] == 0


def test_a_killed_add_has_already_saved_the_password(site: Site) -> None:
    """kill -9 while the provider is being called: the password is on disk already."""
    out = site.dir / "s.tsv"
    lock = open(site.dms / ".mailctl.lock", "a")  # noqa: SIM115 - held across the test
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)  # the dms provider waits for it (lock_timeout 2 s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailctl", "accounts", "add",
                             "k@example.org", "--secrets-out", str(out)], cwd=site.dir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert out.read_text().startswith("k@example.org\t")  # before the provider answered
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    assert site.dms_accounts() == set()  # killed before it was made: a spare line, no loss
