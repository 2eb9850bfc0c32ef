"""`tokens import-mailadm` on a database written by mailadm 1.0.0 itself."""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailctl.accounts.context import open_service
from mailctl.accounts.web import create_app
from mailctl.config.load import load_config
from tests.accounts.conftest import Site

MAILADM_PYTHON = os.environ.get("MAILADM_PYTHON", "/tmp/mailadm-venv/bin/python")
NOW = int(time.time())


def mailadm_db(path: Path) -> None:
    """mailadm's own DB and Connection classes make the file (schema dbversion 1)."""
    if not Path(MAILADM_PYTHON).exists():
        pytest.skip(f"mailadm not installed at {MAILADM_PYTHON} (make a venv with "
                    "`pip install mailadm==1.0.0 'setuptools<82'`, or set MAILADM_PYTHON)")
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
    r = subprocess.run([MAILADM_PYTHON, "-c", script], capture_output=True, text=True)
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
    assert one["url"] == "https://example.org/new_email?t=1d_abcdefghijklmno&n=oneday"
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
    assert r.code == 1 and "no such file" in r.err
