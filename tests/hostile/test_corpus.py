"""Every command, fed the broken inputs a new user or an attacker types.

Each case runs the real `mailctl` in a subprocess with a memory limit and a time
limit and asserts what a user sees: the documented exit code (docs/cli.md: 1 for
a bad config, 64 for a bad command line), one `error:` line naming the problem,
never a Python traceback, and nothing created or changed on disk that the
command should not have touched (a state DB, a backup folder, an account).
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.cli import snapshot

MEMORY_LIMIT = 1 << 30  # 1 GiB of address space: a "billion laughs" must not get near it
TIME_LIMIT = 30.0

GOOD = """\
providers:
  local:
    type: dms
    path: ./dms
domains:
  example.org:
    provider: local
    mailboxes:
      - local_part: alice
"""


@dataclass
class Case:
    args: list[str]
    code: int | tuple[int, ...]
    says: str = ""  # a fragment of stderr (case-insensitive)
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    not_created: tuple[str, ...] = ()  # paths (relative to the case dir) that must not exist


def _fifo(name: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        os.mkfifo(d / name)
    return make


def _maildir(name: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        for sub in ("cur", "new", "tmp"):
            (d / name / sub).mkdir(parents=True, exist_ok=True)
    return make


def _cli(*args: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        code, out, errout, _ = _run(list(args), d)
        assert code == 0, out + errout
    return make


def _laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for i in range(levels - 1):
        name = chr(ord("b") + i)
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},"
                     f"*{prev},*{prev},*{prev}]")
        prev = name
    return "\n".join(lines) + f"\nproviders: *{prev}\n"


def _config(extra_domain: str = "", providers: str = "") -> str:
    return ("providers:\n  local:\n    type: dms\n    path: ./dms\n" + providers
            + "domains:\n  example.org:\n    provider: local\n" + extra_domain)


DMS = {"dms/postfix-accounts.cf": "", "dms/postfix-virtual.cf": ""}

CASES: dict[str, Case] = {
    # -- the config file itself (exit 1, file:line where there is one) ------------------
    "config-missing": Case(["validate", "-f", "nope.yaml"], 1, "not found"),
    "config-is-dir": Case(["validate", "-f", "adir"], 1, "adir",
                          setup=lambda d: (d / "adir").mkdir()),
    "config-fifo": Case(["validate", "-f", "pipe.yaml"], 1, "pipe.yaml",
                        setup=_fifo("pipe.yaml")),
    "config-fifo-plan": Case(["plan", "-f", "pipe.yaml"], 1, "pipe.yaml",
                             setup=_fifo("pipe.yaml")),
    "config-binary": Case(["validate"], 1, "mailctl.yaml",
                          files={"mailctl.yaml": bytes(range(256)) * 4}),
    "config-latin1": Case(["validate"], 1, "mailctl.yaml",
                          files={"mailctl.yaml": "providers: {}\n# caf\xe9\n".encode("latin-1")}),
    "config-nul": Case(["validate"], 1, "mailctl.yaml",
                       files={"mailctl.yaml": b"providers:\x00 {}\n"}),
    "config-self-alias": Case(["validate"], 1, "mailctl.yaml:1",
                              files={"mailctl.yaml": "a: &a [*a]\nproviders: *a\n"}),
    "config-self-alias-map": Case(["plan"], 1, "mailctl.yaml",
                                  files={"mailctl.yaml": "x: &x {y: *x}\nproviders: *x\n"}),
    "config-billion-laughs": Case(["validate"], 1, "mailctl.yaml",
                                  files={"mailctl.yaml": _laughs(9)}),
    "config-billion-laughs-plan": Case(["plan"], 1, "mailctl.yaml",
                                       files={"mailctl.yaml": _laughs(12)}),
    "config-deep-nesting": Case(["validate"], 1, "mailctl.yaml",
                                files={"mailctl.yaml": "providers: " + "[" * 5000
                                       + "]" * 5000 + "\n"}),
    "config-deep-mapping": Case(["validate"], 1, "mailctl.yaml",
                                files={"mailctl.yaml": "providers: " + "{a: " * 3000
                                       + "1" + "}" * 3000 + "\n"}),
    "config-python-tag": Case(["validate"], 1, "mailctl.yaml",
                              files={"mailctl.yaml": "providers: !!python/object/apply:os.system"
                                     " ['touch pwned']\n"},
                              not_created=("pwned",)),
    "config-custom-tag": Case(["validate"], 1, "mailctl.yaml",
                              files={"mailctl.yaml": "providers: !vault abc\n"}),
    "config-merge-key": Case(["validate"], 1, "merge",
                             files={"mailctl.yaml": "base: &b {type: dms, path: ./dms}\n"
                                    "providers:\n  local:\n    <<: *b\ndomains: {}\n"}),
    "config-list-top": Case(["validate"], 1, "mapping", files={"mailctl.yaml": "- a\n- b\n"}),
    "config-scalar-top": Case(["plan"], 1, "mapping", files={"mailctl.yaml": "42\n"}),
    "config-unclosed": Case(["validate"], 1, "mailctl.yaml:",
                            files={"mailctl.yaml": "providers: {local: [\n"}),
    "config-tab-indent": Case(["validate"], 1, "mailctl.yaml:",
                              files={"mailctl.yaml": "providers:\n\tlocal: {}\n"}),
    "aliases-yes-please": Case(["validate"], 1, "aliases",
                               files={"mailctl.yaml": _config(
                                   "    mailboxes:\n      - local_part: alice\n"
                                   "        aliases: yes-please\n")}),
    "quota-huge": Case(["validate"], 1, "quota",
                       files={"mailctl.yaml": _config(
                           "    mailboxes:\n      - local_part: alice\n"
                           "        quota: 99999999999999999999999T\n"), **DMS}),
    "quota-negative": Case(["validate"], 1, "quota",
                           files={"mailctl.yaml": _config(
                               "    mailboxes:\n      - local_part: alice\n"
                               "        quota: -5G\n"), **DMS}),
    "quota-nonsense-unit": Case(["validate"], 1, "quota",
                                files={"mailctl.yaml": _config(
                                    "    mailboxes:\n      - local_part: alice\n"
                                    "        quota: 5 parsecs\n"), **DMS}),
    "local-part-huge": Case(["validate"], 1, "local",
                            files={"mailctl.yaml": _config(
                                "    mailboxes:\n      - local_part: " + "a" * 5000 + "\n")}),
    "domain-unicode-garbage": Case(["validate"], 1, "domain",
                                   files={"mailctl.yaml": "providers:\n  local:\n    type: dms\n"
                                          "    path: ./dms\ndomains:\n  \"\\u202e.\\u0000\":\n"
                                          "    provider: local\n"}),
    "safety-share-7": Case(["validate"], 1, "max_delete_share",
                           files={"mailctl.yaml": GOOD + "safety:\n  max_delete_share: 7\n"}),
    "secret-env-missing": Case(["validate"], 1, "NOPE_NOT_SET",
                               files={"mailctl.yaml": _config(
                                   providers="  hosted:\n    type: migadu\n"
                                   "    user: admin@example.org\n"
                                   "    api_key: ${env:NOPE_NOT_SET}\n")}),
    "secret-file-binary": Case(["validate"], 1, "key.bin",
                               files={"mailctl.yaml": _config(
                                   providers="  hosted:\n    type: migadu\n"
                                   "    user: admin@example.org\n"
                                   "    api_key: ${file:key.bin}\n"),
                                   "key.bin": b"\xff\xfe\x00\x81binary"}),
    "secret-file-fifo": Case(["validate"], 1, "key.fifo",
                             files={"mailctl.yaml": _config(
                                 providers="  hosted:\n    type: migadu\n"
                                 "    user: admin@example.org\n"
                                 "    api_key: ${file:key.fifo}\n")},
                             setup=_fifo("key.fifo")),
    "dotenv-binary": Case(["validate"], 1, ".env",
                          files={"mailctl.yaml": _config(
                              providers="  hosted:\n    type: migadu\n"
                              "    user: admin@example.org\n"
                              "    api_key: ${env:MIGADU_KEY_X}\n"),
                              ".env": b"MIGADU_KEY_X=\xff\xfe\x00\x81\n"}),
    "empty-config-plan": Case(["plan"], (1,), "domain", files={"mailctl.yaml": ""}),
    # -- provisioning command lines (exit 64 before any side effect) ---------------------
    "secrets-out-missing-dir": Case(["apply", "--secrets-out", "/nonexistent/dir/s.tsv"], 64,
                                    "/nonexistent/dir", files={"mailctl.yaml": GOOD, **DMS}),
    "plan-unknown-domain": Case(["plan", "-d", "nothere.org"], (1, 64), "nothere.org",
                                files={"mailctl.yaml": GOOD, **DMS}),
    "plan-bad-domain": Case(["plan", "-d", "..."], (1, 64), "domain",
                            files={"mailctl.yaml": GOOD, **DMS}),
    "import-unknown-type": Case(["import", "-p", "nosuch"], (1, 64), "nosuch"),
    "import-bad-setting": Case(["import", "-p", "dms", "-s", "novalue"], (1, 64), "novalue"),
    "import-missing-dms": Case(["import", "-p", "dms", "-s", "path=./nothere"], (1, 3, 64),
                               "nothere", not_created=("nothere",)),
    "plan-missing-dms": Case(["plan"], (1, 3, 64), "dms", files={"mailctl.yaml": GOOD},
                             not_created=("dms",)),
    "sandbox-status-bad-dir": Case(["sandbox", "status", "--dms-dir", "/nonexistent-xyz/dms"],
                                   (1, 64), "nonexistent-xyz"),
    "sandbox-down-bad-dir": Case(["sandbox", "down", "--dms-dir", "nothere/dms"], (1, 64),
                                 "nothere", not_created=("nothere",)),
    "sandbox-bad-ports": Case(["sandbox", "up", "--ports", "imap=99999"], 64, "99999",
                              files={"mailctl.yaml": GOOD, **DMS}),
    # -- sync (exit 64 for a bad command line; nothing created) --------------------------
    "backup-empty-url": Case(["backup", "imaps://", "out"], 64, "imaps://",
                             not_created=("out",)),
    "backup-bad-port": Case(["backup", "imap://u@h:notaport", "out"], 64, "notaport",
                            not_created=("out",)),
    "backup-port-range": Case(["backup", "imap://u@h:99999", "out"], 64, "99999",
                              not_created=("out",)),
    "backup-ftp": Case(["backup", "ftp://u@h", "out"], 64, "ftp://", not_created=("out",)),
    "backup-password-in-url": Case(["backup", "imap://u:hunter2@h", "out"], 64, "password",
                                   not_created=("out",)),
    "backup-password-file-binary": Case(
        ["backup", "imap://u@127.0.0.1:9", "out", "--password-file", "pw.bin"], (1, 64),
        "pw.bin", files={"pw.bin": b"\xff\x00\xfe\x81"}, not_created=("out",)),
    "backup-password-file-missing": Case(
        ["backup", "imap://u@127.0.0.1:9", "out", "--password-file", "nope"], 64, "nope",
        not_created=("out",)),
    "sync-jobs-zero": Case(["sync", "maildir:a", "maildir:b", "--jobs", "0"], 64, "jobs",
                           setup=_maildir("a"), not_created=("b",)),
    "sync-jobs-negative": Case(["sync", "maildir:a", "maildir:b", "--jobs", "-3"], 64, "jobs",
                               setup=_maildir("a"), not_created=("b",)),
    "sync-share-7": Case(["sync", "maildir:a", "maildir:b", "--max-delete-share", "7"], 64,
                         "share", setup=_maildir("a"), not_created=("b",)),
    "sync-dry-run-state": Case(["sync", "maildir:a", "maildir:b", "--dry-run",
                                "--state", "st.db"], (0, 1, 3, 64), "",
                               setup=_maildir("a"), not_created=("st.db", "b")),
    "migrate-missing-csv": Case(["migrate", "--accounts", "/missing.csv"], 64, "/missing.csv"),
    "migrate-binary-csv": Case(["migrate", "--accounts", "acc.csv"], (1, 64), "acc.csv",
                               files={"acc.csv": b"\xff\xfe\x00\x00garbage"}),
    "restore-bad-url": Case(["restore", "bk", "imaps://"], 64, "imaps://",
                            setup=lambda d: (d / "bk" / "cur").mkdir(parents=True)),
    "verify-bad-url": Case(["verify", "imap://u@h:0", "maildir:x"], 64, "0"),
    # -- accounts and tokens --------------------------------------------------------------
    "serve-port-huge": Case(["serve", "--port", "99999"], 64, "port",
                            files={"mailctl.yaml": GOOD, **DMS}),
    "serve-port-negative": Case(["serve", "--port", "-1"], 64, "port",
                                files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-maxuse-huge": Case(["tokens", "add", "t1", "--maxuse", "9" * 23], 64, "maxuse",
                               files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-until-past": Case(["tokens", "add", "t1", "--until", "1999-01-01"], 64, "until",
                              files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-until-garbage": Case(["tokens", "add", "t1", "--until", "yesterday-ish"], 64,
                                 "until", files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-expiry-garbage": Case(["tokens", "add", "t1", "--expiry", "9" * 30 + "y"], 64,
                                  "expiry", files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-name-garbage": Case(["tokens", "add", "../../etc/x"], 64, "name",
                                files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-mod-maxuse-huge": Case(["tokens", "mod", "t1", "--maxuse", "9" * 23], 64, "maxuse",
                                   files={"mailctl.yaml": GOOD, **DMS}),
    "tokens-qr-missing-dir": Case(["tokens", "qr", "t1", "--png", "/missing/dir/x.png"], 64,
                                  "/missing/dir", files={"mailctl.yaml": GOOD, **DMS},
                                  setup=_cli("tokens", "add", "t1")),
    "tokens-mod-until-past": Case(["tokens", "mod", "t1", "--until", "1999-01-01"], 64, "until",
                                  files={"mailctl.yaml": GOOD, **DMS},
                                  setup=_cli("tokens", "add", "t1")),
    "accounts-add-png-missing-dir": Case(
        ["accounts", "add", "bob@example.org", "--png", "/missing/dir/x.png"], 64,
        "/missing/dir", files={"mailctl.yaml": GOOD, **DMS}),
    # -- dns and probe --------------------------------------------------------------------
    "dns-records-bad-domain": Case(["dns", "records", "a..b"], (1, 64), "a..b"),
    "dns-check-bad-resolver": Case(["dns", "check", "example.org", "--resolver", "nonsense:xx"],
                                   64, "resolver"),
    "dkim-generate-missing-dir": Case(["dkim", "generate", "example.org", "--selector", "s1",
                                       "--key-file", "/missing/dir/k.pem"], 64, "/missing/dir"),
    "probe-run-no-routes": Case(["probe", "run"], (1, 64), "route",
                                files={"mailctl.yaml": GOOD, **DMS}),
    "probe-serve-bad-listen": Case(["probe", "serve", "--listen", ":99999"], 64, "99999",
                                   files={"mailctl.yaml": GOOD, **DMS}),
}


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run(args: list[str], cwd: Path) -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(NO_COLOR="1", XDG_STATE_HOME=str(cwd / ".xdg-state"),
               XDG_CACHE_HOME=str(cwd / ".xdg-cache"), HOME=str(cwd))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mailctl", *args], cwd=cwd, env=env,
                          input="", capture_output=True, text=True, timeout=TIME_LIMIT,
                          preexec_fn=_limits)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    for rel, content in case.files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    if case.setup is not None:
        case.setup(tmp_path)
    before = _regular_files(tmp_path)
    code, out, errout, _ = _run(case.args, tmp_path)
    both = out + errout
    assert "Traceback" not in both, both
    assert "None" not in errout.strip().splitlines()[-1:], both  # a Python None printed
    assert "None" not in out.strip().splitlines()[-1:], both
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    assert code in codes, f"exit {code}, expected {codes}:\n{both}"
    if code != 0:
        assert "error" in errout.lower(), errout
        assert case.says.lower() in errout.lower(), errout
    for rel in case.not_created:
        assert not (tmp_path / rel).exists(), f"{rel} was created"
    if code != 0:
        assert _regular_files(tmp_path) == before, "a failed command changed files"


def _regular_files(d: Path) -> dict[str, bytes]:
    snap = snapshot(d)
    return {k: v for k, v in snap.items()
            if not k.startswith((".xdg-state", ".xdg-cache"))
            and stat.S_ISREG((d / k).lstat().st_mode)}
