"""Quotas a provider cannot store are refused by `validate`, with file:line and a hint,
before anything reaches the provider; the largest one each provider accepts still works.

The limits are data on each provider's capabilities (`QuotaLimits`); on the real
sandbox the largest dms quota is shown to deliver over LMTP and SMTP, and the first
value past it never reaches the sandbox's files."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from mailctl.providers.base import DOVECOT_QUOTA
from mailctl.providers.mailcow import QUOTA as MAILCOW_QUOTA
from mailctl.providers.stalwart.provider import QUOTA as STALWART_QUOTA
from tests.fixtures.cli import run_cli, snapshot, write_config
from tests.fixtures.mailstack import (
    MailStack,
    imap_login,
    lmtp_deliver,
    make_message,
    new_marker,
    send_smtp,
    unique_domain,
    wait_for_message,
)

DMS_MAX = DOVECOT_QUOTA.max_bytes or 0
assert DMS_MAX == 922337203685477580  # (2^63-1) // 10: Dovecot's grace must not overflow
MAILCOW_MAX = MAILCOW_QUOTA.max_bytes or 0
assert MAILCOW_MAX == 87960930222 << 20  # whole MiB below (2^63-1) // 100
assert STALWART_QUOTA.max_bytes == 2**53 - 1

PROVIDERS = {
    "dms": "type: dms\n    path: ./dms",
    "mailu": "type: mailu\n    url: http://127.0.0.1:9\n    api_token: ${env:TOKEN}",
    "mailcow": "type: mailcow\n    url: http://127.0.0.1:9\n    api_key: ${env:TOKEN}",
    "stalwart": "type: stalwart\n    url: http://127.0.0.1:9\n    api_key: ${env:TOKEN}",
    "migadu": "type: migadu\n    url: http://127.0.0.1:9\n    user: a@example.org\n"
              "    api_key: ${env:TOKEN}",
}
LIMITS = {"dms": DMS_MAX, "mailu": DMS_MAX, "mailcow": MAILCOW_MAX,
          "stalwart": 2**53 - 1}


def config(kind: str, mailbox_quota: object, domain_quota: object = None) -> str:
    dq = f"    quota: {domain_quota}\n" if domain_quota is not None else ""
    return (f"providers:\n  p:\n    {PROVIDERS[kind]}\ndomains:\n  example.org:\n"
            f"    provider: p\n{dq}    mailboxes:\n      - local_part: alice\n"
            f"        quota: {mailbox_quota}\n      - local_part: bob\n")


def line_of(text: str, start: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def validate(tmp_path: Path, text: str, *cmd: str) -> tuple[int, str]:
    write_config(tmp_path, text)
    r = run_cli(*(cmd or ("validate",)), cwd=tmp_path, env={"TOKEN": "t0ken-value-123"})
    assert "Traceback" not in r.all
    return r.code, r.all


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_the_largest_quota_validates_and_the_next_is_refused(tmp_path: Path, kind: str) -> None:
    top = LIMITS[kind]
    code, out = validate(tmp_path, config(kind, top))
    assert code == 0, out
    step = MAILCOW_QUOTA.step if kind == "mailcow" else 1
    text = config(kind, top + step)
    code, out = validate(tmp_path, text)
    assert code == 1, out
    assert f"mailctl.yaml:{line_of(text, '        quota:')}:16: error: quota " in out
    assert "is more than provider 'p' can store (at domains.example.org.mailboxes[0].quota)" \
        in out
    assert "hint: at most " in out and "0 means no limit" in out


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_the_reported_huge_quota_is_refused_everywhere(tmp_path: Path, kind: str) -> None:
    text = config(kind, "1G", domain_quota="99999999999999999999999T")
    code, out = validate(tmp_path, text)
    assert code == 1, out
    assert (f"mailctl.yaml:{line_of(text, '    quota:')}:12: error: quota "
            "99999999999999999999999T is more than provider 'p' can store "
            "(at domains.example.org.quota)") in out
    assert out.count("error:") == 1  # once, at the domain, not again for each mailbox
    for cmd in ("plan", "apply", "status"):
        code, again = validate(tmp_path, text, cmd)
        assert code == 1 and "99999999999999999999999T is more than" in again, (cmd, again)
    assert not (tmp_path / "dms").exists()  # nothing written, nothing contacted


def test_dms_hint_names_the_limit_and_the_reason(tmp_path: Path) -> None:
    _, out = validate(tmp_path, config("dms", DMS_MAX + 1))
    assert ("error: quota 922337203685477581 bytes is more than provider 'p' can store"
            in out)
    assert ("hint: at most 922337203685477580 bytes (about 819 PiB): Dovecot keeps a quota "
            "as a signed 64-bit byte count") in out


@pytest.mark.parametrize(("quota", "hint"), [
    ("1000000000", "use 953M or 954M"),
    ("100k", "use 1M"),
    ("1536k", "use 1M or 2M"),
    (str((1 << 30) + 1), "use 1G or 1025M"),
])
def test_mailcow_quota_must_be_whole_mib_at_validate(
    tmp_path: Path, quota: str, hint: str
) -> None:
    code, out = validate(tmp_path, config("mailcow", quota))
    assert code == 1, out
    assert "is not a whole number of 1M, as provider 'p' needs" in out
    assert f"hint: {hint}: mailcow's API takes quotas as a whole number of MiB" in out
    code, out = validate(tmp_path, config("mailcow", quota), "plan")
    assert code == 1 and hint in out  # refused before any call to mailcow


def test_migadu_has_no_quota_to_limit(tmp_path: Path) -> None:
    code, out = validate(tmp_path, config("migadu", "99999999999999999999999T"))
    assert code == 1
    assert "provider 'p' does not support quotas (`quota`)" in out
    assert "more than" not in out  # one clear error, not two


def test_largest_dms_quota_delivers_on_the_sandbox(mailstack: MailStack, tmp_path: Path) -> None:
    """The largest quota validate accepts is one the sandbox's Dovecot takes: LMTP and
    SMTP deliveries succeed and the mailbox shows the limit; the next value never
    reaches the sandbox's files."""
    dom = unique_domain("quota")
    text = (f"providers:\n  sandbox: {{type: dms, path: {mailstack.dms_dir}}}\n"
            f"domains:\n  {dom}:\n    provider: sandbox\n    mailboxes:\n"
            f"      - local_part: big\n        quota: {DMS_MAX}\n")
    write_config(tmp_path, text)
    r = run_cli("apply", "--secrets-out", "pw.tsv", cwd=tmp_path)
    assert r.code == 0, r.all
    big = f"big@{dom}"
    password = dict(line.split("\t") for line in
                    (tmp_path / "pw.tsv").read_text().splitlines())[big]
    quotas = (mailstack.dms_dir / "dovecot-quotas.cf").read_text()
    assert f"{big}:{DMS_MAX}B\n" in quotas
    assert imap_login(mailstack.info, big, password)

    marker = new_marker()
    assert lmtp_deliver(mailstack.info, [big], make_message(marker)) == {}
    assert wait_for_message(mailstack.info, big, password, marker) is not None
    if mailstack.postfix:
        marker = new_marker()
        assert send_smtp(mailstack.info, "x@example.test", [big], make_message(marker)) == {}
        assert wait_for_message(mailstack.info, big, password, marker) is not None

    before = snapshot(mailstack.dms_dir)
    write_config(tmp_path, text.replace(f"quota: {DMS_MAX}", f"quota: {DMS_MAX + 1}"))
    r = run_cli("apply", "--reconcile", cwd=tmp_path)
    assert r.code == 1, r.all
    assert "922337203685477581 bytes is more than provider 'sandbox' can store" in r.err
    assert snapshot(mailstack.dms_dir) == before
    marker = new_marker()
    assert lmtp_deliver(mailstack.info, [big], make_message(marker)) == {}


def test_why_the_limit_exists_on_the_sandbox(mailstack: MailStack) -> None:
    """What validate protects against: the sandbox's Dovecot, handed the reported quota
    directly (not through mailctl), refuses every delivery with a temporary error."""
    dom = unique_domain("quota")
    user = f"huge@{dom}"
    mailstack.set(accounts={user: "pw"}, quotas={user: "99999999999999999999999T"})
    with pytest.raises(smtplib.SMTPDataError) as exc:
        lmtp_deliver(mailstack.info, [user], make_message(new_marker()))
    assert exc.value.smtp_code == 451
    mailstack.set(quotas={user: f"{DMS_MAX}B"})
    assert lmtp_deliver(mailstack.info, [user], make_message(new_marker())) == {}


def test_dms_refuses_an_oversized_quota_at_apply_too(tmp_path: Path) -> None:
    """A library caller that skips validation still cannot write it."""
    from mailctl.model import Kind, Mailbox
    from mailctl.providers.dms.provider import DmsProvider, DmsSettings
    from mailctl.provision.changes import Action, Change, Status

    (tmp_path / "dms").mkdir()
    prov = DmsProvider("local", DmsSettings(path="dms"), tmp_path)
    mb = Mailbox("a@example.org", quota=DMS_MAX + 1, password_hash="{SHA512-CRYPT}$6$x$y")
    [out] = prov.apply([Change(Action.CREATE, Kind.MAILBOX, "example.org", mb.key, "local",
                               desired=mb)])
    assert out.status is Status.FAILED
    assert "is more than provider 'local' can store" in (out.error or "")
    assert not (tmp_path / "dms" / "dovecot-quotas.cf").exists()
    assert not (tmp_path / "dms" / "postfix-accounts.cf").exists()
