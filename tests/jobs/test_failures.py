"""Failure kinds from servers' words (the real servers' cases are in test_queue.py; these
are the words of servers the suite does not run)."""

from __future__ import annotations

import pytest

from mailctl.jobs import failures
from mailctl.jobs.queue import QueueUrl, QueueUsageError
from mailctl.jobs.slots import parse_limit


@pytest.mark.parametrize(("words", "kind"), [
    ("a1 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", failures.AUTH),  # Gmail
    ("LOGIN failed.", failures.AUTH),  # Exchange
    ("APPEND to INBOX refused: a3 NO [OVERQUOTA] Quota exceeded", failures.QUOTA),
    ("a2 NO [LIMIT] Mailbox is full", failures.QUOTA),
    ("APPEND to INBOX refused: a4 NO [TOOBIG] Message too large", failures.REJECTED),
    ("APPEND to Sent refused: a5 NO Message rejected by policy", failures.REJECTED),
    ("imap://a@h:143: cannot connect (Connection refused)", failures.DOWN),
    ("* BYE [UNAVAILABLE] Server shutting down", failures.DOWN),
    ("something else entirely", failures.OTHER),
])
def test_kinds(words: str, kind: str) -> None:
    assert failures.classify(words) == kind
    assert failures.retryable(kind) == (kind == failures.DOWN)
    assert failures.ADVICE[kind]


def test_queue_url_masks_its_password() -> None:
    url = QueueUrl("postgresql://mover:s3cr%40t@db.example:6432/mail?sslmode=require")
    assert url.display() == "postgresql://mover:***@db.example:6432/mail"
    assert "s3cr@t" in url.conninfo() and "sslmode=require" in url.conninfo()
    for bad in ("http://db/x", "postgresql:///x", "postgresql://h/", "postgresql://u:p@h:0x/d"):
        with pytest.raises(QueueUsageError) as exc:
            QueueUrl(bad)
        assert "p@h" not in str(exc.value)


def test_host_limits() -> None:
    assert parse_limit("IMAP.example=10") == ("imap.example", 10)
    assert parse_limit("127.0.0.1:143=3") == ("127.0.0.1:143", 3)
    for bad in ("x", "x=0", "x=10001", "=3", "x=three"):
        with pytest.raises(ValueError, match="expected"):
            parse_limit(bad)
