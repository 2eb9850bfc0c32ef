"""Bad command lines for the sync commands, through the real `mailctl` in a subprocess.

Each must end with exit 64 and one line `error: ... (expected ...)` on stderr, no
traceback, and nothing created: no backup directory, no state file, no lock. Both
entries are driven: `mailctl backup ...` takes the lean argparse path
(mailctl.sync.fastcli), `mailctl -v backup ...` the typer commands (cli/sync.py).
No server is needed: every one of these is refused before a connection is made.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fixtures.cli import Result, run_cli

PW = "s3cret-password-never-shown"


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _cmd(tmp: Path, argv: list[str]) -> list[str]:
    return [a.replace("TMP", str(tmp)) for a in argv]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text(PW + "\n")
    (tmp_path / "binary.pw").write_bytes(b"\xff\xfe\x00secret\n")
    (tmp_path / "nul.pw").write_bytes(b"abc\x00def\n")
    (tmp_path / "empty.pw").write_text("")
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "cur").mkdir()
    return tmp_path


BAD = [
    pytest.param(["backup", "imaps://", "TMP/new", "--password-file", "TMP/pw"],
                 "no user or host", id="imaps-empty"),
    pytest.param(["backup", "imap://u@h:notaport", "TMP/new", "--password-file", "TMP/pw"],
                 "port 'notaport' is not a number (expected 1-65535)", id="port-text"),
    pytest.param(["backup", "imap://u@h:99999", "TMP/new", "--password-file", "TMP/pw"],
                 "port 99999 is out of range (expected 1-65535)", id="port-range"),
    pytest.param(["backup", "ftp://u@h", "TMP/new", "--password-file", "TMP/pw"],
                 "unknown form (expected imap://", id="ftp"),
    pytest.param(["backup", f"imap://u:{PW}@h", "TMP/new"], "a password in the URL",
                 id="password-in-url"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--jobs", "0", "--state", "TMP/s.db"],
                 "--jobs", id="jobs-0"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--jobs", "-3", "--state", "TMP/s.db"],
                 "--jobs", id="jobs-negative"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--delete", "--max-delete-share", "7",
                  "--state", "TMP/s.db"], "--max-delete-share", id="share-7"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--map", "Lists", "--state", "TMP/s.db"],
                 "--map 'Lists' (expected OLD=NEW", id="map"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/binary.pw"],
                 "NUL bytes (expected UTF-8 text)", id="password-binary"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/nul.pw"],
                 "NUL bytes (expected UTF-8 text)", id="password-nul"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/empty.pw"],
                 "is empty (expected the password on its first line)", id="password-empty"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/missing.pw"],
                 "No such file or directory (expected a readable file)", id="password-missing"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/adir"],
                 "is a directory", id="password-dir"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/fifo"],
                 "not a regular file", id="password-fifo"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-ref", "${env:MAILCTL_NOPE_X}"],
                 "expected a resolvable secret reference", id="password-ref"),
    pytest.param(["backup", "imap://u@h", "TMP/no/such/new", "--password-file", "TMP/pw"],
                 "does not exist (expected an existing parent directory)", id="dir-parent"),
    pytest.param(["backup", "imap://u@h", "TMP/pw", "--password-file", "TMP/pw"],
                 "is not a directory", id="dir-is-file"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/pw",
                  "--ca-file", "TMP/missing.pem"], "--ca-file", id="ca-file"),
    pytest.param(["restore", "TMP/missing", "imap://u@h", "--password-file", "TMP/pw"],
                 "no such directory (expected a Maildir tree)", id="restore-missing"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--state", "TMP/no/dir/s.db"],
                 "its directory does not exist", id="state-dir"),
    pytest.param(["sync", "imap://a@h", "imap://b@h", "--password1-file", "TMP/pw",
                  "--password2-file", "TMP/pw", "--state", "TMP/adir"],
                 "is not a regular file", id="state-dir-given"),
    pytest.param(["verify", "maildir:TMP/bk", "maildir:TMP/nothere"],
                 "no such directory", id="verify-missing"),
    pytest.param(["backup", "imap://u@h", "TMP/new", "--password-file", "TMP/pw", "--jobs",
                  "x"], "--jobs", id="jobs-text"),
]


def _assert_usage(r: Result, text: str, one_line: bool) -> None:
    assert r.code == 64, (r.code, r.all)
    assert "Traceback" not in r.all and PW not in r.all
    assert text in r.err, r.err
    if one_line:
        assert r.err.count("\n") == 1 and r.err.startswith("error: "), r.err
        assert "expected" in r.err


@pytest.mark.parametrize(("argv", "text"), BAD)
def test_lean_entry_refuses_bad_usage_before_any_side_effect(home: Path, argv: list[str],
                                                             text: str) -> None:
    before = _tree(home)
    t = time.monotonic()
    r = run_cli(*_cmd(home, argv), cwd=home, env={"XDG_STATE_HOME": str(home / "xdg")},
                timeout=20)
    assert time.monotonic() - t < 10  # a FIFO must not block
    _assert_usage(r, text, one_line=True)
    assert _tree(home) == before  # no directory, state file or lock


@pytest.mark.parametrize(("argv", "text"), BAD)
def test_typer_entry_refuses_the_same(home: Path, argv: list[str], text: str) -> None:
    """`mailctl -v CMD` goes through typer: same exit code, same checks. Values typer
    itself refuses (a range, a non-number) are reported in click's words."""
    before = _tree(home)
    r = run_cli("-v", *_cmd(home, argv), cwd=home, env={"XDG_STATE_HOME": str(home / "xdg")},
                timeout=20)
    ranges = {"--jobs", "--max-delete-share"}
    _assert_usage(r, text, one_line=text not in ranges)
    assert _tree(home) == before


def test_python_m_mailctl_sync_entry_agrees(home: Path) -> None:
    """The entry cron jobs and migrate use: `python -m mailctl.sync`."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mailctl.sync", "backup", "imap://u@h:0",
                        str(home / "new"), "--password-file", str(home / "pw")],
                       capture_output=True, text=True, cwd=home, timeout=20)
    assert r.returncode == 64 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert not (home / "new").exists()


ACCOUNTS_BAD = [
    pytest.param("missing.csv", None, "No such file or directory (expected a readable file)",
                 id="missing"),
    pytest.param("a.csv", "src,dst,password1_file\nimap://a@h,imap://b@h:99999,pw\n",
                 "a.csv:2: dst: 'imap://b@h:99999': port 99999 is out of range", id="csv-url"),
    pytest.param("a.csv", "# pairs\nsrc,dst,password1_file,password2_file\n\n"
                 "imap://a@h,imap://b@h,pw,pw\nimap://a@h,imap://b@h,pw,nope.pw\n",
                 "a.csv:5: password2_file", id="csv-password-file"),
    pytest.param("a.csv", "src,dst,colour\nimap://a@h,imap://b@h,red\n",
                 "a.csv:2: unknown keys colour", id="csv-unknown"),
    pytest.param("a.csv", "src,dst\nimap://a@h,imap://b@h,x,y\n",
                 "a.csv:2: 4 fields, the header has 2", id="csv-fields"),
    pytest.param("a.csv", "src,dst\n", "no account pairs", id="csv-empty"),
    pytest.param("a.csv", "src,dst\n\xff\n", "not UTF-8", id="csv-binary"),
    pytest.param("a.yaml", "accounts:\n  - src: imap://a@h\n    dst: [oops\n",
                 "a.yaml:4:1: expected ',' or ']'", id="yaml-syntax"),
    pytest.param("a.yaml", "- &x {src: 'imap://a@h', dst: 'imap://b@h'}\n- *x\n",
                 "YAML aliases are not supported", id="yaml-alias"),
    pytest.param("a.yaml", "- src: imap://a@h\n  dst: imap://b@h\n  password1_file: pw\n",
                 "a.yaml:1: dst needs a password (expected password2_file or password2_ref)",
                 id="yaml-password"),
]


@pytest.mark.parametrize(("name", "text", "message"), ACCOUNTS_BAD)
def test_migrate_refuses_a_bad_accounts_file_naming_the_line(
        home: Path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (home / name).write_bytes(text.encode("latin-1"))
    before = _tree(home)
    r = run_cli("migrate", "--accounts", home / name, cwd=home, timeout=20)
    _assert_usage(r, message, one_line=True)
    assert _tree(home) == before


def test_migrate_jobs_range(home: Path) -> None:
    (home / "a.csv").write_text("src,dst,password1_file,password2_file\n"
                                "imap://a@h,imap://b@h,pw,pw\n")
    for jobs in ("0", "-3", "65"):
        r = run_cli("migrate", "--accounts", home / "a.csv", "--jobs", jobs, cwd=home)
        assert r.code == 64 and "--jobs" in r.err and "Traceback" not in r.all


FETCH_BAD = [
    pytest.param(None, "No such file or directory", id="missing"),
    pytest.param("deliver: {lmtp: /x}\naccounts: [\n", "fetch.yaml:3:", id="syntax"),
    pytest.param("deliver: {smtp: 'localhost:99999'}\naccounts:\n  - {src: 'imap://a@h', "
                 "to: a@h, password_file: pw}\n", "expected host:port with a port 1-65535",
                 id="smtp-port"),
    pytest.param("deliver: {lmtp: /x}\naccounts:\n  - {src: 'imap://a@h', to: a@h}\n",
                 "fetch.yaml:3: src needs a password (expected password_file: or "
                 "password_ref:)", id="no-password"),
    pytest.param("deliver: {lmtp: /x}\naccounts:\n  - {src: 'imaps://', to: a@h, "
                 "password_file: pw}\n", "fetch.yaml:3: 'imaps://': no user or host",
                 id="bad-url"),
    pytest.param("a: &a [x, x, x]\nb: &b [*a, *a, *a]\ndeliver: {lmtp: /x}\naccounts: [*b]\n",
                 "YAML aliases are not supported", id="alias-bomb"),
    pytest.param("deliver: {lmtp: /x}\naccounts:\n  - {src: 'imap://a@h', to: a@h, "
                 "password_file: pw, colour: red}\n", "fetch.yaml:3: unknown keys colour",
                 id="unknown-key"),
]


@pytest.mark.parametrize(("text", "message"), FETCH_BAD)
def test_fetch_refuses_a_bad_file_naming_the_line(home: Path, text: str | None,
                                                  message: str) -> None:
    if text is not None:
        (home / "fetch.yaml").write_text(text)
    before = _tree(home)
    r = run_cli("fetch", "-f", home / "fetch.yaml", "--once", cwd=home, timeout=20)
    _assert_usage(r, message, one_line=True)
    assert _tree(home) == before  # no fetch state created


def test_fetch_with_a_fifo_for_its_file_does_not_block(home: Path) -> None:
    t = time.monotonic()
    r = run_cli("fetch", "-f", home / "fifo", "--once", cwd=home, timeout=20)
    assert time.monotonic() - t < 10
    _assert_usage(r, "not a regular file", one_line=True)


def test_every_sync_option_has_help_text_and_numbers_have_ranges() -> None:
    import typer.main

    from mailctl.cli.app import app

    root = typer.main.get_command(app)  # typer may vendor its own click: duck typing here
    for name in ("sync", "backup", "restore", "verify", "migrate", "fetch"):
        cmd = root.commands[name]  # type: ignore[attr-defined]
        assert cmd.help, name
        for p in cmd.params:
            assert getattr(p, "help", None), (name, p.name)
            kind = getattr(getattr(p, "type_descriptor", None), "annotation", None)
            if kind in (int, float):  # typer keeps the range beside the type
                assert p.min is not None and p.max is not None, (name, p.name)


def test_json_callers_get_the_one_error_shape_on_stdout(home: Path) -> None:
    """Under --json a failure is also one JSON object on stdout (as every command's)."""
    import json

    for argv in (["backup", "imaps://", str(home / "new"), "--json"],
                 ["migrate", "--accounts", str(home / "missing.csv"), "--json"]):
        r = run_cli(*argv, cwd=home)
        assert r.code == 64 and r.err.startswith("error: ")
        err = json.loads(r.out)
        assert err["ok"] is False and err["error"]["kind"] == "usage"
        assert err["error"]["exit_code"] == 64 and err["error"]["message"] in r.err
