"""Hostile config files: alias bombs, recursion, FIFOs, huge and binary files.

Each ends in a clean error that names the file (and line) within seconds, exit
1, no traceback, and nothing touched; none is cached.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

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

LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(10))


def _site(tmp_path: Path, text: str) -> tuple[Path, dict[str, str], dict[str, bytes]]:
    """A config folder, and a parse cache of its own beside it (tmp_path/cache)."""
    site = tmp_path / "site"
    (site / "dms").mkdir(parents=True)
    (site / "dms" / "postfix-accounts.cf").write_text("# untouched\n")
    write_config(site, text)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    return site, env, snapshot(site)


CASES = [
    pytest.param(
        HEAD + "    mailboxes: &m\n      - local_part: x\n        forwards: *m\n",
        "mailctl.yaml:10:9: error: recursive YAML alias: the value anchored at line 8 "
        "contains an alias to itself (at domains.example.org.mailboxes[0].forwards)",
        id="recursive-anchor"),
    pytest.param(
        HEAD + "  other.org: &d\n    provider: local\n    mailboxes: [*d]\n",
        "mailctl.yaml:8:14: error: recursive YAML alias", id="recursive-anchor-in-list"),
    pytest.param(
        LAUGHS, "error: YAML aliases expand to more than 100000 values", id="billion-laughs"),
    pytest.param(
        "x: " + "[" * 200 + "]" * 200 + "\n", "error: YAML nests deeper than 64 levels",
        id="deep-nesting"),
    pytest.param(
        HEAD + "    mailboxes:\n      - <<: {local_part: x}\n",
        "mailctl.yaml:9:9: error: YAML merge keys (<<) are not supported", id="merge-key"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
@pytest.mark.parametrize("command", [["validate"], ["plan"], ["apply", "--yes"]])
def test_hostile_yaml_is_refused_quickly(tmp_path: Path, text: str, message: str,
                                         command: list[str]) -> None:
    site, env, before = _site(tmp_path, text)
    r = run_cli(*command, cwd=site, env=env, timeout=30)  # was: 43 s and 2.9 GB
    assert r.code == 1, r.all
    assert message in r.err, r.err
    assert "Traceback" not in r.all
    assert "nothing was changed" in r.err
    assert snapshot(site) == before
    assert snapshot(tmp_path / "cache") == {}  # refused input is never cached


def test_aliases_that_real_configs_use_still_work(tmp_path: Path) -> None:
    """Sharing a list through an anchor stays legal, and its cache entry round-trips."""
    site, env, _ = _site(tmp_path, HEAD + "    mailboxes:\n      - local_part: u0\n"
                         "      - local_part: shared\n    aliases:\n      - local_part: team\n"
                         "        destinations: &team [u0, shared]\n      - local_part: all\n"
                         "        destinations: *team\n      - local_part: loop\n"
                         "        destinations: [lopo]\n")
    # An error after an alias still points at its own line.
    r = run_cli("validate", cwd=site, env=env)
    assert "mailctl.yaml:16:21: error: destination lopo@example.org does not exist" in r.err
    config = site / "mailctl.yaml"
    config.write_text(config.read_text().replace("[lopo]", "[team]"))
    first = run_cli("validate", cwd=site, env=env)
    assert first.code == 0, first.all
    assert "(1 domain, 5 objects)" in first.out
    assert list((tmp_path / "cache" / "mailctl" / "config").glob("*.marshal"))
    again = run_cli("validate", cwd=site, env=env)  # from the cache
    assert again.out == first.out


def test_cache_is_private_and_a_shared_directory_is_not_trusted(tmp_path: Path) -> None:
    from mailctl.config import cache

    text = HEAD + "    mailboxes:\n      - local_part: alice\n"
    site, env, _ = _site(tmp_path, text)
    assert run_cli("validate", cwd=site, env=env).code == 0
    d = tmp_path / "cache" / "mailctl" / "config"
    (entry,) = d.glob("*.marshal")
    assert d.stat().st_mode & 0o777 == 0o700
    assert entry.stat().st_mode & 0o777 == 0o600
    # Someone else could write here: a planted entry must not be believed.
    d.chmod(0o777)
    poison = {"providers": {"local": {"type": "dms", "path": "./dms"}},
              "domains": {"poison.example": {"provider": "local"}}}
    entry.write_bytes(marshal.dumps((poison, [])))
    assert entry.name == f"{cache._key(Path(site / 'mailctl.yaml').read_text())}.marshal"
    r = run_cli("validate", "--json", cwd=site, env=env)
    assert r.code == 0, r.all
    assert '"objects": 1' in r.out  # alice, read from the file, not the planted entry
    # ... and a garbage entry in a private directory is a miss, not a crash.
    d.chmod(0o700)
    entry.write_bytes(b"\x00garbage")
    r = run_cli("validate", cwd=site, env=env)
    assert r.code == 0 and "Traceback" not in r.all


def test_huge_integer_is_not_a_traceback(tmp_path: Path) -> None:
    site, env, _ = _site(tmp_path, HEAD + "    mailboxes:\n      - local_part: "
                         + "9" * 5000 + "\n")
    r = run_cli("validate", cwd=site, env=env)
    assert r.code == 1
    assert "Traceback" not in r.all
    assert "mailctl.yaml:9:21: error: invalid local part" in r.err


# -- files that are not config files ------------------------------------------------------


def test_fifo_config_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    for command in (["validate"], ["plan"], ["apply"], ["sandbox", "status"]):
        r = run_cli(*command, "-f", "pipe.yaml", cwd=tmp_path, timeout=20)
        assert r.code == 1, r.all
        assert ("pipe.yaml: error: config file pipe.yaml is a named pipe (FIFO) "
                "(expected a regular file)") in r.err
        assert "Traceback" not in r.all


def test_directory_and_huge_config_files(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    r = run_cli("validate", "-f", "conf.d", cwd=tmp_path)
    assert r.code == 1
    assert "config file conf.d is a directory (expected a regular file)" in r.err
    with open(tmp_path / "huge.yaml", "wb") as fh:
        fh.truncate(17 * 1024 * 1024)  # sparse: instant, and over the 16 MiB bound
    r = run_cli("validate", "-f", "huge.yaml", cwd=tmp_path, timeout=20)
    assert r.code == 1
    assert "config file huge.yaml is too large (17825792 bytes" in r.err
    (tmp_path / "latin1.yaml").write_bytes(b"providers: {}\n# caf\xe9\n")
    r = run_cli("validate", "-f", "latin1.yaml", cwd=tmp_path)
    assert r.code == 1
    assert "config file latin1.yaml is not UTF-8 text (invalid byte at line 2" in r.err


def test_binary_secret_file_and_binary_dotenv(tmp_path: Path) -> None:
    text = HEAD + ("    mailboxes:\n      - local_part: alice\n        password: ${file:bin.pw}\n"
                   "      - local_part: bob\n        password: ${env:BOB_PW}\n"
                   "      - local_part: carol\n        password: ${file:pipe}\n")
    site, env, before = _site(tmp_path, text)
    (site / "bin.pw").write_bytes(b"\xff\xfe\x00hunter2-xyzzy\x81")
    (site / ".env").write_bytes(b"BOB_PW=\xc3\x28\n")
    os.mkfifo(site / "pipe")
    before = snapshot(site)
    r = run_cli("plan", cwd=site, env=env, timeout=20)
    assert r.code == 1, r.all
    assert "Traceback" not in r.all
    err = r.err
    assert (f"mailctl.yaml:10:19: error: secret file {site}/bin.pw is not UTF-8 text "
            "(invalid byte at line 1, offset 0) (referenced as ${file:bin.pw})") in err
    assert (f"mailctl.yaml:12:19: error: .env file {site}/.env is not UTF-8 text") in err
    assert (f"mailctl.yaml:14:19: error: secret file {site}/pipe is a named pipe (FIFO) "
            "(expected a regular file)") in err
    assert "3 problems found" in err
    assert "hunter2" not in err and "xyzzy" not in err  # nothing of the content
    assert snapshot(site) == before


def test_oversized_secret_and_dotenv_files(tmp_path: Path) -> None:
    text = HEAD + ("    mailboxes:\n      - local_part: alice\n        password: ${file:big.pw}\n"
                   "      - local_part: bob\n        password: ${env:BOB_PW}\n")
    site, env, _ = _site(tmp_path, text)
    with open(site / "big.pw", "wb") as fh:
        fh.truncate(65 * 1024)
    with open(site / ".env", "wb") as fh:
        fh.truncate(2 * 1024 * 1024)
    r = run_cli("validate", cwd=site, env=env)
    assert r.code == 1
    assert (f"mailctl.yaml:10:19: error: secret file {site}/big.pw is too large (66560 bytes; "
            "at most 65536 are read)") in r.err
    assert f"mailctl.yaml:12:19: error: .env file {site}/.env is too large" in r.err
