"""The sandbox against real Dovecot and Postfix.

Most tests share the module's `mailstack` and keep to their own domain; the
ones that stop or compare sandboxes make their own.
"""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mailctl.sandbox import Ports, Sandbox, SandboxError, SandboxInfo, notify_change, procs
from mailctl.sandbox.state import MARKER_NAME, save_info
from tests.fixtures.mailstack import (
    MailStack,
    count_messages,
    free_ports,
    imap_login,
    lmtp_deliver,
    make_message,
    new_marker,
    require_postfix,
    send_smtp,
    submit,
    tls_context,
    unique_domain,
    wait_for_message,
    write_dms,
)

pytestmark = pytest.mark.mailstack


def test_account_logs_in_with_its_password_only(mailstack: MailStack) -> None:
    d = unique_domain()
    mailstack.set(accounts={f"alice@{d}": "alice-pw"})
    assert imap_login(mailstack.info, f"alice@{d}", "alice-pw")
    assert imap_login(mailstack.info, f"ALICE@{d.upper()}", "alice-pw")  # dms lower-cases
    assert imap_login(mailstack.info, f"alice@{d}", "alice-pw", tls=True)
    t0 = time.monotonic()
    assert not imap_login(mailstack.info, f"alice@{d}", "wrong")
    assert not imap_login(mailstack.info, f"nobody@{d}", "alice-pw")
    assert time.monotonic() - t0 < 3  # no 2 s delay, no growing per-IP penalty


def test_alias_delivers_to_each_destination(mailstack: MailStack) -> None:
    require_postfix(mailstack.info)
    d1, d2 = unique_domain(), unique_domain()
    a, b = f"a@{d1}", f"b@{d2}"
    mailstack.set(accounts={a: "pw-a", b: "pw-b"}, virtual={f"team@{d1}": [a, b]})
    m = new_marker()
    assert send_smtp(mailstack.info, "x@sender.test", [f"team@{d1}"], make_message(m)) == {}
    assert wait_for_message(mailstack.info, a, "pw-a", m) is not None
    assert wait_for_message(mailstack.info, b, "pw-b", m) is not None


def test_catch_all_takes_unknown_addresses_but_not_accounts_with_a_self_entry(
    mailstack: MailStack,
) -> None:
    require_postfix(mailstack.info)
    d = unique_domain()
    alice, box = f"alice@{d}", f"catchall@{d}"
    mailstack.set(accounts={alice: "pw-alice", box: "pw-box"},
                  virtual={alice: alice, f"@{d}": box})  # the self-entry dms needs
    to_alice, to_unknown = new_marker(), new_marker()
    send_smtp(mailstack.info, "x@sender.test", [alice], make_message(to_alice))
    send_smtp(mailstack.info, "x@sender.test", [f"whatever@{d}"], make_message(to_unknown))
    assert wait_for_message(mailstack.info, alice, "pw-alice", to_alice) is not None
    assert wait_for_message(mailstack.info, box, "pw-box", to_unknown) is not None
    assert count_messages(mailstack.info, box, "pw-box", to_alice) == 0


def test_catch_all_swallows_an_account_without_self_entry_like_dms(mailstack: MailStack) -> None:
    """dms pitfall 3, reproduced on purpose: the sandbox must not hide it."""
    require_postfix(mailstack.info)
    d = unique_domain()
    carol, box = f"carol@{d}", f"box@{d}"
    mailstack.set(accounts={carol: "pw-carol", box: "pw-box"}, virtual={f"@{d}": box})
    m = new_marker()
    send_smtp(mailstack.info, "x@sender.test", [carol], make_message(m))
    assert wait_for_message(mailstack.info, box, "pw-box", m) is not None
    assert count_messages(mailstack.info, carol, "pw-carol", m) == 0


def test_forward_with_keep_reaches_both(mailstack: MailStack) -> None:
    require_postfix(mailstack.info)
    d, other = unique_domain(), unique_domain()
    alice, bob = f"alice@{d}", f"bob@{other}"
    mailstack.set(accounts={alice: "pw-a", bob: "pw-b"}, virtual={alice: [alice, bob]})
    m = new_marker()
    send_smtp(mailstack.info, "x@sender.test", [alice], make_message(m))
    assert wait_for_message(mailstack.info, alice, "pw-a", m) is not None
    assert wait_for_message(mailstack.info, bob, "pw-b", m) is not None


def test_recipient_delimiter_and_case(mailstack: MailStack) -> None:
    require_postfix(mailstack.info)
    d = unique_domain()
    mailstack.set(accounts={f"dora@{d}": "pw"})
    m = new_marker()
    send_smtp(mailstack.info, "x@sender.test", [f"Dora+news@{d.upper()}"], make_message(m))
    assert wait_for_message(mailstack.info, f"dora@{d}", "pw", m) is not None


def test_account_added_then_removed_with_reload(mailstack: MailStack) -> None:
    d = unique_domain()
    erin = f"erin@{d}"
    assert not imap_login(mailstack.info, erin, "pw-erin")
    t0 = time.monotonic()
    mailstack.set(accounts={erin: "pw-erin"})  # rewrite dms files + reload
    reload_s = time.monotonic() - t0
    assert imap_login(mailstack.info, erin, "pw-erin")
    m = new_marker()
    if mailstack.postfix:
        send_smtp(mailstack.info, "x@sender.test", [erin], make_message(m))
    else:
        lmtp_deliver(mailstack.info, [erin], make_message(m))
    assert wait_for_message(mailstack.info, erin, "pw-erin", m) is not None
    mailstack.set(accounts={erin: "new-pw"})  # same-length hash, same second
    assert imap_login(mailstack.info, erin, "new-pw")
    assert not imap_login(mailstack.info, erin, "pw-erin")
    mailstack.remove(erin)
    assert not imap_login(mailstack.info, erin, "new-pw")
    if mailstack.postfix:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send_smtp(mailstack.info, "x@sender.test", [erin], make_message(new_marker()))
    assert reload_s < 2.0


def test_notify_change_reloads_the_sandbox_serving_the_dir(
    mailstack: MailStack, tmp_path: Path
) -> None:
    assert (mailstack.dms_dir / MARKER_NAME).read_text().strip() == str(
        mailstack.sandbox.state_dir)
    d = unique_domain()
    mailstack.accounts[f"fred@{d}"] = "pw-fred"
    mailstack.write(reload=False)
    assert notify_change(mailstack.dms_dir) is True
    assert imap_login(mailstack.info, f"fred@{d}", "pw-fred")
    assert notify_change(mailstack.dms_dir) is True  # nothing changed: still in sync
    t0 = time.monotonic()
    assert notify_change(tmp_path) is False  # no sandbox there
    assert time.monotonic() - t0 < 0.01


def test_broken_dms_file_is_reported_and_the_sandbox_keeps_serving(mailstack: MailStack) -> None:
    d = unique_domain()
    mailstack.set(accounts={f"gina@{d}": "pw"})
    path = mailstack.dms_dir / "postfix-accounts.cf"
    good = path.read_text()
    path.write_text(good + "not-an-address|{SHA512-CRYPT}$6$x$y\n")
    try:
        with pytest.raises(SandboxError, match=r"postfix-accounts.cf:\d+"):
            notify_change(mailstack.dms_dir)
        assert imap_login(mailstack.info, f"gina@{d}", "pw")
    finally:
        path.write_text(good)


def test_quota_is_visible_and_enforced(mailstack: MailStack) -> None:
    d = unique_domain()
    hana = f"hana@{d}"
    mailstack.set(accounts={hana: "pw"}, quotas={hana: "100k"})
    conn = imaplib.IMAP4(mailstack.info.host, mailstack.info.ports.imap, timeout=10)
    conn.login(hana, "pw")
    typ, data = conn.getquotaroot("INBOX")
    conn.logout()
    assert typ == "OK" and b"STORAGE 0 100" in data[1][0]
    big = make_message(new_marker(), body="x" * 150_000)
    with pytest.raises(smtplib.SMTPDataError) as exc:
        lmtp_deliver(mailstack.info, [hana], big)
    assert exc.value.smtp_code == 552


def test_submission_requires_starttls_and_auth(mailstack: MailStack) -> None:
    require_postfix(mailstack.info)
    info = mailstack.info
    d = unique_domain()
    ivy = f"ivy@{d}"
    mailstack.set(accounts={ivy: "pw-ivy"})
    with smtplib.SMTP(info.host, info.ports.submission, timeout=10) as s:
        s.ehlo()
        assert not s.has_extn("auth")  # AUTH only after STARTTLS
        code, _ = s.mail("ivy@" + d)
        assert code == 530  # must issue STARTTLS first
    with smtplib.SMTP(info.host, info.ports.submission, timeout=10) as s:
        s.starttls(context=tls_context(info))
        s.ehlo()
        assert s.has_extn("auth")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail(ivy, [ivy], make_message(new_marker()))  # no AUTH
    with smtplib.SMTP(info.host, info.ports.submission, timeout=10) as s:
        s.starttls(context=tls_context(info))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(ivy, "wrong")
    m = new_marker()
    assert submit(info, ivy, "pw-ivy", [ivy], make_message(m)) == {}
    assert wait_for_message(info, ivy, "pw-ivy", m) is not None


def test_plain_smtp_offers_starttls_without_auth_and_refuses_relay(mailstack: MailStack) -> None:
    require_postfix(mailstack.info)
    info = mailstack.info
    with smtplib.SMTP(info.host, info.ports.smtp, timeout=10) as s:
        s.ehlo()
        assert s.has_extn("starttls") and not s.has_extn("auth")
        s.starttls(context=tls_context(info))
        s.ehlo()
        assert not s.has_extn("auth")
        s.mail("x@sender.test")
        code, msg = s.rcpt("someone@example.com")
        assert code == 554 and b"Relay access denied" in msg


def test_ca_file_verifies_imaps_by_ip(mailstack: MailStack) -> None:
    info = mailstack.info
    ctx = ssl.create_default_context(cafile=str(info.ca_file))
    with socket.create_connection((info.host, info.ports.imaps), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=info.host) as tls:
        assert tls.recv(100).startswith(b"* OK")


def test_up_is_idempotent_and_status_reports(mailstack: MailStack) -> None:
    sb = mailstack.sandbox
    t0 = time.monotonic()
    again = sb.up()
    assert time.monotonic() - t0 < 0.5
    assert again.ports == mailstack.info.ports and again.dovecot_pid == mailstack.info.dovecot_pid
    later = Sandbox.from_state(sb.state_dir)  # as a later process would see it
    assert later is not None
    st = later.status()
    assert st.up and st.dms_dir == mailstack.dms_dir and st.ca_file == mailstack.info.ca_file
    assert st.pids["dovecot"] == mailstack.info.dovecot_pid
    if mailstack.postfix:
        assert st.running == {"dovecot": True, "postfix": True}
    else:
        assert "root" in (st.postfix_disabled_reason or "")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        others = free_ports(4)
        (tmp_path / "dms").mkdir()
        base = Path(tempfile.mkdtemp(prefix="mailctl-port-test-", dir="/tmp"))
        os.chmod(base, 0o755)
        sb = Sandbox(base / "state", tmp_path / "dms",
                     Ports(others[0], others[1], busy, others[2], others[3]))
        try:
            with pytest.raises(SandboxError, match=f"imap port 127.0.0.1:{busy} is not available"):
                sb.up()
            assert not sb.status().any_running
        finally:
            sb.down(purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _tree(pids: list[int]) -> list[procs.Proc]:
    out = [p for p in (procs.proc(pid) for pid in pids) if p]
    return out + [c for p in out for c in procs.children(p.pid)]


def test_down_stops_every_process_of_the_sandbox_and_only_those(
    mailstack_factory, mailstack: MailStack
) -> None:
    doomed = mailstack_factory()
    write_dms(doomed.dms_dir, accounts={"kim@down.test": "pw"})
    doomed.sandbox.reload()
    assert imap_login(doomed.info, "kim@down.test", "pw")  # spawns auth, imap, ...
    tree = _tree([p for p in (doomed.info.dovecot_pid, doomed.info.postfix_pid) if p])
    assert len(tree) > 4
    neighbour = _tree([p for p in (mailstack.info.dovecot_pid, mailstack.info.postfix_pid) if p])
    t0 = time.monotonic()
    doomed.sandbox.down()
    down_s = time.monotonic() - t0
    assert [p.pid for p in tree if procs.alive(p)] == []
    assert all(procs.alive(p) for p in neighbour[:2])  # the other sandbox's masters
    with pytest.raises(OSError):
        socket.create_connection((doomed.info.host, doomed.info.ports.imap), timeout=1)
    st = doomed.sandbox.status()
    assert not st.any_running and all(v is None for v in st.pids.values())
    assert st.ports == doomed.info.ports  # still known after down
    assert not (doomed.dms_dir / MARKER_NAME).exists()
    assert (doomed.sandbox.state_dir / "mail").is_dir()  # mail kept without purge
    assert imap_login(mailstack.info, *_any_account(mailstack)) or not mailstack.accounts
    doomed.sandbox.down()  # idempotent
    assert down_s < 5


def _any_account(stack: MailStack) -> tuple[str, str]:
    return next(iter(stack.accounts.items()), ("none@none.test", "x"))


def test_two_sandboxes_side_by_side(mailstack_factory) -> None:
    one = mailstack_factory()
    two = mailstack_factory(implicit_self_aliases=True)
    assert one.info.ports != two.info.ports
    one.set(accounts={"same@side.test": "pw-one"})
    two.set(accounts={"same@side.test": "pw-two", "box@side.test": "pw-box"},
            virtual={"@side.test": "box@side.test"})
    assert imap_login(one.info, "same@side.test", "pw-one")
    assert not imap_login(one.info, "same@side.test", "pw-two")
    assert imap_login(two.info, "same@side.test", "pw-two")
    m = new_marker()
    if one.postfix:
        send_smtp(one.info, "x@sender.test", ["same@side.test"], make_message(m))
        send_smtp(two.info, "x@sender.test", ["same@side.test"], make_message(m))
        assert wait_for_message(one.info, "same@side.test", "pw-one", m) is not None
        # implicit_self_aliases: the account keeps its mail despite the catch-all
        assert wait_for_message(two.info, "same@side.test", "pw-two", m) is not None
        assert count_messages(two.info, "box@side.test", "pw-box", m) == 0


def test_dovecot_only_sandbox(mailstack_factory) -> None:
    """What a non-root user gets (here forced with with_postfix=False)."""
    stack = mailstack_factory(with_postfix=False)
    assert not stack.info.postfix and stack.info.postfix_disabled_reason
    stack.set(accounts={"lee@solo.test": "pw"})
    m = new_marker()
    assert lmtp_deliver(stack.info, ["lee@solo.test"], make_message(m)) == {}
    assert wait_for_message(stack.info, "lee@solo.test", "pw", m) is not None
    st = stack.sandbox.status()
    assert st.up and st.running == {"dovecot": True}


def test_down_never_signals_a_pid_that_is_not_the_sandboxs(tmp_path: Path) -> None:
    """A stale state file whose pids now belong to someone else (pid reuse)."""
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        fake = Sandbox(tmp_path / "state", tmp_path, Ports(*free_ports(5)))
        info = SandboxInfo(
            state_dir=fake.state_dir, dms_dir=tmp_path, host="127.0.0.1",
            ports=fake.requested_ports or Ports(1, 2, 3, 4, 5), ca_file=tmp_path / "ca",
            lmtp_socket=tmp_path / "lmtp", log_dir=tmp_path, postfix=True,
            dovecot_pid=stranger.pid, postfix_pid=stranger.pid)
        fake.state_dir.mkdir()
        save_info(info)
        (fake.state_dir / "run").mkdir()
        (fake.state_dir / "run" / "master.pid").write_text(f"{stranger.pid}\n")
        assert not fake.status().any_running
        fake.down()
        assert stranger.poll() is None  # still alive
    finally:
        stranger.kill()
        stranger.wait()


def test_purge_only_deletes_a_sandbox_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("x")
    Sandbox(tmp_path, tmp_path).down(purge=True)
    assert (tmp_path / "precious.txt").exists()


def test_unprivileged_user_gets_dovecot_only(tmp_path: Path) -> None:
    """The real non-root path, run as `nobody` in a child process."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to switch to an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="mailctl-nobody-", dir="/tmp"))
    try:
        (base / "dms").mkdir()
        write_dms(base / "dms", accounts={"nina@solo.test": "pw"})
        # The checkout may sit below a directory `nobody` cannot enter (a 0700
        # mktemp dir in CI): give the child its own copy of the package, and no
        # site-packages (-S) wherever the checkout is, since what the sandbox imports
        # must be the standard library only.
        import mailctl

        shutil.copytree(Path(mailctl.__file__).parent, base / "src" / "mailctl",
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(base, 0o755)
        shutil.chown(base, "nobody")
        for p in base.rglob("*"):
            shutil.chown(p, "nobody")
        ports = Ports(*free_ports(5))
        script = _NOBODY_SCRIPT.format(base=base, ports=tuple(ports.items()))
        proc = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             sys.executable, "-S", "-c", script],
            capture_output=True, text=True, timeout=60, cwd="/", check=False,
            env={**os.environ, "PYTHONPATH": str(base / "src")})
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result == {"postfix": False, "reason_mentions_root": True, "login": True,
                          "delivered": {}, "after_reload": True, "left": []}
    finally:
        shutil.rmtree(base, ignore_errors=True)


_NOBODY_SCRIPT = """
import imaplib, json, smtplib
from pathlib import Path
from mailctl.sandbox import Ports, Sandbox, procs
from mailctl.providers.dms.hashing import sha512_crypt
base = Path("{base}")
sb = Sandbox(base / "state", base / "dms", Ports(**dict({ports})))
info = sb.up()
out = {{"postfix": info.postfix, "reason_mentions_root": "root" in info.postfix_disabled_reason}}
def login(user, pw):
    m = imaplib.IMAP4(info.host, info.ports.imap, timeout=10)
    try:
        m.login(user, pw)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        m.logout()
out["login"] = login("nina@solo.test", "pw")
with smtplib.LMTP(str(info.lmtp_socket)) as lmtp:
    out["delivered"] = lmtp.sendmail("x@y.test", ["nina@solo.test"], b"Subject: hi\\r\\n\\r\\nhi")
accounts = base / "dms" / "postfix-accounts.cf"
accounts.write_text(accounts.read_text() + "omar@solo.test|" + sha512_crypt("pw2", 1000) + "\\n")
sb.reload()
out["after_reload"] = login("omar@solo.test", "pw2")
tree = [procs.proc(info.dovecot_pid)] + procs.children(info.dovecot_pid)
sb.down(purge=True)
out["left"] = [p.pid for p in tree if p and procs.alive(p)]
print(json.dumps(out))
"""
