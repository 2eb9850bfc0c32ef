"""`jobs submit domain-backup`: `mailctl domain backup` as one job per mailbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.domain.conftest import (
    MASTER_PW,
    content,
    enable_master,
    fill_user,
    make_site,
    master_login,
)
from tests.fixtures.postgres import PostgresServer
from tests.jobs.helpers import QUEUE_PW, Workers, jobs_cli
from tests.jobs.test_queue import _db, _wait

pytestmark = pytest.mark.mailstack

MAILBOXES = """    mailboxes:
      - local_part: ann
      - local_part: ben
      - local_part: cyd
"""


def test_domain_backup_as_jobs_over_two_workers(mailstack_factory: Any,
                                                 postgres_server: PostgresServer,
                                                 tmp_path: Path) -> None:
    stack = mailstack_factory()
    enable_master(stack)
    site = make_site(tmp_path, {"mail": stack}, "    provider: mail\n" + MAILBOXES)
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    dom = site.domain
    for i, name in enumerate(("ann", "ben", "cyd")):
        fill_user(stack, master_login(f"{name}@{dom}"), MASTER_PW, 15 + 5 * i, seed=20 + i)
    queue, _ = _db(postgres_server)
    backup = tmp_path / "backup"
    r = jobs_cli(tmp_path, "jobs", "submit", "domain-backup", dom, backup, "--queue", queue)
    assert r.code == 0 and "queued 3 accounts" in r.out, r.all
    workers = Workers(tmp_path, queue)
    try:
        workers.start("a", "--concurrency", "2")
        workers.start("b", "--concurrency", "2")
        st = _wait(tmp_path, queue, timeout=120)
    finally:
        workers.stop()
    assert st["states"]["done"] == 3, st
    manifest = json.loads((backup / "manifest.json").read_text())
    for i, name in enumerate(("ann", "ben", "cyd")):
        entry = manifest["mailboxes"][f"{name}@{dom}"]
        assert entry["complete"] and entry["messages"] == 15 + 5 * i
    # the backup restores like one `mailctl domain backup` wrote: ann's mail comes back
    before = content(stack, master_login(f"ann@{dom}"), MASTER_PW)
    r = site.run("domain", "restore", backup, "--mailbox", "ann", "--json")
    assert r.code == 0, r.all
    assert content(stack, master_login(f"ann@{dom}"), MASTER_PW) == before
    assert QUEUE_PW not in workers.output() + r.all and MASTER_PW not in workers.output()
