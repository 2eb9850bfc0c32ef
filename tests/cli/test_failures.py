"""How commands fail: outputs checked before any side effect (64), a JSON object for
every failure under --json, and refusals that name what they refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.mailu import MailuEmulator
from tests.fixtures.cli import run_cli, snapshot, write_config

CONFIG = """\
providers:
  local: {type: dms, path: ./dms}
domains:
  example.org:
    provider: local
    mailboxes:
      - local_part: alice
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, CONFIG)
    return tmp_path


@pytest.mark.parametrize("target", ["/nonexistent/dir/s.tsv", "{site}/dms", "{site}/no/s.tsv"])
def test_secrets_out_is_checked_before_anything(site: Path, target: str) -> None:
    target = target.format(site=site)
    before = snapshot(site)
    r = run_cli("apply", "--secrets-out", target, cwd=site)
    assert r.code == 64, r.all
    assert r.err.count("\n") == 1 and r.err.startswith(f"error: --secrets-out {target}")
    assert "(expected a" in r.err
    assert r.out == ""
    assert snapshot(site) == before and not Path(target).parent.joinpath("s.tsv").exists()
    r = run_cli("apply", "--json", "--secrets-out", target, cwd=site)
    assert r.code == 64
    assert json.loads(r.out) == {"ok": False, "error": {
        "kind": "usage", "message": r.err.removeprefix("error: ").strip(), "exit_code": 64}}


def test_secrets_out_is_checked_before_a_delete_is_confirmed(site: Path) -> None:
    assert run_cli("apply", cwd=site).code == 0
    (site / "mailctl.yaml").write_text(CONFIG.replace("alice", "bob"))
    before = snapshot(site)
    r = run_cli("apply", "--prune", "--secrets-out", site / "no" / "s.tsv", cwd=site,
                stdin="yes\n")
    assert r.code == 64
    assert "Delete" not in r.all and "refused" not in r.err
    assert snapshot(site) == before


def test_json_errors_have_one_shape(site: Path) -> None:
    # A config problem.
    (site / "mailctl.yaml").write_text(CONFIG + "        quotaa: 1G\n")
    r = run_cli("apply", "--json", cwd=site)
    assert r.code == 1
    data = json.loads(r.out)
    assert data["ok"] is False and data["error"]["kind"] == "config"
    assert data["error"]["issues"][0]["line"] == 8
    # A provider that cannot be read.
    (site / "mailctl.yaml").write_text(CONFIG.replace("./dms", "./gone"))
    for command in (["apply", "--json"], ["plan", "--json"], ["status", "--json"]):
        r = run_cli(*command, cwd=site)
        assert r.code == 3, r.all
        err = json.loads(r.out)["error"]
        assert err["kind"] == "not_found" and err["exit_code"] == 3
        assert "docker-mailserver config folder" in err["message"]
    # A bad command line, even before the command runs.
    r = run_cli("apply", "--json", "--bogus", cwd=site)
    assert r.code == 64
    err = json.loads(r.out)["error"]
    assert err["kind"] == "usage" and "--bogus" in err["message"]
    r = run_cli("plan", "--json", "-d", "nope.example", cwd=site)
    assert r.code == 64
    assert json.loads(r.out)["error"]["kind"] == "usage"


@pytest.fixture
def mailu() -> Iterator[MailuEmulator]:
    with MailuEmulator("the-right-token-0123456789") as emu:
        yield emu


def test_apply_json_on_an_auth_failure(tmp_path: Path, mailu: MailuEmulator) -> None:
    write_config(tmp_path, f"""\
providers:
  mu: {{type: mailu, url: "{mailu.url}", api_token: "${{env:MAILU_TOKEN}}", retries: 0}}
domains:
  example.org:
    provider: mu
    mailboxes:
      - local_part: alice
""")
    env = {"MAILU_TOKEN": "a-wrong-token-987654321", "XDG_CACHE_HOME": str(tmp_path / "c")}
    r = run_cli("apply", "--json", cwd=tmp_path, env=env)
    assert r.code == 3, r.all
    data = json.loads(r.out)
    assert data["ok"] is False
    assert data["error"]["kind"] == "auth" and data["error"]["exit_code"] == 3
    assert "a-wrong-token" not in r.all
    assert r.err.startswith("error: ")


def test_safety_refusal_lists_what_it_refused(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    boxes = "".join(f"      - local_part: user{i}\n        quota: 1G\n" for i in range(12))
    write_config(tmp_path, "providers:\n  local: {type: dms, path: ./dms}\ndomains:\n"
                 "  big.test:\n    provider: local\n    mailboxes:\n" + boxes)
    assert run_cli("apply", cwd=tmp_path).code == 0
    cfg = tmp_path / "mailctl.yaml"
    text = cfg.read_text()
    for i in range(4):  # 4 of 12 deleted and 4 of 12 updated: both over 30 %
        text = text.replace(f"      - local_part: user{i}\n        quota: 1G\n", "")
    for i in range(4, 8):
        text = text.replace(f"local_part: user{i}\n        quota: 1G",
                            f"local_part: user{i}\n        quota: 2G")
    cfg.write_text(text)
    before = snapshot(tmp_path / "dms")
    r = run_cli("apply", "--prune", "--reconcile", "--yes", cwd=tmp_path)
    assert r.code == 4, r.all
    lines = r.err.splitlines()
    assert lines[0].startswith("refused: big.test: 4 of 12 existing objects would be updated")
    assert "The refused changes (8):" in lines
    for i in range(4):
        assert f"  - mailbox  user{i}@big.test" in lines
    for i in range(4, 8):
        assert f"  ~ mailbox  user{i}@big.test" in lines
    assert lines[-1] == "Nothing was changed. Re-run with --force if this is intended."
    r = run_cli("apply", "--prune", "--reconcile", "--yes", "--json", cwd=tmp_path)
    assert r.code == 4
    err = json.loads(r.out)["error"]
    assert err["kind"] == "refused" and len(err["violations"]) == 2
    assert sorted(c["address"] for c in err["refused_changes"]) == sorted(
        f"user{i}@big.test" for i in range(8))
    # A delete nobody confirmed is refused the same way, naming the deletes.
    r = run_cli("apply", "--prune", "--force", "--json", cwd=tmp_path)
    assert r.code == 4
    err = json.loads(r.out)["error"]
    assert [c["action"] for c in err["refused_changes"]] == ["delete"] * 4
    assert "  - mailbox  user0@big.test" in r.err
    assert snapshot(tmp_path / "dms") == before
