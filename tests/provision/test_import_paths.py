"""`import` of a docker-mailserver folder writes a `path` that works where the YAML
lives, and no command pretends a missing folder is an empty server."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.fixtures.cli import run_cli, snapshot, write_config

CONFIG = """\
providers:
  local: {type: dms, path: ./data/dms}
domains:
  example.org:
    provider: local
    mailboxes:
      - local_part: alice
        aliases: [ali]
"""


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "data" / "dms").mkdir(parents=True)
    write_config(site, CONFIG)
    assert run_cli("apply", cwd=site).code == 0
    return site


def test_import_to_stdout_writes_an_absolute_path(tmp_path: Path) -> None:
    site = _site(tmp_path)
    r = run_cli("import", "-p", "local", cwd=site)
    assert r.code == 0, r.all
    data = yaml.safe_load(r.out)
    assert data["providers"]["local"]["path"] == str(site / "data" / "dms")
    # Saved anywhere, it still plans against the same folder: nothing to do.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "adopted.yaml").write_text(r.out)
    r = run_cli("plan", "-f", "adopted.yaml", "--detailed-exitcode", cwd=elsewhere)
    assert r.code == 0, r.all


def test_import_output_file_gets_a_path_relative_to_it(tmp_path: Path) -> None:
    site = _site(tmp_path)
    (tmp_path / "repo" / "mail").mkdir(parents=True)
    out = tmp_path / "repo" / "mail" / "mailctl.yaml"
    r = run_cli("import", "-p", "local", "-o", out, cwd=site)
    assert r.code == 0, r.all
    assert r.out == ""
    data = yaml.safe_load(out.read_text())
    assert data["providers"]["local"]["path"] == "../../site/data/dms"
    assert out.stat().st_mode & 0o777 == 0o644
    # From any working directory: the path is relative to the file, as docs/config.md says.
    r = run_cli("plan", "-f", out, "--detailed-exitcode", cwd=tmp_path)
    assert r.code == 0, r.all
    # A type given with -s: relative to where the command runs, rewritten the same way.
    r = run_cli("import", "-p", "dms", "-s", "path=data/dms", "-o", site / "x.yaml", cwd=site)
    assert r.code == 0, r.all
    assert yaml.safe_load((site / "x.yaml").read_text())["providers"]["dms"]["path"] == \
        "./data/dms"
    # An existing output is not overwritten without --force, and is checked first.
    before = out.read_bytes()
    r = run_cli("import", "-p", "local", "-o", out, cwd=site)
    assert r.code == 64
    assert r.err.startswith(f"error: --output {out} exists (expected a new file, or --force")
    assert out.read_bytes() == before
    r = run_cli("import", "-p", "local", "-o", tmp_path / "nope" / "x.yaml", cwd=site)
    assert r.code == 64 and "does not exist (expected a file in an existing directory)" in r.err


def test_missing_dms_folder_is_an_error_not_twelve_creates(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG.replace("./data/dms", "./typo"))
    before = snapshot(tmp_path)
    expected = (f"error: local: docker-mailserver config folder {tmp_path}/typo does not "
                "exist")
    for command in (["plan"], ["plan", "--detailed-exitcode"], ["status"], ["apply"],
                    ["import", "-p", "local"], ["import", "-p", "local", "-d", "example.org"]):
        r = run_cli(*command, cwd=tmp_path)
        assert r.code == 3, (command, r.all)
        assert r.err.startswith(expected), r.err
        assert "relative to the config file's folder" in r.err
        assert "Traceback" not in r.all and "to create" not in r.out
    r = run_cli("plan", "--json", cwd=tmp_path)
    err = json.loads(r.out)["error"]
    assert err["kind"] == "not_found" and err["exit_code"] == 3
    assert snapshot(tmp_path) == before and not (tmp_path / "typo").exists()
