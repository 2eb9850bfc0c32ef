"""In CI a skipped test is a failure (tests/conftest.py); elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_a_skip_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n\n\ndef test_needs_a_tool():\n"
        "    pytest.skip('frobnicate not installed')\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
           "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")]
    ci = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "CI": "true"},
                        capture_output=True, text=True, timeout=120)
    assert ci.returncode == 1, ci.stdout[-2000:]
    assert "1 failed" in ci.stdout and "frobnicate not installed" in ci.stdout
    dev = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "CI": "false"},
                         capture_output=True, text=True, timeout=120)
    assert dev.returncode == 0 and "1 skipped" in dev.stdout, dev.stdout[-2000:]
