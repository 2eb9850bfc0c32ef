"""The alert rules pass promtool's syntax check and their unit tests."""

from __future__ import annotations

from pathlib import Path

from mailctl.probe.rules import render
from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.promtool import Promtool, check_rules_and_unit_tests, unit_tests_fail

HERE = Path(__file__).parent


def test_rules_from_the_cli_pass_promtool_check_and_unit_tests(tmp_path: Path,
                                                              promtool: Promtool) -> None:
    res = run_cli("probe", "rules", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out == render()
    (tmp_path / "mailctl-rules.yml").write_text(res.out)
    check_rules_and_unit_tests(promtool, tmp_path / "mailctl-rules.yml", HERE / "rules.test.yml", 9)


def test_unit_tests_catch_a_broken_rule(tmp_path: Path, promtool: Promtool) -> None:
    broken = render().replace("> 1800", "> 99999")  # staleness would never fire in time
    (tmp_path / "mailctl-rules.yml").write_text(broken)
    assert unit_tests_fail(promtool, tmp_path / "mailctl-rules.yml", HERE / "rules.test.yml")


def test_rules_follow_the_configured_interval_and_job(tmp_path: Path) -> None:
    write_config(tmp_path, """
        probe:
          interval: 600
          push: {job: mailprobe_eu}
    """)
    res = run_cli("probe", "rules", cwd=tmp_path)
    assert res.code == 0, res.err
    assert "for: 20m" in res.out  # two failed runs at 10 min
    assert "> 3600" in res.out  # six intervals without a success
    assert 'push_time_seconds{job="mailprobe_eu"}' in res.out
