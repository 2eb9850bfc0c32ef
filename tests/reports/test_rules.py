"""The reports alert rules pass promtool's syntax check and their unit tests."""

from __future__ import annotations

from pathlib import Path

from mailctl.reports.rules import render
from tests.fixtures.cli import run_cli
from tests.fixtures.promtool import Promtool, check_rules_and_unit_tests, unit_tests_fail

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "rules.test.yml"


def test_rules_from_the_cli_pass_promtool(tmp_path: Path, promtool: Promtool) -> None:
    res = run_cli("reports", "rules", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out == render()
    (tmp_path / "mailctl-reports-rules.yml").write_text(res.out)
    check_rules_and_unit_tests(promtool, tmp_path / "mailctl-reports-rules.yml", UNIT_TESTS, 9)


def test_unit_tests_catch_a_broken_rule(tmp_path: Path, promtool: Promtool) -> None:
    broken = render().replace('spf="fail", dkim="fail"}) >= 10', 'spf="fail"}) >= 10000')
    (tmp_path / "mailctl-reports-rules.yml").write_text(broken)
    assert unit_tests_fail(promtool, tmp_path / "mailctl-reports-rules.yml", UNIT_TESTS)


def test_rule_options_and_their_ranges(tmp_path: Path) -> None:
    res = run_cli("reports", "rules", "--share", "0.1", "--min-messages", "50", cwd=tmp_path)
    assert res.code == 0 and "> 0.1" in res.out and ">= 50" in res.out
    bad = run_cli("reports", "rules", "--share", "2", cwd=tmp_path)
    assert bad.code == 64
