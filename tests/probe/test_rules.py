"""The alert rules pass promtool's syntax check and their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailctl.probe.rules import render
from tests.fixtures.cli import run_cli, write_config

HERE = Path(__file__).parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@needs_promtool
def test_rules_from_the_cli_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    res = run_cli("probe", "rules", cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out == render()
    (tmp_path / "mailctl-rules.yml").write_text(res.out)
    shutil.copy(HERE / "rules.test.yml", tmp_path / "rules.test.yml")
    check = _promtool("check", "rules", "mailctl-rules.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    test = _promtool("test", "rules", "rules.test.yml", cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


@needs_promtool
def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    broken = render().replace("> 1800", "> 99999")  # staleness would never fire in time
    (tmp_path / "mailctl-rules.yml").write_text(broken)
    shutil.copy(HERE / "rules.test.yml", tmp_path / "rules.test.yml")
    assert _promtool("test", "rules", "rules.test.yml", cwd=tmp_path).returncode != 0


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
