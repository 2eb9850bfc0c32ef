"""Shared helpers for the hosted-provider tests: a site folder and secret checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import Result, run_cli, write_config


class Site:
    """A config folder plus the environment the CLI runs with."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env

    def config(self, text: str, name: str = "mailctl.yaml") -> Path:
        return write_config(self.path, text, name)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_cli(*args, cwd=self.path, env={**self.env, **(env or {})}, timeout=180)

    def apply_json(self, *args: str) -> tuple[Result, dict[str, Any]]:
        r = self.run("apply", "--json", "--secrets-out", "secrets.txt", *args)
        assert r.out.strip(), r.all
        return r, json.loads(r.out)

    def import_roundtrip(self, provider: str, *args: str) -> tuple[Result, dict[str, Any]]:
        """`import` the provider's state, then show the imported YAML plans to nothing."""
        import yaml

        r = self.run("import", "-p", provider, *args)
        assert r.code == 0, r.all
        self.config(r.out, "imported.yaml")
        replan = self.run("plan", "-f", "imported.yaml", "--detailed-exitcode")
        assert replan.code == 0, replan.all
        return r, yaml.safe_load(r.out)

    def secrets(self) -> dict[str, str]:
        path = self.path / "secrets.txt"
        if not path.exists():
            return {}
        return dict(line.split("\t", 1) for line in path.read_text().splitlines() if line)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    # The rate-limit window is remembered under XDG_CACHE_HOME: keep it per test.
    return Site(tmp_path, {"XDG_CACHE_HOME": str(tmp_path / "cache")})


def statuses(data: dict[str, Any]) -> dict[str, str]:
    """`{"create mailbox a@b": "done", ...}` from `apply --json`."""
    return {f"{o['action']} {o['kind']} {o['address']}": o["status"] for o in data["outcomes"]}


def assert_no_secret(r: Result, *secrets: str) -> None:
    for s in secrets:
        assert s not in r.out, "a secret leaked to stdout"
        assert s not in r.err, "a secret leaked to stderr"
