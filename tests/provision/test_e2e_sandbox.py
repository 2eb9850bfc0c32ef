"""What a user sees after `mailctl apply`, on the real Dovecot + Postfix sandbox:
mailboxes log in with their passwords, aliases and forwards deliver, quotas hold,
pruned mailboxes are gone, and no secret lands in the daemons' logs."""

from __future__ import annotations

import imaplib
from pathlib import Path

from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.mailstack import (
    MailStack,
    imap_login,
    make_message,
    new_marker,
    require_postfix,
    send_smtp,
    unique_domain,
    wait_for_message,
)


def _config(site: Path, stack: MailStack, dom: str, other: str, with_bob: bool = True) -> None:
    bob = "      - local_part: bob\n        forwards: [carol@{other}]\n" if with_bob else ""
    info_dests = "[alice, bob]" if with_bob else "[alice]"
    write_config(site, f"""
providers:
  sandbox: {{type: dms, path: {stack.dms_dir}}}
domains:
  {dom}:
    provider: sandbox
    mailboxes:
      - local_part: alice
        quota: 1M
        aliases: [ceo]
{bob.format(other=other)}    aliases:
      - local_part: info
        destinations: {info_dests}
    catch_all: alice
  {other}:
    provider: sandbox
    mailboxes:
      - local_part: carol
""")


def _secrets(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        addr, pw = line.split("\t")
        out[addr] = pw  # the last entry for an address wins
    return out


def test_applied_config_works_for_real(mailstack: MailStack, tmp_path: Path) -> None:
    require_postfix(mailstack.info)
    info = mailstack.info
    dom, other = unique_domain("e2e"), unique_domain("fwd")
    _config(tmp_path, mailstack, dom, other)
    r = run_cli("apply", "--secrets-out", "pw.tsv", cwd=tmp_path)
    assert r.code == 0, r.all
    pw = _secrets(tmp_path / "pw.tsv")
    alice, bob, carol = f"alice@{dom}", f"bob@{dom}", f"carol@{other}"

    # Every declared mailbox logs in with its password; a wrong one does not.
    for addr in (alice, bob, carol):
        assert imap_login(info, addr, pw[addr]), addr
        assert imap_login(info, addr, pw[addr], tls=True), addr
    assert not imap_login(info, alice, pw[bob])

    # An alias delivers to each destination.
    m = new_marker()
    assert send_smtp(info, "x@example.test", [f"info@{dom}"], make_message(m)) == {}
    assert wait_for_message(info, alice, pw[alice], m) is not None
    assert wait_for_message(info, bob, pw[bob], m) is not None
    # A mailbox alias, and the catch-all, reach alice; bob's own mail is not swallowed.
    for rcpt in (f"ceo@{dom}", f"nobody-declared@{dom}"):
        m = new_marker()
        send_smtp(info, "x@example.test", [rcpt], make_message(m))
        assert wait_for_message(info, alice, pw[alice], m) is not None, rcpt
    # A forward reaches its target and keeps a copy.
    m = new_marker()
    send_smtp(info, "x@example.test", [bob], make_message(m))
    assert wait_for_message(info, carol, pw[carol], m) is not None
    assert wait_for_message(info, bob, pw[bob], m) is not None

    # The quota is enforced by the server: alice holds 1M at most.
    conn = imaplib.IMAP4(info.host, info.ports.imap, timeout=10)
    conn.login(alice, pw[alice])
    typ, data = conn.getquotaroot("INBOX")
    conn.logout()
    assert typ == "OK" and b"1024" in b" ".join(d for d in data[1] if isinstance(d, bytes))

    # Remove bob from the YAML and prune: he can no longer log in, alice still can.
    _config(tmp_path, mailstack, dom, other, with_bob=False)
    r = run_cli("apply", "--prune", "--reconcile", "--yes", "--no-backup", cwd=tmp_path)
    assert r.code == 0, r.all
    assert "- mailbox  bob@" in r.out
    assert not imap_login(info, bob, pw[bob])
    assert imap_login(info, alice, pw[alice])
    assert run_cli("plan", "--prune", "--reconcile", "--detailed-exitcode",
                   cwd=tmp_path).code == 0

    # No password ever reaches the daemons' logs.
    logs = "".join(p.read_text(errors="replace") for p in info.log_dir.rglob("*") if p.is_file())
    for secret in pw.values():
        assert secret not in logs


def test_referenced_password_logs_in(mailstack: MailStack, tmp_path: Path) -> None:
    dom = unique_domain("ref")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "dave.pw").write_text("a-person-chose-this-one\n")
    write_config(tmp_path, f"""
providers:
  sandbox: {{type: dms, path: {mailstack.dms_dir}}}
domains:
  {dom}:
    provider: sandbox
    mailboxes:
      - local_part: dave
        password: ${{file:secrets/dave.pw}}
""")
    r = run_cli("apply", cwd=tmp_path)
    assert r.code == 0, r.all
    assert "a-person-chose-this-one" not in r.all
    assert "Generated passwords" not in r.err
    assert imap_login(mailstack.info, f"dave@{dom}", "a-person-chose-this-one")


def test_sandbox_cli_status_json(tmp_path: Path) -> None:
    """`mailctl sandbox status --json` on a folder nobody serves says so and exits 1."""
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, "providers:\n  sb: {type: dms, path: ./dms}\n")
    r = run_cli("sandbox", "status", "--json", "--state-dir", tmp_path / "st", cwd=tmp_path)
    assert r.code == 1
    assert '"running": false' in r.out


def test_sandbox_cli_lifecycle(tmp_path: Path) -> None:
    """`mailctl sandbox up`, `apply` (hot reload), `status`, `down`, as a user runs them."""
    import json
    import os

    from tests.fixtures.mailstack import free_ports

    site = tmp_path
    state = Path("/tmp") / f"mailctl-cli-{os.getpid()}-{new_marker()[:6]}"
    dom = unique_domain("cli")
    (site / "dms").mkdir()
    write_config(site, f"""
providers:
  sb: {{type: dms, path: ./dms}}
domains:
  {dom}:
    provider: sb
    mailboxes:
      - local_part: eve
""")
    ports = ",".join(map(str, free_ports(5)))
    try:
        r = run_cli("sandbox", "up", "--state-dir", state, "--ports", ports, "--json", cwd=site)
        assert r.code == 0, r.all
        up = json.loads(r.out)
        assert up["running"] is True
        imap_port = up["ports"]["imap"]
        assert str(imap_port) in ports
        r = run_cli("apply", "--secrets-out", "pw.tsv", cwd=site)
        assert r.code == 0, r.all
        pw = _secrets(site / "pw.tsv")[f"eve@{dom}"]
        conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
        assert conn.login(f"eve@{dom}", pw)[0] == "OK"  # the apply reloaded the sandbox
        conn.logout()
        r = run_cli("sandbox", "status", "--state-dir", state, cwd=site)
        assert r.code == 0 and "dovecot" in r.out and "running" in r.out
        daemons = json.loads(run_cli("sandbox", "status", "--state-dir", state, "--json",
                                     cwd=site).out)["daemons"]
        pids = [d["pid"] for d in daemons.values() if d["pid"]]
        assert pids
    finally:
        r = run_cli("sandbox", "down", "--state-dir", state, "--purge", cwd=site)
    assert r.code == 0, r.all
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().split()[2]
    r = run_cli("sandbox", "status", "--state-dir", state, "--json", cwd=site)
    assert r.code == 1 and json.loads(r.out)["running"] is False
