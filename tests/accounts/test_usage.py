"""Bad command lines of tokens / accounts / serve: exit 64, no traceback, and nothing
made (no store file, no account at the provider, no listening socket)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.accounts.conftest import Site, free_port
from tests.fixtures.cli import run_cli

MISSING = "/missing/dir/x.png"

# (argv, what stderr must name, our own one-line message?) - the last is False where
# the option parser itself refuses the value (its message is the CLI core's format).
BAD = [
    pytest.param(["serve", "--port", "99999"], "--port", False, id="serve-port-high"),
    pytest.param(["serve", "--port", "-1"], "--port", False, id="serve-port-negative"),
    pytest.param(["serve", "--port", "0"], "--port", False, id="serve-port-zero"),
    pytest.param(["serve", "--port", "http"], "--port", False, id="serve-port-word"),
    pytest.param(["serve", "--workers", "0"], "--workers", False, id="serve-workers-0"),
    pytest.param(["serve", "--prune-interval", "-5"], "--prune-interval", False,
                 id="serve-prune-negative"),
    pytest.param(["serve", "--host", "no.such.host.invalid"], "unknown host", True,
                 id="serve-host"),
    pytest.param(["tokens", "add", "t", "--maxuse", "99999999999999999999999"], "--maxuse",
                 False, id="maxuse-huge"),
    pytest.param(["tokens", "add", "t", "--maxuse", "0"], "--maxuse", False, id="maxuse-0"),
    pytest.param(["tokens", "mod", "t", "--maxuse", "99999999999999999999999"], "--maxuse",
                 False, id="mod-maxuse-huge"),
    pytest.param(["tokens", "add", "t", "--until", "1999-01-01"], "in the past", True,
                 id="until-past"),
    pytest.param(["tokens", "mod", "t", "--until", "1999-01-01"], "in the past", True,
                 id="mod-until-past"),
    pytest.param(["tokens", "add", "t", "--until", "2031-02-30"], "invalid date", True,
                 id="until-no-such-day"),
    pytest.param(["tokens", "add", "t", "--until", "99999-01-01"], "invalid date", True,
                 id="until-year-99999"),
    pytest.param(["tokens", "add", "t", "--until", "soon"], "invalid date", True,
                 id="until-word"),
    pytest.param(["tokens", "add", "t", "--expiry", "1m"], "invalid expiry", True,
                 id="expiry-ambiguous"),
    pytest.param(["tokens", "add", "a/b"], "invalid token name", True, id="token-name"),
    pytest.param(["tokens", "add", "t", "--prefix", "Bad Prefix"], "invalid prefix", True,
                 id="prefix"),
    pytest.param(["tokens", "add", "t", "--domain", "other.org"], "not declared", True,
                 id="domain-undeclared"),
    pytest.param(["tokens", "add", "t", "--png", MISSING], "does not exist", True,
                 id="tokens-add-png"),
    pytest.param(["tokens", "qr", "t", "--png", MISSING], "does not exist", True,
                 id="tokens-qr-png"),
    pytest.param(["tokens", "rotate", "t", "--svg", MISSING], "does not exist", True,
                 id="tokens-rotate-svg"),
    pytest.param(["accounts", "add", "x@example.org", "--png", MISSING], "does not exist",
                 True, id="accounts-add-png"),
    pytest.param(["accounts", "add", "x@example.org", "--svg", MISSING], "does not exist",
                 True, id="accounts-add-svg"),
    pytest.param(["accounts", "add", "x@example.org", "--secrets-out", MISSING],
                 "does not exist", True, id="accounts-add-secrets-out"),
    pytest.param(["accounts", "add", "x@example.org", "--png", "."], "is a directory", True,
                 id="accounts-add-png-dir"),
    pytest.param(["accounts", "add", "not-an-address"], "invalid address", True,
                 id="accounts-add-address"),
    pytest.param(["accounts", "add", "x@other.org"], "not declared", True,
                 id="accounts-add-domain"),
    pytest.param(["tokens", "import-mailadm", "/missing/mailadm.db"], "no such file", True,
                 id="import-missing"),
]


@pytest.mark.parametrize(("argv", "names", "ours"), BAD)
def test_bad_command_line_is_64_and_leaves_no_trace(site: Site, argv: list[str], names: str,
                                                    ours: bool) -> None:
    r = site.cli(*argv, timeout=60)
    assert r.code == 64, r.all
    assert "Traceback" not in r.all and names in r.err
    assert r.out == "" and "serving on" not in r.all
    if ours:  # one line: `error: <what> (expected <what>)`
        assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    assert not list(site.dir.glob("mailctl-accounts.db*"))  # checked before the store
    assert site.dms_accounts() == set()


def test_bad_output_after_a_token_exists_takes_no_slot(site: Site) -> None:
    site.json("tokens", "add", "t", "--maxuse", "1")
    r = site.cli("accounts", "add", "x@example.org", "--token", "t", "--png", MISSING)
    assert r.code == 64 and "Traceback" not in r.all
    assert site.json("tokens", "show", "t")["usecount"] == 0
    assert site.json("accounts", "list") == [] and site.dms_accounts() == set()
    r = site.cli("tokens", "qr", "t", "--png", MISSING)
    assert r.code == 64 and "Traceback" not in r.all


def test_port_in_use_is_a_clean_error(site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = site.cli("serve", "--host", "127.0.0.1", "--port", str(port), timeout=60)
    assert r.code == 64 and "already in use" in r.err and "Traceback" not in r.all
    assert "serving on" not in r.all


def test_serving_on_is_said_only_once_the_port_accepts(site: Site) -> None:
    """A client that connects the moment the line appears is answered, not refused."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailctl", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2"], cwd=site.dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith(f"serving on http://127.0.0.1:{port} (2 workers"), line
        assert "pruned every 600 s" in line
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60) as resp:
            assert resp.status == 200  # queued until a worker was ready, never refused
        assert time.monotonic() - started < 60
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def test_help_names_ranges_and_defaults(tmp_path: Path) -> None:
    """Every option of these commands says what it does; numbers show their range;
    options whose default comes from the config say which setting."""
    from typer.main import get_command

    from mailctl.cli.app import app

    root = get_command(app)
    commands = [("serve", root.commands["serve"])]  # type: ignore[attr-defined]
    for group in ("tokens", "accounts"):
        grp = root.commands[group]  # type: ignore[attr-defined]
        commands += [(f"{group} {n}", c) for n, c in grp.commands.items()]
    for name, cmd in commands:
        assert cmd.help, name
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            assert param.help, f"{name} {param.opts}"
            if getattr(param, "bare_type", None) in (int, float) or \
                    type(param.default) in (int, float):
                assert param.min is not None or param.max is not None, f"{name} {param.opts}"
    env = {"COLUMNS": "250"}
    text = run_cli("serve", "--help", cwd=tmp_path, env=env).out
    for wanted in ("1<=x<=65535", "accounts.web.port: 3691", "accounts.prune_interval: 600",
                   "accounts.web.workers: 1", "accounts.web.host: 127.0.0.1"):
        assert wanted in text, wanted
    text = run_cli("tokens", "add", "--help", cwd=tmp_path, env=env).out
    for wanted in ("[default: 1d]", "[default: 50]", "[default: tmp.]", "1<=x<=1000000000"):
        assert wanted in text, wanted
