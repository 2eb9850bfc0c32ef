"""One table of exit codes: defined in cli/common.py, documented once in docs/cli.md,
used by name everywhere."""

from __future__ import annotations

import re
from pathlib import Path

from mailctl.cli import common
from tests.fixtures.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
CODES = {"OK": 0, "FAILED": 1, "CHANGES": 2, "PROVIDER": 3, "REFUSED": 4, "USAGE": 64,
         "INTERRUPTED": 130}


def test_constants_are_the_documented_table() -> None:
    assert {name: getattr(common, name) for name in CODES} == CODES
    docs = (ROOT / "docs" / "cli.md").read_text()
    table = docs[docs.index("## Exit codes"):]
    rows = [int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", table, re.M)]
    assert rows == sorted(CODES.values())
    assert docs.count("## Exit codes") == 1  # one table, not one per group


def test_the_lean_sync_entry_mirrors_them() -> None:
    """mailctl.sync.runner cannot import typer (start-up budget): its copy must agree."""
    from mailctl.sync import runner

    for name in ("OK", "FAILED", "PROVIDER", "REFUSED", "USAGE"):
        assert getattr(runner, name) == CODES[name], name


def test_no_cli_module_exits_with_a_bare_number() -> None:
    for path in sorted((ROOT / "src" / "mailctl" / "cli").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"Exit\(\s*\d", text), f"{path.name}: use the named constants"
        assert not re.search(r"return\s+(?:[2-9]|[1-9]\d+)\b", text), path.name


def test_usage_errors_are_64_and_one_line(tmp_path: Path) -> None:
    r = run_cli("plan", "--bogus", cwd=tmp_path)
    assert r.code == 64 and "No such option" in r.err and "Traceback" not in r.all
    r = run_cli("init", "--provider", "exchange", cwd=tmp_path)
    assert r.code == 64 and "Traceback" not in r.all
    assert list(tmp_path.iterdir()) == []
