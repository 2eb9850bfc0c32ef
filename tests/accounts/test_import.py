"""`tokens import-mailadm` on a database written by mailadm 1.0.0 itself.

mailadm runs from its own venv (tests/accounts/mailadm_peer.py), which `make
pytest` builds first. Missing venv: the test is skipped on a developer's
machine, and fails under CI (CI=true), where a skip would hide that it never ran.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailctl.accounts.context import open_service
from mailctl.accounts.web import create_app
from mailctl.config.load import load_config
from tests.accounts import mailadm_peer
from tests.accounts.conftest import Site
from tests.fixtures.ci import in_ci

NOW = int(time.time())


def mailadm_db(path: Path) -> None:
    """mailadm's own DB and Connection classes make the file (schema dbversion 1)."""
    if not mailadm_peer.ready():
        why = f"mailadm 1.0.0 is not installed in {mailadm_peer.VENV}: run `{mailadm_peer.HINT}`"
        if in_ci():
            pytest.fail(why)
        pytest.skip(why)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from mailadm.db import DB
        db = DB(Path({str(path)!r}))
        db.init_config(mail_domain="example.org",
                       web_endpoint="https://example.org/new_email",
                       mailcow_endpoint="http://127.0.0.1:9/api/v1/", mailcow_token="k")
        with db.write_transaction() as conn:
            conn.add_token("oneday", "1d_abcdefghijklmno", "1d", "tmp.", maxuse=3)
            conn.add_token("forever", "never_zyxwvutsrqponm", "never", "perm.", maxuse=5)
            conn.add_token("weird", "1m_qqqqqqqqqqqqqqq", "1m", "w.", maxuse=5)
            conn.add_user_db("tmp.abcde@example.org", {NOW - 100}, 86400, "oneday")
            conn.add_user_db("tmp.fghij@example.org", {NOW - 200000}, 86400, "oneday")
            conn.add_user_db("perm.keep@example.org", {NOW}, 9223372036854775807, "forever")
            conn.execute("UPDATE tokens SET usecount = 2 WHERE name = 'oneday'")
    """)
    r = subprocess.run([str(mailadm_peer.PYTHON), "-c", script], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.fail(f"mailadm could not make its database: {r.stderr[-2000:]}")


def test_import_keeps_secrets_counts_and_lifetimes(site: Site) -> None:
    db = site.dir / "mailadm.db"
    mailadm_db(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()

    rep = site.json("tokens", "import-mailadm", db)
    assert sorted(rep["tokens"]) == ["forever", "oneday"]
    assert [s["name"] for s in rep["skipped_tokens"]] == ["weird"]  # `1m` is ambiguous
    assert rep["accounts"] == 3 and rep["web_endpoint"] == "https://example.org/new_email"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # read-only

    one = site.json("tokens", "show", "oneday")
    assert (one["usecount"], one["maxuse"], one["expiry"], one["prefix"]) == (2, 3, "1d", "tmp.")
    # Hashed (the default): mailadm's plaintext secrets are not copied into our store.
    assert one["secret_stored"] is False and "url" not in one
    store_bytes = b"".join(p.read_bytes() for p in site.dir.glob("mailctl-accounts.db*"))
    assert b"1d_abcdefghijklmno" not in store_bytes
    accts = {a["address"]: a for a in site.json("accounts", "list")}
    assert accts["perm.keep@example.org"]["expires"] is None
    assert accts["tmp.abcde@example.org"]["expires"] is not None

    # Printed mailadm QR codes keep working, and the imported count still caps them.
    svc = open_service(load_config(site.dir / "mailctl.yaml"))
    client = TestClient(create_app(svc))
    assert client.post("/?t=1d_abcdefghijklmno").status_code == 200
    assert client.post("/?t=1d_abcdefghijklmno").status_code == 410
    svc.store.close()

    again = site.json("tokens", "import-mailadm", db)  # idempotent
    assert again["tokens"] == [] and again["accounts"] == 0
    # The expired one goes at the next prune.
    assert site.json("accounts", "prune")["removed"] == ["tmp.fghij@example.org"]


def test_import_refuses_other_files(site: Site) -> None:
    junk = site.dir / "junk.db"
    junk.write_text("not a database")
    r = site.cli("tokens", "import-mailadm", junk)
    assert r.code == 1 and "not" in r.err and "Traceback" not in r.all
    r = site.cli("tokens", "import-mailadm", site.dir / "missing.db")
    assert r.code == 64 and "no such file" in r.err
    assert not (site.dir / "mailctl-accounts.db").exists()  # checked before the store


def test_missing_mailadm_venv_fails_under_ci(tmp_path: Path) -> None:
    """The skip above must not hide the test in CI: there it is a failure."""
    env = {**os.environ, "CI": "true", "MAILADM_VENV": str(tmp_path / "no-venv")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{__file__}::test_import_keeps_secrets_counts_and_lifetimes"],
                       cwd=mailadm_peer.ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1, r.stdout[-2000:]
    assert "1 failed" in r.stdout and "make mailadm-venv" in r.stdout
    env["CI"] = "false"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{__file__}::test_import_keeps_secrets_counts_and_lifetimes"],
                       cwd=mailadm_peer.ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
