"""Normalisation, secret references and determinism, as a user sees them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.cli import run_cli, write_config

HEAD = "providers:\n  local: {type: dms, path: ./dms}\ndomains:\n"


def test_idna_and_case_are_normalised_before_comparison(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, HEAD + "  Bücher.Test:\n    provider: local\n    mailboxes:\n"
                 "      - local_part: Anna\n    aliases:\n"
                 "      - local_part: Info\n        destinations: [ANNA@xn--bcher-kva.test]\n")
    r = run_cli("plan", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    addrs = [c["address"] for c in json.loads(r.out)["changes"]]
    assert addrs == ["anna@xn--bcher-kva.test", "info@xn--bcher-kva.test"]
    assert run_cli("apply", cwd=tmp_path).code == 0
    assert "anna@xn--bcher-kva.test|" in (tmp_path / "dms" / "postfix-accounts.cf").read_text()
    # The same domain spelled in punycode is the same domain: declared twice.
    write_config(tmp_path, HEAD + "  bücher.test:\n    provider: local\n"
                 "  xn--bcher-kva.test:\n    provider: local\n")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "domain xn--bcher-kva.test is declared twice (also as 'bücher.test')" in r.err


def test_env_file_beside_config_and_environment_override(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    (tmp_path / ".env").write_text("ANNA_PW=from-the-dot-env-file\n")
    write_config(tmp_path, HEAD + "  a.test:\n    provider: local\n    mailboxes:\n"
                 "      - local_part: anna\n        password: ${env:ANNA_PW}\n")
    assert run_cli("apply", cwd=tmp_path).code == 0
    from mailctl.providers.dms.hashing import verify

    line = (tmp_path / "dms" / "postfix-accounts.cf").read_text().strip()
    assert verify("from-the-dot-env-file", line.split("|")[1])
    # The process environment wins over .env (checked by validate resolving it).
    r = run_cli("validate", cwd=tmp_path, env={"ANNA_PW": "from-environment"})
    assert r.code == 0
    (tmp_path / ".env").write_text("OTHER=1\n")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "environment variable ANNA_PW is not set" in r.err
    assert "from-the-dot-env-file" not in r.err


def test_plan_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    boxes = "".join(f"      - local_part: u{i}\n" for i in (5, 3, 9, 1))
    write_config(tmp_path, HEAD + "  z.test:\n    provider: local\n    mailboxes:\n" + boxes
                 + "  a.test:\n    provider: local\n    mailboxes:\n" + boxes)
    first = run_cli("plan", cwd=tmp_path).out
    assert first == run_cli("plan", cwd=tmp_path).out
    lines = [ln.split()[2] for ln in first.splitlines() if ln.startswith("  + ")]
    assert lines == sorted(lines, key=lambda a: (a.split("@")[1], a))


def test_quota_units_and_domain_default(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, HEAD + "  q.test:\n    provider: local\n    quota: 512M\n"
                 "    mailboxes:\n      - local_part: a\n      - local_part: b\n"
                 "        quota: 2GiB\n      - local_part: c\n        quota: 0\n")
    assert run_cli("apply", cwd=tmp_path).code == 0
    quotas = (tmp_path / "dms" / "dovecot-quotas.cf").read_text().splitlines()
    assert quotas == ["a@q.test:512M", "b@q.test:2G"]  # 0 = unlimited = no line
    assert run_cli("plan", "--reconcile", "--detailed-exitcode", cwd=tmp_path).code == 0


def test_yaml_12_scalars_keep_mailbox_names_as_typed(tmp_path: Path) -> None:
    """`no`, `on`, `y` and `007` are mailbox names, not booleans or numbers."""
    (tmp_path / "dms").mkdir()
    names = ["no", "on", "off", "y", "yes", "007", "1e3"]
    boxes = "".join(f"      - local_part: {n}\n" for n in names)
    write_config(tmp_path, HEAD + "  n.test:\n    provider: local\n    mailboxes:\n" + boxes)
    r = run_cli("plan", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    got = sorted(c["address"].split("@")[0] for c in json.loads(r.out)["changes"])
    assert got == sorted(names)
