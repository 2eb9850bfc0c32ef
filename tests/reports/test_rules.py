"""The reports alert rules pass promtool's syntax check and their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailctl.reports.rules import render
from tests.fixtures.cli import run_cli

HERE = Path(__file__).parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@needs_promtool
def test_rules_from_the_cli_pass_promtool(tmp_path: Path) -> None:
    res = run_cli("reports", "rules", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out == render()
    (tmp_path / "mailctl-reports-rules.yml").write_text(res.out)
    shutil.copy(HERE / "rules.test.yml", tmp_path / "rules.test.yml")
    check = _promtool("check", "rules", "mailctl-reports-rules.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    test = _promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


@needs_promtool
def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    broken = render().replace('spf="fail", dkim="fail"}) >= 10', 'spf="fail"}) >= 10000')
    (tmp_path / "mailctl-reports-rules.yml").write_text(broken)
    shutil.copy(HERE / "rules.test.yml", tmp_path / "rules.test.yml")
    assert _promtool("test", "rules", "rules.test.yml", cwd=tmp_path).returncode != 0


def test_rule_options_and_their_ranges(tmp_path: Path) -> None:
    res = run_cli("reports", "rules", "--share", "0.1", "--min-messages", "50", cwd=tmp_path)
    assert res.code == 0 and "> 0.1" in res.out and ">= 50" in res.out
    bad = run_cli("reports", "rules", "--share", "2", cwd=tmp_path)
    assert bad.code == 64
