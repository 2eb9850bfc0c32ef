"""The roundtrip engine against real Dovecot + Postfix: passes, and fails at each stage."""

from __future__ import annotations

import imaplib
import json
import threading
import time
from typing import Any

import pytest

from mailctl.probe import imap
from mailctl.probe.engine import ProbeResult, run_route
from mailctl.probe.metrics import ProbeMetrics
from tests.fixtures.mailstack import (
    MailStack,
    free_ports,
    lmtp_deliver,
    make_message,
    new_marker,
    require_postfix,
)
from tests.probe.helpers import imap_session, mailbox_state, make_route, new_account

pytestmark = pytest.mark.mailstack
SWEEP = 900.0


def assert_no_secret(res: ProbeResult, *secrets: str) -> None:
    m = ProbeMetrics()
    m.record(res)
    text = json.dumps(res.as_dict()) + m.render().decode() + res.summary()
    for s in secrets:
        assert s not in text


def test_submission_to_imaps_roundtrip_passes_and_leaves_the_mailbox_empty(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_OK", pw)
    route = make_route(mailstack.info, user, "PROBE_PW_OK")
    results = [run_route(route, SWEEP) for _ in range(3)]
    for res in results:
        assert res.ok, res.message
        assert res.stage is None and res.folder == "INBOX"
        assert res.send_seconds is not None and res.delivery_seconds is not None
        assert 0 < res.send_seconds < 5 and 0 < res.delivery_seconds < 5
        assert res.roundtrip_seconds == pytest.approx(res.send_seconds + res.delivery_seconds)
        assert res.idle  # Dovecot offers IDLE after login
        assert res.leftovers == 0
    # a loopback delivery is milliseconds, not a poll interval (poll_interval is 1 s)
    assert min(r.roundtrip_seconds or 9 for r in results) < 0.5
    assert mailbox_state(mailstack.info, user, pw) == {}


def test_plain_smtp_to_imap_starttls_roundtrip_passes(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_PLAIN", pw)
    res = run_route(make_route(mailstack.info, user, "PROBE_PW_PLAIN", submission=False,
                               imaps=False), SWEEP)
    assert res.ok, res.message
    assert mailbox_state(mailstack.info, user, pw) == {}


def test_wrong_imap_password_is_an_auth_failure_without_the_password(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, _ = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_BAD", "Wrong-Password-42")
    res = run_route(make_route(mailstack.info, user, "PROBE_PW_BAD"), SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "auth", "imap")
    assert "Wrong-Password-42" not in res.message
    assert_no_secret(res, "Wrong-Password-42")


def test_wrong_smtp_password_is_an_auth_failure_with_the_smtp_code(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_IMAP", pw)
    monkeypatch.setenv("PROBE_PW_SMTP_BAD", "Not-The-Password-7")
    route = make_route(mailstack.info, user, "PROBE_PW_IMAP",
                       smtp={"password": "${env:PROBE_PW_SMTP_BAD}"})
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.service, res.smtp_code) == (False, "auth", "smtp", 535)
    assert_no_secret(res, "Not-The-Password-7", pw)


def test_recipient_postfix_rejects_is_a_send_failure_with_its_code(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_RCPT", pw)
    domain = user.split("@")[1]
    route = make_route(mailstack.info, user, "PROBE_PW_RCPT", recipient=f"nobody@{domain}",
                       submission=False, timeout=3)  # port 25 checks recipients at RCPT
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "send", "smtp")
    assert res.smtp_code is not None and 500 <= res.smtp_code < 600
    assert f"nobody@{domain}" in res.message


@pytest.mark.parametrize("leg", ["smtp", "imap"])
def test_unreachable_port_is_a_connect_failure(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch, leg: str
) -> None:
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_PORT", pw)
    closed = free_ports(1)[0]
    overrides: dict[str, Any] = {leg: {"port": closed}}
    route = make_route(mailstack.info, user, "PROBE_PW_PORT", **overrides)
    t0 = time.monotonic()
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "connect", leg)
    assert time.monotonic() - t0 < 5


def test_untrusted_certificate_is_a_tls_failure(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_TLS", pw)
    for imaps in (True, False):  # handshake on connect, and after STARTTLS
        route = make_route(mailstack.info, user, "PROBE_PW_TLS", imaps=imaps,
                           imap={"ca_file": None})  # system store: sandbox CA unknown
        res = run_route(route, SWEEP)
        assert (res.stage, res.service) == ("tls", "imap"), res.message
        assert "certificate" in res.message.lower()


def test_missing_mailbox_is_an_imap_failure(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, pw = new_account(mailstack)
    monkeypatch.setenv("PROBE_PW_MBOX", pw)
    res = run_route(make_route(mailstack.info, user, "PROBE_PW_MBOX",
                               imap={"mailbox": "NoSuchFolder"}), SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "imap", "imap")
    assert "NoSuchFolder" in res.message


def test_mail_that_goes_elsewhere_is_a_receive_timeout(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    other, _ = new_account(mailstack, "other-pw-123")
    monkeypatch.setenv("PROBE_PW_TO", pw)
    route = make_route(mailstack.info, user, "PROBE_PW_TO", recipient=other, timeout=1.0)
    t0 = time.monotonic()
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "receive_timeout", "imap")
    assert res.send_seconds is not None and res.delivery_seconds is None
    assert 1.0 <= time.monotonic() - t0 < 4


def test_message_found_in_a_spam_folder_is_reported_as_spam_and_deleted(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No spam filter in the sandbox: the route watches "Probe" and names INBOX,
    # where Postfix really delivers, as its spam folder.
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    with imap_session(mailstack.info, user, pw) as conn:
        imap.check(*conn.create("Probe"), "CREATE")
    monkeypatch.setenv("PROBE_PW_SPAM", pw)
    route = make_route(mailstack.info, user, "PROBE_PW_SPAM", timeout=5,
                       imap={"mailbox": "Probe", "spam_folders": ["Junk", "INBOX"],
                             "poll_interval": 0.2})
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.folder) == (False, "spam", "INBOX")
    assert "landed in spam folder INBOX" in res.message
    assert res.delivery_seconds is not None and res.delivery_seconds < 2
    assert mailbox_state(mailstack.info, user, pw) == {}


def _append(conn: imaplib.IMAP4, mid: str, headers: str = "", flags: str = "") -> None:
    msg = (f"From: a@b.test\r\nTo: c@d.test\r\nSubject: keep\r\nMessage-ID: {mid}\r\n"
           f"{headers}\r\nbody\r\n").encode()
    imap.check(*conn.append("INBOX", flags or None, None, msg), "APPEND")


def test_cleanup_touches_only_probe_mail_and_sweeps_old_leftovers_by_sent_header(
    mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack)
    now = time.time()
    with imap_session(mailstack.info, user, pw) as conn:
        _append(conn, "<deleted@user>", flags="(\\Deleted \\Seen)")  # user's, not expunged
        _append(conn, "<plain@user>", flags="(\\Flagged)")
        sent = "X-Mailctl-Probe-Sent"
        _append(conn, "<old@probe>", f"X-Mailctl-Probe: a1\r\n{sent}: {now - 7200}\r\n")
        _append(conn, "<young@probe>", f"X-Mailctl-Probe: a2\r\n{sent}: {now - 60}\r\n")
        _append(conn, "<nosent@probe>", "X-Mailctl-Probe: a3\r\n")  # age unknown: kept
    before = mailbox_state(mailstack.info, user, pw)
    monkeypatch.setenv("PROBE_PW_CLEAN", pw)
    res = run_route(make_route(mailstack.info, user, "PROBE_PW_CLEAN"), sweep_after=3600)
    assert res.ok, res.message
    assert (res.leftovers, res.swept) == (3, 1)
    after = mailbox_state(mailstack.info, user, pw)
    expected = {k: v for k, v in before.items() if k != "<old@probe>"}
    assert after == expected
    assert after["<deleted@user>"] == {"\\Deleted", "\\Seen"}


def test_idle_wakes_up_on_delivery_and_leaves_the_connection_usable(
    mailstack: MailStack,
) -> None:
    user, pw = new_account(mailstack)
    conn = imap.PlainIMAP(mailstack.info.host, mailstack.info.ports.imap, timeout=10)
    try:
        conn.login(user, pw)
        imap.refresh_capabilities(conn)
        assert imap.has_idle(conn) and "UIDPLUS" in conn.capabilities
        imap.check(*conn.select("INBOX"), "SELECT")
        idler = imap.Idle(conn)
        idler.start()
        assert idler.wait(0.3) is False  # nothing yet: the timeout returns
        marker = new_marker()
        timer = threading.Timer(0.1, lmtp_deliver, (mailstack.info, [user],
                                                    make_message(marker)))
        t0 = time.monotonic()
        timer.start()
        assert idler.wait(5) is True
        assert time.monotonic() - t0 < 2  # Dovecot batches notifications for 0.5 s
        assert idler.done() is True
        uids = imap.search_header(conn, "X-Mailctl-Test", marker)
        assert len(uids) == 1
        imap.delete_uids(conn, uids)
        assert imap.search_header(conn, "X-Mailctl-Test", marker) == []
    finally:
        conn.logout()


def test_stopped_dovecot_is_a_connect_failure(
    fresh_mailstack: MailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, pw = new_account(fresh_mailstack)
    monkeypatch.setenv("PROBE_PW_DOWN", pw)
    route = make_route(fresh_mailstack.info, user, "PROBE_PW_DOWN")
    assert run_route(route, SWEEP).stage in (None, "send")  # up: gets past connect
    fresh_mailstack.sandbox.down()
    res = run_route(route, SWEEP)
    assert (res.ok, res.stage, res.service) == (False, "connect", "imap")
    assert_no_secret(res, pw)
