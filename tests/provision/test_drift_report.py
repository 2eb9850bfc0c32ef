"""Drift that the options leave out is still drift: exit codes and every message say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli, snapshot, write_config

CONFIG = """\
providers:
  local: {type: dms, path: ./dms}
domains:
  example.org:
    provider: local
    mailboxes:
      - local_part: alice
        quota: 2G
      - local_part: bob
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, CONFIG)
    assert run_cli("apply", cwd=tmp_path).code == 0
    return tmp_path


def test_in_sync_everywhere(site: Path) -> None:
    r = run_cli("plan", "--detailed-exitcode", cwd=site)
    assert r.code == 0
    assert r.out == "No changes. The provider matches the config.\n"
    assert run_cli("apply", cwd=site).out == "No changes. The provider matches the config.\n"
    r = run_cli("plan", "--markdown", "--detailed-exitcode", cwd=site)
    assert r.code == 0
    assert r.out == "No changes: the provider matches the config.\n"  # no empty table
    assert json.loads(run_cli("plan", "--json", cwd=site).out)["in_sync"] is True
    r = run_cli("status", cwd=site)
    assert r.code == 0
    assert "In sync: the provider matches the config." in r.out


def test_held_drift_and_undeclared_objects_fail_the_gate(site: Path) -> None:
    # alice's quota drifts; carol exists at the provider but is not declared.
    cfg = site / "mailctl.yaml"
    write_config(site, CONFIG.replace("local_part: bob", "local_part: carol"), "other.yaml")
    assert run_cli("apply", "-f", "other.yaml", cwd=site).code == 0
    cfg.write_text(cfg.read_text().replace("quota: 2G", "quota: 3G"))
    before = snapshot(site / "dms")

    r = run_cli("plan", "--detailed-exitcode", cwd=site)
    assert r.code == 2, r.all
    assert r.out.splitlines() == [
        "No changes with these options, but the provider does not match the config.",
        "Not included: 1 drifted object(s) not updated (use --reconcile); "
        "1 undeclared object(s) not deleted (use --prune).",
        "  ~ mailbox  alice@example.org  quota: 2G -> 3G",
        "  - mailbox  carol@example.org",
    ]
    # Each flag includes its part; the rest is still reported and still exit 2.
    r = run_cli("plan", "--reconcile", "--detailed-exitcode", cwd=site)
    assert r.code == 2
    assert "Plan: 0 to create, 1 to update, 0 to delete." in r.out
    assert "Not included: 1 undeclared object(s) not deleted (use --prune)." in r.out
    r = run_cli("plan", "--reconcile", "--prune", "--detailed-exitcode", cwd=site)
    assert r.code == 2 and "Not included" not in r.out

    r = run_cli("plan", "--markdown", cwd=site)
    assert r.out == ("No changes with these options, but the provider does not match the "
                     "config.\n\nNot included: 1 drifted object(s) not updated (use "
                     "--reconcile); 1 undeclared object(s) not deleted (use --prune).\n")
    data = json.loads(run_cli("plan", "--json", cwd=site).out)
    assert data["in_sync"] is False and data["held"]["update"] == 1

    r = run_cli("apply", cwd=site)
    assert r.code == 0
    assert "No changes with these options, but the provider does not match" in r.out
    assert "(use --reconcile)" in r.out and "(use --prune)" in r.out
    assert json.loads(run_cli("apply", "--json", cwd=site).out)["in_sync"] is False

    r = run_cli("status", cwd=site)
    assert r.code == 2
    assert ("Not in sync: 1 drifted (`mailctl apply --reconcile` updates them); 1 undeclared "
            "(`mailctl apply --prune` deletes them).") in r.out
    assert snapshot(site / "dms") == before
