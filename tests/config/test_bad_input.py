"""Every kind of bad input: a precise message at file:line:col, exit 1, no traceback,
and nothing touched on disk — for validate, plan and apply alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli, snapshot, write_config

HEAD = """\
providers:
  local:
    type: dms
    path: ./dms
domains:
"""

CASES = [
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxs: []\n",
        "mailctl.yaml:8:5: error: unknown key 'mailboxs'", "did you mean 'mailboxes'?",
        id="unknown-key",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: locl\n",
        "mailctl.yaml:7:15: error: unknown provider 'locl'", "did you mean 'local'?",
        id="unknown-provider",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: 'al ice'\n",
        "mailctl.yaml:9:21: error: invalid local part", "not a valid local part",
        id="invalid-local-part",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n      - local_part: ALICE\n",
        "mailctl.yaml:10:9: error: alice@example.org is declared twice; first (line 9)", "",
        id="duplicate-address-case",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n  EXAMPLE.org:\n    provider: local\n",
        "mailctl.yaml:8:3: error: domain example.org is declared twice", "",
        id="duplicate-domain",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n    aliases:\n      - local_part: alice\n"
        "        destinations: [bob@example.net]\n",
        "mailctl.yaml:11:21: error: alias alice@example.org shadows the mailbox declared (line 9)",
        "use `forwards`",
        id="alias-shadows-mailbox",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    aliases:\n"
        "      - local_part: a\n        destinations: [b]\n"
        "      - local_part: b\n        destinations: [c]\n"
        "      - local_part: c\n        destinations: [a]\n",
        "alias loop: a@example.org -> b@example.org -> c@example.org -> a@example.org",
        "break the cycle",
        id="alias-loop",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n    aliases:\n      - local_part: info\n"
        "        destinations: [alcie]\n",
        "error: destination alcie@example.org does not exist",
        "did you mean 'alice@example.org'?",
        id="missing-destination",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        name: Alice\n",
        "mailctl.yaml:10:9: error: provider 'local' does not support display names", "remove",
        id="provider-lacks-feature",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        tags: [staff]\n",
        "mailctl.yaml:10:9: error: provider 'local' does not support mailbox tags (`tags`)",
        "remove", id="provider-lacks-tags",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        enabled: false\n",
        "mailctl.yaml:10:9: error: provider 'local' does not support switching mailboxes off",
        "remove", id="provider-lacks-enabled",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        tags: [Staff, '', staff]\n",
        "mailctl.yaml:10:23: error: a tag must not be empty", "",
        id="bad-tags",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        password: hunter2hunter2\n",
        "mailctl.yaml:10:19: error: a secret must be a reference", "${env:NAME}",
        id="plaintext-password",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        password: ${env:MAILCTL_TEST_UNSET_VAR}\n",
        "error: environment variable MAILCTL_TEST_UNSET_VAR is not set", ".env",
        id="unset-env-ref",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
        "      - local_part: alice\n        quota: lots\n",
        "mailctl.yaml:10:16: error: expected a size like 2G, 500M or 0", "",
        id="bad-quota",
    ),
    pytest.param(
        HEAD + "  bad_domain:\n    provider: local\n",
        "mailctl.yaml:6:3: error: 'bad_domain' is not a fully qualified domain name", "",
        id="bad-domain",
    ),
    pytest.param(
        "providers:\n  local:\n    type: dsm\n    path: ./dms\n",
        "mailctl.yaml:3:11: error: unknown provider type 'dsm'", "did you mean 'dms'?",
        id="unknown-provider-type",
    ),
    pytest.param(
        "providers:\n  local:\n    type: dms\n    pth: ./dms\n",
        "mailctl.yaml:4:5: error: unknown key 'pth'", "did you mean 'path'?",
        id="provider-setting-typo",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    provider: local\n",
        "mailctl.yaml:8:5: error: duplicate key 'provider' (first at line 7)", "",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n   mailboxes: []\n",
        "mailctl.yaml:8:", "invalid YAML",
        id="yaml-syntax",
    ),
    pytest.param(
        HEAD + "  example.org:\n    provider: local\n    aliases:\n"
        "      - local_part: info\n",
        "mailctl.yaml:9:9: error: missing required key 'destinations'", "",
        id="missing-key",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), CASES)
@pytest.mark.parametrize("command", [["validate"], ["plan"], ["apply", "--yes"]])
def test_bad_input_is_reported_precisely(
    tmp_path: Path, text: str, message: str, hint: str, command: list[str]
) -> None:
    (tmp_path / "dms").mkdir()
    (tmp_path / "dms" / "postfix-accounts.cf").write_text("# untouched\n")
    write_config(tmp_path, text)
    before = snapshot(tmp_path)
    r = run_cli(*command, cwd=tmp_path)
    assert r.code == 1, r.all
    assert message in r.err, r.err
    assert hint in r.err
    assert "Traceback" not in r.all
    assert "nothing was changed" in r.err
    assert r.out == ""
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "body",
    [
        # three shape problems
        "    mailboxes:\n      - local_part: ok\n        quota: x\n        nme: A\n"
        "    aliases:\n      - local_part: info\n",
        # three cross-reference problems
        "    mailboxes:\n      - local_part: 'a b'\n      - local_part: ok\n"
        "    aliases:\n      - local_part: ok\n        destinations: [x@y.net]\n"
        "      - local_part: info\n        destinations: [ghost]\n",
    ],
)
def test_all_problems_are_listed_at_once(tmp_path: Path, body: str) -> None:
    write_config(tmp_path, HEAD + "  example.org:\n    provider: local\n" + body)
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert r.err.count("error:") == 3, r.err
    assert "3 problems found" in r.err


def test_validate_json_errors_have_file_line_field(tmp_path: Path) -> None:
    write_config(tmp_path, HEAD + "  example.org:\n    provider: local\n    mailboxes:\n"
                 "      - local_part: alice\n        quotaa: 1G\n")
    r = run_cli("validate", "--json", cwd=tmp_path)
    assert r.code == 1
    import json

    data = json.loads(r.out)
    assert data["ok"] is False
    (e,) = data["errors"]
    assert e["line"] == 10 and e["column"] == 9
    assert e["field"] == "domains.example.org.mailboxes[0].quotaa"
    assert "did you mean 'quota'" in e["hint"]


def test_missing_config_file(tmp_path: Path) -> None:
    r = run_cli("plan", "-f", "nope.yaml", cwd=tmp_path)
    assert r.code == 1
    assert "nope.yaml: error: config file not found" in r.err
    assert "Traceback" not in r.err


def test_config_from_env_variable(tmp_path: Path) -> None:
    write_config(tmp_path, HEAD + "  example.org:\n    provider: local\n", name="other.yaml")
    r = run_cli("validate", cwd=tmp_path, env={"MAILCTL_CONFIG": str(tmp_path / "other.yaml")})
    assert r.code == 0, r.err
    assert "other.yaml: ok" in r.out


def test_usage_error_exit_code(tmp_path: Path) -> None:
    r = run_cli("plan", "--bogus", cwd=tmp_path)
    assert r.code == 64
    assert "No such option" in r.err
