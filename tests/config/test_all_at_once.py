"""docs/config.md promises every problem in one run: shape errors must not hide
cross-reference ones, and the messages speak the user's words."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.cli import run_cli, snapshot, write_config

HEAD = """\
providers:
  local:
    type: dms
    path: ./dms
domains:
  example.org:
    provider: local
"""


def test_unknown_key_does_not_hide_an_alias_loop(tmp_path: Path) -> None:
    write_config(tmp_path, HEAD + """\
    mailboxes:
      - local_part: alice
        quotaa: 1G
    aliases:
      - local_part: a
        destinations: [b]
      - local_part: b
        destinations: [a]
""")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "mailctl.yaml:10:9: error: unknown key 'quotaa'" in r.err
    assert ("mailctl.yaml:12:21: error: alias loop: a@example.org -> b@example.org -> "
            "a@example.org") in r.err
    assert "2 problems found" in r.err


def test_dropped_items_keep_every_later_position_right(tmp_path: Path) -> None:
    """A mailbox without local_part is left out; the lines of the ones after it hold."""
    write_config(tmp_path, HEAD + """\
    mailboxes:
      - name: nobody
      - local_part: bob
        aliases: [1, {x: 1}, bobby]
      - local_part: bob
      - local_part: carol
        forwards: [carol]
""")
    r = run_cli("validate", "--json", cwd=tmp_path)
    assert r.code == 1
    errors = {(e["line"], e["column"]): e for e in json.loads(r.out)["errors"]}
    assert errors[(9, 9)]["message"] == "missing required key 'local_part'"
    assert errors[(11, 22)]["message"] == "expected text (got a mapping)"
    assert errors[(12, 9)]["message"] == "bob@example.org is declared twice; first (line 10)"
    assert errors[(12, 9)]["field"] == "domains.example.org.mailboxes[2]"
    assert errors[(14, 19)]["message"] == "carol@example.org forwards to itself"
    assert len(errors) == 4, errors


def test_checks_that_need_the_whole_file_are_not_guessed(tmp_path: Path) -> None:
    """A dropped mailbox must not make the alias that points at it look broken."""
    write_config(tmp_path, HEAD + """\
    mailboxes:
      - local_part: alice
        quota: [1]
        nme: Alice
    aliases:
      - local_part: info
        destinations: [alice]
""")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "destination" not in r.err, r.err
    assert "2 problems found" in r.err


def test_type_errors_in_the_users_words(tmp_path: Path) -> None:
    write_config(tmp_path, HEAD + """\
    mailboxes:
      - local_part: alice
        aliases: yes-please
        forward_only: maybe
        access: 3
        password_policy: {length: 10}
safety: {max_delete_share: 7, min_existing: true, max_update_share: .nan}
""")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    err = r.err
    assert ("mailctl.yaml:10:18: error: expected a list of local parts, e.g. [info, sales] "
            "(got 'yes-please')") in err
    assert "valid tuple" not in err
    assert "mailctl.yaml:11:23: error: expected true or false (got 'maybe')" in err
    assert "mailctl.yaml:12:17: error: expected a mapping (`key: value` lines) (got 3)" in err
    assert "mailctl.yaml:13:35: error: expected a number >= 32 (got 10)" in err
    assert ("mailctl.yaml:14:28: error: expected a number <= 1 (got 7) "
            "(at safety.max_delete_share)\n  hint: a share is a fraction") in err
    assert "mailctl.yaml:14:45: error: expected a whole number (got true)" in err
    assert "mailctl.yaml:14:69: error: expected a number (got '.nan')" in err


def test_empty_config_is_not_in_sync(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, "providers:\n  local: {type: dms, path: ./dms}\n")
    before = snapshot(tmp_path)
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 0
    assert "mailctl.yaml: ok (0 domains, 0 objects)" in r.out
    assert "warning: mailctl.yaml: no domains are declared" in r.err
    for command in (["plan"], ["plan", "--detailed-exitcode"], ["apply"], ["status"]):
        r = run_cli(*command, cwd=tmp_path)
        assert r.code == 1, (command, r.all)
        assert "error: mailctl.yaml declares no domains: there is nothing to compare" in r.err
        assert "matches" not in r.all and "in sync" not in r.all.lower()
        assert r.out == ""
    r = run_cli("plan", "--json", cwd=tmp_path)
    assert json.loads(r.out)["error"]["kind"] == "config"
    assert snapshot(tmp_path) == before
    # A file with nothing in it at all says the same.
    write_config(tmp_path, "")
    r = run_cli("plan", cwd=tmp_path)
    assert r.code == 1 and "declares no domains" in r.err


def test_shares_are_fractions_written_as_numbers(tmp_path: Path) -> None:
    write_config(tmp_path, HEAD + "safety:\n  max_update_share: \"0.3\"\n"
                 "  max_delete_share: 30%\n  min_existing: 2.5\n")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "mailctl.yaml:9:21: error: expected a number (got '0.3')" in r.err
    assert "mailctl.yaml:10:21: error: expected a number (got '30%')" in r.err
    assert "mailctl.yaml:11:17: error: expected a whole number (got 2.5)" in r.err


def test_a_flood_of_problems_is_counted_not_listed(tmp_path: Path) -> None:
    boxes = "".join(f"      - local_part: u{i}\n        nme: x\n" for i in range(600))
    write_config(tmp_path, HEAD + "    mailboxes:\n" + boxes)
    r = run_cli("validate", cwd=tmp_path, timeout=60)
    assert r.code == 1
    assert r.err.count("error: unknown key 'nme'") == 500
    assert "... and 100 more (only the first 500 are listed)" in r.err
    assert r.err.endswith("600 problems found; nothing was changed.\n")
