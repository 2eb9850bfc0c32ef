"""`mailctl console`, `mailctl passwd` and `mailctl app-passwords` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.cli import run_cli, snapshot, write_config
from tests.fixtures.mailstack import free_ports

CONFIG = """\
providers:
  p: {type: dms, path: ./dms}
  hosted: {type: migadu, user: admin@example.org, api_key: "${env:MIGADU_KEY}",
           url: "http://127.0.0.1:9/v1"}
domains:
  example.org:
    provider: p
    mailboxes: [{local_part: alice}]
  hosted.org:
    provider: hosted
    mailboxes: [{local_part: zed}]
console:
  oidc: {issuer: "http://127.0.0.1:9", client_id: c, client_secret: "${env:CLIENT_SECRET}"}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "dms").mkdir()
    (tmp_path / ".env").write_text("MIGADU_KEY=k\nCLIENT_SECRET=s\n")
    return write_config(tmp_path, CONFIG)


@pytest.mark.parametrize("args,code,message", [
    pytest.param(["passwd", "not an address"], 64, "expected a mailbox address",
                 id="bad-address"),
    pytest.param(["passwd", "@example.org"], 64, "catch-all", id="catch-all"),
    pytest.param(["passwd", "bob@example.org"], 1, "is not a mailbox declared",
                 id="undeclared"),
    pytest.param(["passwd", "a@nowhere.org"], 1, "domain nowhere.org is not declared",
                 id="undeclared-domain"),
    pytest.param(["passwd", "alice@example.org", "--secrets-out", "missing/dir/file"], 64,
                 "does not exist", id="secrets-out-dir"),
    pytest.param(["passwd", "alice@example.org", "--from", "plain-text"], 64,
                 "must be a reference", id="from-literal"),
    pytest.param(["passwd", "alice@example.org", "--from", "${env:NOPE_NOT_SET}"], 64,
                 "NOPE_NOT_SET is not set", id="from-missing"),
    pytest.param(["app-passwords", "add", "zed@hosted.org", "--name", "Phone"], 1,
                 "cannot manage app passwords", id="capability"),
    pytest.param(["app-passwords", "list", "bob@example.org"], 1, "not a mailbox declared",
                 id="list-undeclared"),
    pytest.param(["app-passwords", "add", "alice@example.org"], 64, "--name",
                 id="name-missing"),
])
def test_user_mistakes_are_one_line_errors_and_change_nothing(
        cfg: Path, args: list[str], code: int, message: str) -> None:
    before = snapshot(cfg.parent)
    r = run_cli(*args, cwd=cfg.parent)
    assert r.code == code, r.all
    assert message in r.err
    assert "Traceback" not in r.all and r.out == ""
    assert snapshot(cfg.parent) == before


def test_hash_password_reads_stdin(cfg: Path) -> None:
    from mailctl.web.auth import verify_password

    r = run_cli("console", "hash-password", cwd=cfg.parent, stdin="a long emergency password\n")
    assert r.code == 0 and verify_password("a long emergency password", r.out.strip())
    r = run_cli("console", "hash-password", cwd=cfg.parent, stdin="short\n")
    assert r.code == 64 and "at least 16" in r.err


@pytest.mark.parametrize("args,env,code,message", [
    pytest.param(["--public-url", "ftp://x"], {}, 64, "expected an http(s) URL", id="url"),
    pytest.param(["--port", "70000"], {}, 64, "65535", id="port"),
    pytest.param([], {"CLIENT_SECRET": ""}, 1, "console.oidc.client_secret", id="secret"),
])
def test_console_serve_refuses_to_start(cfg: Path, args: list[str], env: dict[str, str],
                                        code: int, message: str) -> None:
    if env:
        (cfg.parent / ".env").write_text("MIGADU_KEY=k\n")
    r = run_cli("console", "serve", *args, cwd=cfg.parent, env=env)
    assert r.code == code, r.all
    assert message in r.err and "Traceback" not in r.all


def test_console_serve_runs_until_interrupted(cfg: Path) -> None:
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailctl", "console", "serve", "--port",
                             str(port)], cwd=cfg.parent, env=env, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and "Sign in" in r.text
        auto = httpx.get(f"http://127.0.0.1:{port}/.well-known/autoconfig/mail/"
                         "config-v1.1.xml", params={"emailaddress": "alice@example.org"})
        assert "<hostname>mail.example.org</hostname>" in auto.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    audit_dir = cfg.parent / ".mailctl" / "console"
    assert oct(audit_dir.stat().st_mode & 0o777) == "0o700"


def test_serve_runs_the_console_in_the_same_process(cfg: Path) -> None:
    port = free_ports(1)[0]
    text = cfg.read_text().replace("console:\n", f"accounts:\n  web: {{port: {port}}}\n"
                                   "console:\n")
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailctl", "serve"], cwd=cfg.parent,
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        redeem = httpx.post(f"http://127.0.0.1:{port}/?t=not-a-token")
        assert redeem.status_code == 403 and redeem.json()["type"] == "error"
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and 'href="/login"' in page.text
        assert "script-src 'none'" in page.headers["content-security-policy"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err


def test_dms_passwd_and_app_passwords_on_the_sandbox(mailstack, tmp_path: Path) -> None:
    from tests.fixtures.mailstack import imap_login, unique_domain

    domain = unique_domain("cli")
    (tmp_path / "pw").write_text("an initial password 123")
    write_config(tmp_path, f"""\
        providers:
          sb: {{type: dms, path: "{mailstack.dms_dir}"}}
        domains:
          {domain}:
            provider: sb
            mailboxes: [{{local_part: carol, password: "${{file:pw}}"}}]
        """)
    assert run_cli("apply", cwd=tmp_path).code == 0
    carol, info = f"carol@{domain}", mailstack.info
    assert imap_login(info, carol, "an initial password 123")
    r = run_cli("app-passwords", "add", carol, "--name", "Laptop", cwd=tmp_path)
    assert r.code == 0, r.all
    app = r.err.strip().splitlines()[-1].strip()
    assert app not in r.out and imap_login(info, carol, app)
    r = run_cli("app-passwords", "list", carol, "--json", cwd=tmp_path)
    entry = json.loads(r.out)["app_passwords"][0]
    assert entry["name"] == "Laptop" and entry["created"]
    out = tmp_path / "new.tsv"
    r = run_cli("passwd", carol, "--secrets-out", str(out), cwd=tmp_path)
    assert r.code == 0 and oct(out.stat().st_mode & 0o777) == "0o600"
    new = out.read_text().split("\t")[1].strip()
    assert new not in r.all
    assert imap_login(info, carol, new) and not imap_login(info, carol, "an initial password 123")
    assert imap_login(info, carol, app)  # the app password survives the reset
    r = run_cli("app-passwords", "revoke", carol, entry["id"], cwd=tmp_path)
    assert r.code == 0 and not imap_login(info, carol, app)
    assert "BEGIN mailctl app passwords" in (mailstack.dms_dir / "dovecot.cf").read_text()
