"""kill -9 in the middle of an apply, over and over, and two applies at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures.cli import run_cli, write_config


def big_config(directory: Path, domain: str, n: int, name: str = "mailctl.yaml") -> Path:
    boxes = "".join(f"      - local_part: user{i}\n        quota: 1G\n" for i in range(n))
    aliases = "".join(f"      - local_part: alias{i}\n        destinations: [user{i}]\n"
                      for i in range(n // 2))
    return write_config(
        directory,
        "providers:\n  local: {type: dms, path: ./dms}\ndomains:\n"
        f"  {domain}:\n    provider: local\n    mailboxes:\n{boxes}    aliases:\n{aliases}",
        name,
    )


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} is torn"
    return data.decode().splitlines()


def check_consistent(dms: Path, n: int) -> int:
    """Each file is complete: either the old (empty) version or the whole new one."""
    accounts = _lines(dms / "postfix-accounts.cf")
    quotas = _lines(dms / "dovecot-quotas.cf")
    virtual = _lines(dms / "postfix-virtual.cf")
    for ln in accounts:
        _addr, h = ln.split("|")
        assert h.startswith("{SHA512-CRYPT}$6$") and len(h) > 100, ln
    assert len(accounts) in (0, n)
    assert len(quotas) in (0, n)
    assert len(virtual) in (0, n // 2)
    return len(accounts)


def test_kill_9_during_apply_never_tears_files(tmp_path: Path) -> None:
    n = 1500
    (tmp_path / "dms").mkdir()
    big_config(tmp_path, "crash.test", n)
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailctl", "apply", "--secrets-out", "pw.tsv"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.6))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        written = check_consistent(tmp_path / "dms", n)
        if written:
            # Every password that may have reached the provider is already in the file.
            secrets = dict(ln.split("\t") for ln in (tmp_path / "pw.tsv").read_text().splitlines())
            assert len(secrets) >= n
            break
        (tmp_path / "pw.tsv").unlink(missing_ok=True)
    assert kills >= 1
    r = run_cli("apply", cwd=tmp_path)
    assert r.code == 0, r.all
    assert check_consistent(tmp_path / "dms", n) == n
    assert run_cli("plan", "--detailed-exitcode", cwd=tmp_path).code == 0
    assert not list((tmp_path / "dms").glob(".*.tmp"))


def test_concurrent_applies_serialise(tmp_path: Path) -> None:
    (tmp_path / "dms").mkdir()
    big_config(tmp_path, "one.test", 400, "one.yaml")
    big_config(tmp_path, "two.test", 400, "two.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    procs = [
        subprocess.Popen([sys.executable, "-m", "mailctl", "apply", "-f", name,
                          "--secrets-out", f"{name}.pw"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name in ("one.yaml", "two.yaml")
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    accounts = _lines(tmp_path / "dms" / "postfix-accounts.cf")
    assert len(accounts) == 800  # no lost update: both applies are in the file
    for name in ("one.yaml", "two.yaml"):
        assert run_cli("plan", "-f", name, "--detailed-exitcode", cwd=tmp_path).code == 0
