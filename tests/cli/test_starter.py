"""`mailctl init`, `mailctl schema` and shell completion, as a new user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mailctl.config.starter import PROVIDERS, needed_variable
from tests.fixtures.cli import run_cli, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_init_writes_a_config_that_validates(tmp_path: Path, provider: str) -> None:
    r = run_cli("init", "--provider", provider, cwd=tmp_path)
    assert r.code == 0, r.all
    cfg = tmp_path / "mailctl.yaml"
    text = cfg.read_text()
    assert text.startswith("# yaml-language-server: $schema=./mailctl.schema.json\n")
    assert cfg.stat().st_mode & 0o777 == 0o644  # references only, never a secret
    var = needed_variable(provider)
    env = {var: "not-a-real-key-0123456789"} if var else {}
    if var:
        assert f"${{env:{var}}}" in text
        assert f"export {var}=" in r.err
        bare = run_cli("validate", cwd=tmp_path)  # the hint is true: it needs the variable
        assert bare.code == 1 and f"environment variable {var} is not set" in bare.err
    r = run_cli("validate", cwd=tmp_path, env=env)
    assert r.code == 0, r.all
    assert "mailctl.yaml: ok (1 domain, 4 objects)" in r.out
    # The schema beside it accepts the file an editor would check.
    schema = json.loads((tmp_path / "mailctl.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "mailctl.yaml").write_text("# mine\n")
    before = snapshot(tmp_path)
    r = run_cli("init", cwd=tmp_path)
    assert r.code == 64
    assert r.err == ("error: mailctl.yaml exists (expected a new file, or --force to "
                     "overwrite it)\n")
    assert snapshot(tmp_path) == before
    r = run_cli("init", "--force", "--no-schema", "-p", "migadu", cwd=tmp_path)
    assert r.code == 0
    assert "type: migadu" in (tmp_path / "mailctl.yaml").read_text()
    assert "yaml-language-server" not in (tmp_path / "mailctl.yaml").read_text()
    assert not (tmp_path / "mailctl.schema.json").exists()
    r = run_cli("init", "-f", tmp_path / "missing" / "m.yaml", cwd=tmp_path)
    assert r.code == 64 and not (tmp_path / "missing").exists()


def test_schema_matches_the_docs_copy_and_the_models(tmp_path: Path) -> None:
    r = run_cli("schema", cwd=tmp_path)
    assert r.code == 0
    docs_copy = (ROOT / "docs" / "config.schema.json").read_text()
    assert r.out == docs_copy, "regenerate: mailctl schema -o docs/config.schema.json"
    schema = json.loads(r.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load((ROOT / "examples" / "mailctl.yaml").read_text())
    jsonschema.validate(example, schema)  # sizes like 5G, catch_all: support
    validator = jsonschema.Draft202012Validator(schema)
    bad = dict(example, domains={"acme.test": {"provider": "sandbox", "quotaa": "1G"}})
    assert any("quotaa" in e.message for e in validator.iter_errors(bad))
    wrong = dict(example, providers={"p": {"type": "migadu", "path": "./dms"}})
    assert list(validator.iter_errors(wrong))  # a dms setting under a migadu provider
    r = run_cli("schema", "-o", tmp_path / "s.json", cwd=tmp_path)
    assert r.code == 0 and (tmp_path / "s.json").read_text() == docs_copy


def test_shell_completion(tmp_path: Path) -> None:
    r = run_cli("--show-completion", "bash", cwd=tmp_path, env={"SHELL": "/bin/bash"})
    assert r.code == 0, r.all
    assert "_MAILCTL_COMPLETE" in r.out and "complete" in r.out
    env = {"_MAILCTL_COMPLETE": "complete_bash", "COMP_WORDS": "mailctl pl",
           "COMP_CWORD": "1"}
    r = run_cli(cwd=tmp_path, env=env)
    assert r.out.split() == ["plan"], r.all
    env.update(COMP_WORDS="mailctl sandbox ", COMP_CWORD="2")
    assert run_cli(cwd=tmp_path, env=env).out.split() == ["up", "down", "status"]
