"""plan/apply/status/import on the dms provider, through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mailctl.providers.dms.hashing import verify
from tests.fixtures.cli import run_cli, snapshot, write_config

CONFIG = """\
providers:
  local:
    type: dms
    path: ./dms
domains:
  example.org:
    provider: local
    mailboxes:
      - local_part: alice
        quota: 2G
        aliases: [ali]
        forwards: [bob@example.net]
      - local_part: bob
        password: ${env:BOB_PASSWORD}
    aliases:
      - local_part: info
        destinations: [alice, bob, someone@outside.test]
    catch_all: alice
  example.net:
    provider: local
    mailboxes:
      - local_part: bob
"""
BOB_PW = "correct-horse-battery-staple-42"
ENV = {"BOB_PASSWORD": BOB_PW}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, CONFIG)
    return tmp_path


def accounts(site: Path) -> dict[str, str]:
    text = (site / "dms" / "postfix-accounts.cf").read_text()
    return dict(line.split("|")[:2] for line in text.splitlines() if line and line[0] != "#")


def test_plan_apply_idempotent(site: Path) -> None:
    r = run_cli("plan", "--detailed-exitcode", cwd=site, env=ENV)
    assert r.code == 2, r.all
    assert "+ mailbox  alice@example.org  quota=2G" in r.out
    assert "Plan: 7 to create, 0 to update, 0 to delete." in r.out
    # Domains, then mailboxes, then aliases, then forwards.
    order = [ln.split()[1] for ln in r.out.splitlines() if ln.startswith("  + ")]
    assert order == ["mailbox", "mailbox", "mailbox", "alias", "alias", "alias",
                     "forward"]

    r = run_cli("apply", cwd=site, env=ENV)
    assert r.code == 0, r.all
    assert "Applied: 7 done, 0 failed, 0 not attempted." in r.out
    assert set(accounts(site)) == {"alice@example.org", "bob@example.org", "bob@example.net"}
    after_first = snapshot(site / "dms")

    r = run_cli("apply", cwd=site, env=ENV)
    assert r.code == 0
    assert "No changes" in r.out
    assert snapshot(site / "dms") == after_first
    r = run_cli("plan", "--detailed-exitcode", cwd=site, env=ENV)
    assert r.code == 0
    r = run_cli("status", "--json", cwd=site, env=ENV)
    assert r.code == 0
    data = json.loads(r.out)
    assert data["in_sync"] is True
    org = next(d for d in data["domains"] if d["domain"] == "example.org")
    assert org["mailboxes"] == {"declared": 2, "present": 2, "missing": [], "drifted": [],
                                "undeclared": []}


def test_dms_files_are_what_setup_writes(site: Path) -> None:
    assert run_cli("apply", cwd=site, env=ENV).code == 0
    accts = accounts(site)
    assert all(h.startswith("{SHA512-CRYPT}$6$") for h in accts.values())
    assert verify(BOB_PW, accts["bob@example.org"])
    assert not verify("wrong", accts["bob@example.org"])
    if shutil.which("doveadm"):  # Dovecot itself accepts the hash
        ok = subprocess.run(["doveadm", "pw", "-t", accts["bob@example.org"], "-p", BOB_PW],
                            capture_output=True)
        assert ok.returncode == 0
    virtual = (site / "dms" / "postfix-virtual.cf").read_text().splitlines()
    assert "info@example.org alice@example.org,bob@example.org,someone@outside.test" in virtual
    assert "alice@example.org alice@example.org,bob@example.net" in virtual  # forward, kept
    assert "bob@example.org bob@example.org" in virtual  # guard against the catch-all
    assert virtual[-1] == "@example.org alice@example.org"  # catch-all last
    assert (site / "dms" / "dovecot-quotas.cf").read_text() == "alice@example.org:2G\n"
    mode = stat.S_IMODE((site / "dms" / "postfix-accounts.cf").stat().st_mode)
    assert mode == 0o600


def test_untouched_lines_survive_byte_for_byte(site: Path) -> None:
    d = site / "dms"
    foreign = "other.test"
    (d / "postfix-accounts.cf").write_bytes(
        b"# managed by hand\r\n"
        b"keep@other.test|{SHA512-CRYPT}$6$abc$def|userdb_mail=maildir:/x\r\n\r\n"
    )
    (d / "postfix-virtual.cf").write_bytes(
        b"# aliases\npostmaster   keep@other.test\nx@other.test keep@other.test\n"
    )
    assert run_cli("apply", cwd=site, env=ENV).code == 0
    acc = (d / "postfix-accounts.cf").read_text()
    assert acc.startswith("# managed by hand\n"
                          "keep@other.test|{SHA512-CRYPT}$6$abc$def|userdb_mail=maildir:/x\n\n")
    virt = (d / "postfix-virtual.cf").read_text()
    assert virt.startswith(
        "# aliases\npostmaster   keep@other.test\nx@other.test keep@other.test\n")
    # Undeclared domains are never touched, even by --prune.
    r = run_cli("apply", "--prune", "--yes", cwd=site, env=ENV)
    assert r.code == 0
    assert f"keep@{foreign}" in (d / "postfix-accounts.cf").read_text()


def test_reconcile_updates_only_when_asked(site: Path) -> None:
    assert run_cli("apply", cwd=site, env=ENV).code == 0
    cfg = site / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("quota: 2G", "quota: 5G"))
    r = run_cli("plan", "--detailed-exitcode", cwd=site, env=ENV)
    # Drift that is only "not included" still fails a CI gate, and is not "in sync".
    assert r.code == 2
    assert "1 drifted object(s) not updated (use --reconcile)" in r.out
    assert "~ mailbox  alice@example.org  quota: 2G -> 5G" in r.out
    assert "matches" not in r.out.replace("does not match", "")
    r = run_cli("apply", cwd=site, env=ENV)
    assert r.code == 0
    assert "No changes with these options, but the provider does not match" in r.out
    assert "alice@example.org:2G" in (site / "dms" / "dovecot-quotas.cf").read_text()
    r = run_cli("plan", "--reconcile", "--json", cwd=site, env=ENV)
    change = json.loads(r.out)["changes"][0]
    assert change["action"] == "update"
    assert change["diff"] == {"quota": {"from": 2 << 30, "to": 5 << 30}}
    r = run_cli("apply", "--reconcile", cwd=site, env=ENV)
    assert r.code == 0, r.all
    assert "~ mailbox  alice@example.org  quota: 2G -> 5G" in r.out
    assert "alice@example.org:5G" in (site / "dms" / "dovecot-quotas.cf").read_text()


def test_prune_asks_and_cleans_references(site: Path) -> None:
    assert run_cli("apply", cwd=site, env=ENV).code == 0
    cfg = site / "mailctl.yaml"
    bob = "      - local_part: bob\n        password: ${env:BOB_PASSWORD}\n"
    text = cfg.read_text().replace(bob, "").replace("[alice, bob, someone@outside.test]",
                                               "[alice, someone@outside.test]")
    cfg.write_text(text)
    before = snapshot(site / "dms")
    r = run_cli("apply", "--prune", cwd=site, env=ENV)  # no TTY to ask on
    assert r.code == 4
    assert "pass --yes to confirm" in r.err
    assert snapshot(site / "dms") == before
    r = run_cli("plan", "--prune", "--reconcile", cwd=site, env=ENV)
    assert "- mailbox  bob@example.org" in r.out
    # no mail_access to back bob's mail up with: nothing is deleted (docs/cli.md)
    r = run_cli("apply", "--prune", "--reconcile", "--yes", cwd=site, env=ENV)
    assert r.code == 3 and "cannot back up bob@example.org" in r.err, r.all
    assert "nothing was changed" in r.err and "--no-backup" in r.err
    assert snapshot(site / "dms") == before
    r = run_cli("apply", "--prune", "--reconcile", "--yes", "--no-backup", cwd=site, env=ENV)
    assert r.code == 0, r.all
    assert "bob@example.org" not in accounts(site)
    assert "bob@example.org" not in (site / "dms" / "postfix-virtual.cf").read_text()
    assert run_cli("plan", "--prune", "--reconcile", "--detailed-exitcode",
                   cwd=site, env=ENV).code == 0


def test_safety_limit_refuses_mass_delete(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    boxes = "".join(f"      - local_part: user{i}\n" for i in range(20))
    write_config(tmp_path, "providers:\n  local: {type: dms, path: ./dms}\ndomains:\n"
                 "  big.test:\n    provider: local\n    mailboxes:\n" + boxes)
    assert run_cli("apply", cwd=tmp_path).code == 0
    cfg = tmp_path / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace(
        "".join(f"      - local_part: user{i}\n" for i in range(10, 20)), ""))
    before = snapshot(tmp_path / "dms")
    r = run_cli("apply", "--prune", "--yes", cwd=tmp_path)
    assert r.code == 4
    assert "big.test: 10 of 20 existing objects would be deleted (50% > the 30% limit" in r.err
    assert snapshot(tmp_path / "dms") == before
    r = run_cli("plan", "--prune", cwd=tmp_path)
    assert "apply would refuse without --force" in r.err
    r = run_cli("apply", "--prune", "--yes", "--force", "--no-backup", cwd=tmp_path)
    assert r.code == 0, r.all
    assert len(accounts(tmp_path)) == 10


def test_secrets_never_reach_stdout(site: Path) -> None:
    outputs = []
    for args in (["validate"], ["plan"], ["plan", "--json"], ["plan", "--markdown"],
                 ["apply", "--json"], ["status"], ["status", "--json"],
                 ["import", "-p", "local"]):
        outputs.append(run_cli("-vv", *args, cwd=site, env=ENV))  # logs on stderr too
    assert "INFO mailctl.providers.dms.provider: wrote" in outputs[4].err
    apply_json = json.loads(outputs[4].out)
    assert apply_json["generated_passwords_for"] == [
        "alice@example.org", "bob@example.net"]
    # The generated passwords are on stderr of apply, once each, and nowhere else.
    lines = [ln.split() for ln in outputs[4].err.splitlines() if ln.startswith("  ")]
    generated = {addr: pw for addr, pw in lines}
    assert set(generated) == {"alice@example.org", "bob@example.net"}
    for pw in generated.values():
        assert len(pw) >= 32
        assert verify(pw, accounts(site)[next(a for a, p in generated.items() if p == pw)])
    every = "".join(r.out for r in outputs) + "".join(
        r.err for i, r in enumerate(outputs) if i != 4)
    for secret in (*generated.values(), BOB_PW):
        assert secret not in every
        assert outputs[4].err.count(secret) == (0 if secret == BOB_PW else 1)
    for f in (site / "dms").iterdir():
        assert all(s not in f.read_text() for s in (*generated.values(), BOB_PW))


def test_secrets_out_file(site: Path) -> None:
    out = site / "new.secrets"
    r = run_cli("apply", "--secrets-out", out, cwd=site, env=ENV)
    assert r.code == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    entries = dict(line.split("\t") for line in out.read_text().splitlines())
    assert set(entries) == {"alice@example.org", "bob@example.net"}
    for addr, pw in entries.items():
        assert pw not in r.all
        assert verify(pw, accounts(site)[addr])
    assert "2 generated passwords written to" in r.err


def test_import_roundtrip_plans_to_zero(site: Path) -> None:
    assert run_cli("apply", cwd=site, env=ENV).code == 0
    r = run_cli("import", "--provider", "local", cwd=site, env=ENV)
    assert r.code == 0, r.all
    (site / "imported.yaml").write_text(r.out)
    r = run_cli("plan", "-f", "imported.yaml", "--reconcile", "--prune", "--detailed-exitcode",
                cwd=site)
    assert r.code == 0, r.all
    # And without a config at all: a provider type plus its settings.
    other = site / "elsewhere"
    other.mkdir()
    r = run_cli("import", "-p", "dms", "-s", f"path={site / 'dms'}", "-d", "example.net",
                cwd=other)
    assert r.code == 0, r.all
    assert "example.net:" in r.out and "example.org" not in r.out


def test_plan_markdown_and_json_shapes(site: Path) -> None:
    r = run_cli("plan", "--markdown", cwd=site, env=ENV)
    assert r.out.startswith("| action | kind | address | details |")
    assert "| create | alias | `info@example.org` |" in r.out
    data = json.loads(run_cli("plan", "--json", cwd=site, env=ENV).out)
    assert data["summary"] == {"create": 7, "update": 0, "delete": 0}
    first = data["changes"][0]
    assert set(first) >= {"action", "kind", "domain", "address", "provider", "fields"}


def test_log_lines_are_scrubbed_of_known_secrets() -> None:
    import io
    import logging

    from mailctl.secret import ScrubFilter, Secret, generate_password

    pw = generate_password()
    other = Secret("api-key-0123456789", source="${env:API_KEY}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ScrubFilter())
    logger = logging.getLogger("mailctl.test-scrub")
    logger.addHandler(handler)
    logger.warning("oops %s and %s", pw.reveal(), other.reveal())
    logger.removeHandler(handler)
    text = stream.getvalue()
    assert pw.reveal() not in text and "api-key-0123456789" not in text
    assert text.count("********") == 2
    assert repr(pw) == "Secret(********)" and f"{other}" == "********"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(pw)


def test_unmanaged_addresses_survive_prune(tmp_path: Path) -> None:
    """Temporary accounts (or anything another tool owns) are never pruned."""
    (tmp_path / "dms").mkdir()
    (tmp_path / "dms" / "postfix-accounts.cf").write_text(
        "tmp.x7k2q@chat.test|{SHA512-CRYPT}$6$abc$def\nold@chat.test|{SHA512-CRYPT}$6$abc$def\n")
    write_config(tmp_path, """
        providers:
          local: {type: dms, path: ./dms}
        domains:
          chat.test:
            provider: local
            unmanaged: ["tmp.*"]
            mailboxes:
              - local_part: admin
    """)
    r = run_cli("apply", "--prune", "--yes", "--no-backup", cwd=tmp_path)
    assert r.code == 0, r.all
    assert "- mailbox  old@chat.test" in r.out
    assert "tmp.x7k2q" not in r.out
    assert set(accounts(tmp_path)) == {"tmp.x7k2q@chat.test", "admin@chat.test"}
    status = json.loads(run_cli("status", "--json", cwd=tmp_path).out)
    assert status["in_sync"] is True
    cfg = tmp_path / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("local_part: admin", "local_part: tmp.admin"))
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "tmp.admin@chat.test is declared but matches `unmanaged`" in r.err
