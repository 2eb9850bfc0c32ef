"""migrate (many pairs in parallel) and the fetch daemon (LMTP delivery, exactly once)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mailctl.sync import fetch
from mailctl.sync.fetchd import cmd_fetch
from mailctl.sync.migrate import cmd_migrate
from tests.fixtures.mailstack import MailStack
from tests.sync.helpers import account, dump, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
T0 = 1_650_000_000


def test_migrate_many_pairs_in_parallel_and_resume(mailstack: MailStack, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    info = mailstack.info
    pairs = []
    for n in range(3):
        a, pa = account(mailstack, f"old{n}")
        b, pb = account(mailstack, f"new{n}")
        fill(info, a, pa, {"INBOX": [(message(700 + 10 * n + i), "(\\Seen)", T0)
                                     for i in range(4 + n)],
                           "Projects": [(message(790 + n), "($Keep)", T0)]})
        pairs.append((a, pa, b, pb))
    rows = ["src,dst,password1_file,password2_file,state"]
    for n, (a, pa, b, pb) in enumerate(pairs):
        rows.append(f"{url(info, a)},{url(info, b)},{pwfile(tmp_path, pa, f'a{n}')},"
                    f"{pwfile(tmp_path, pb, f'b{n}')},{tmp_path / f's{n}.db'}")
    rows.append(f"{url(info, 'ghost@nowhere.test')},{url(info, b)},"
                f"{pwfile(tmp_path, 'x-wrong-pw', 'g')},{tmp_path / 'b2'},{tmp_path / 'g.db'}")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("\n".join(rows) + "\n")
    assert cmd_migrate(accounts, 2, as_json=True) == 1  # the ghost account fails alone
    report = json.loads(capsys.readouterr().out)["accounts"]
    assert [r["exit"] for r in report] == [0, 0, 0, 3]
    assert [r["report"]["totals"]["copied"] for r in report[:3]] == [5, 6, 7]
    assert "login failed" in report[3]["error"] and "x-wrong-pw" not in json.dumps(report)
    for n, (_, _, b, pb) in enumerate(pairs):
        got = dump(info, b, pb)
        assert len(got["INBOX"]) == 4 + n and got["Projects"][0][1] == "$Keep"
    accounts.write_text("\n".join(rows[:-1]) + "\n")
    assert cmd_migrate(accounts, 2) == 0  # re-run: nothing left to copy
    out = capsys.readouterr().out
    assert "3 of 3 accounts migrated" in out


def _fetch_yaml(tmp: Path, lmtp: Path, accounts: list[dict[str, object]]) -> Path:
    import yaml

    p = tmp / "fetch.yaml"
    p.write_text(yaml.safe_dump({"deliver": {"lmtp": str(lmtp)}, "poll": 1,
                                 "state": str(tmp / "fetch.db"), "accounts": accounts}))
    return p


def test_fetch_delivers_exactly_once_keep_and_no_keep(
        mailstack: MailStack, mailstack_factory: Callable[..., MailStack], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    remote = mailstack_factory()
    r1, p1 = account(remote, "keepme")
    r2, p2 = account(remote, "takeme")
    local, lp = account(mailstack, "home")
    fill(remote.info, r1, p1, {"INBOX": [(message(800 + i), "()", T0) for i in range(3)]})
    fill(remote.info, r2, p2, {"INBOX": [(message(850 + i), "()", T0) for i in range(2)]})
    cfg = _fetch_yaml(tmp_path, mailstack.info.lmtp_socket, [
        {"src": url(remote.info, r1), "password_file": pwfile(tmp_path, p1, "p1"), "to": local,
         "keep": True},
        {"src": url(remote.info, r2), "password_file": pwfile(tmp_path, p2, "p2"), "to": local,
         "keep": False},
    ])
    assert cmd_fetch(cfg, once=True, as_json=True) == 0
    rep = json.loads(capsys.readouterr().out)["accounts"]
    assert [(r["delivered"], r["deleted"]) for r in rep] == [(3, 0), (2, 2)]
    assert len(dump(mailstack.info, local, lp)["INBOX"]) == 5
    assert len(dump(remote.info, r1, p1)["INBOX"]) == 3  # kept
    assert dump(remote.info, r2, p2)["INBOX"] == []  # taken
    # a restart: nothing is delivered twice; new mail is delivered once
    fill(remote.info, r1, p1, {"INBOX": [(message(899), "()", T0)]})
    assert cmd_fetch(cfg, once=True, as_json=True) == 0
    rep = json.loads(capsys.readouterr().out)["accounts"]
    assert [r["delivered"] for r in rep] == [1, 0] and rep[0]["skipped"] == 3
    inbox = dump(mailstack.info, local, lp)["INBOX"]
    assert len(inbox) == 6 and len({b for b, _, _ in inbox}) == 6


def test_fetch_delivery_error_keeps_the_message_and_reports(
        mailstack: MailStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, ps = account(mailstack, "far")
    fill(mailstack.info, src, ps, {"INBOX": [(message(900), "()", T0)]})
    cfg = _fetch_yaml(tmp_path, mailstack.info.lmtp_socket, [
        {"src": url(mailstack.info, src), "password_file": pwfile(tmp_path, ps), "keep": False,
         "to": "nobody@unknown-domain.test"}])
    assert cmd_fetch(cfg, once=True, as_json=True) == 1
    rep = json.loads(capsys.readouterr().out)["accounts"][0]
    assert rep["delivered"] == 0 and rep["errors"] and rep["deleted"] == 0
    assert len(dump(mailstack.info, src, ps)["INBOX"]) == 1  # not lost


def test_fetch_killed_after_delivery_before_the_record_does_not_deliver_twice(
        mailstack: MailStack, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The window between the local server's 250 and the commit: with `check:` the next
    pass finds the message in the local mailbox and records it instead of delivering it
    again; without `check:` it is delivered again and reported (at least once)."""
    info = mailstack.info
    far, pf = account(mailstack, "crashsrc")
    home, ph = account(mailstack, "crashhome")
    fill(info, far, pf, {"INBOX": [(message(960 + i), "()", T0) for i in range(3)]})
    acct = {"src": url(info, far), "password_file": pwfile(tmp_path, pf, "pf"), "to": home,
            "keep": False, "check": url(info, home),
            "check_password_file": pwfile(tmp_path, ph, "ph")}
    cfg = _fetch_yaml(tmp_path, info.lmtp_socket, [acct])
    real = fetch.Deliverer.deliver
    calls = []

    def dies_after_the_second_250(self: fetch.Deliverer, to: str, body: bytes) -> str | None:
        got = real(self, to, body)
        calls.append(body)
        if len(calls) == 2:
            raise SystemExit("killed")  # stands for kill -9 right after the 250
        return got

    monkeypatch.setattr(fetch.Deliverer, "deliver", dies_after_the_second_250)
    with pytest.raises(SystemExit):
        cmd_fetch(cfg, once=True, as_json=True)
    monkeypatch.undo()
    capsys.readouterr()
    assert len(dump(info, home, ph)["INBOX"]) == 2  # both arrived; one is recorded
    assert cmd_fetch(cfg, once=True, as_json=True) == 0
    rep = json.loads(capsys.readouterr().out)["accounts"][0]
    assert (rep["delivered"], rep["recovered"], rep["redelivered"]) == (1, 1, 0)
    inbox = dump(info, home, ph)["INBOX"]
    assert len(inbox) == 3 and len({b for b, _, _ in inbox}) == 3  # each exactly once
    assert dump(info, far, pf)["INBOX"] == []  # recovered ones are deleted at the source too
