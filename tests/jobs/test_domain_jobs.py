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
    st, worker_out = _two_workers_until_done(tmp_path, queue)
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
    assert QUEUE_PW not in worker_out + r.all and MASTER_PW not in worker_out


def test_migrate_domain_as_jobs_from_its_provider_to_another(mailstack_factory: Any,
                                                             postgres_server: PostgresServer,
                                                             tmp_path: Path) -> None:
    """`jobs submit migrate --domain D --to P`: one job per mailbox of D, from the provider
    the config declares to the same addresses at P, both signed in through mail_access
    (a master user each side, its password a ${file:..} read on the workers)."""
    old, new = mailstack_factory(), mailstack_factory()
    enable_master(old)
    site = make_site(tmp_path, {"old": old, "new": new}, "    provider: old\n" + MAILBOXES)
    assert site.run("apply", "--secrets-out", "secrets.tsv").code == 0
    dom = site.domain
    for i, name in enumerate(("ann", "ben", "cyd")):
        fill_user(old, master_login(f"{name}@{dom}"), MASTER_PW, 12 + 4 * i, seed=40 + i)
    queue, _ = _db(postgres_server)

    def submit(*args: str) -> Any:
        return jobs_cli(tmp_path, "jobs", "submit", "migrate", "--queue", queue, *args)

    # command-line mistakes: 64 before anything is queued
    for args in (["--domain", dom], ["--domain", dom, "--to", "nowhere"],
                 ["--domain", dom, "--to", "new", "--accounts", "x.csv"],
                 ["--to", "new"], ["--domain", dom, "--to", "new", "--ca-file", "/no/ca.pem"]):
        r = submit(*args)
        assert r.code == 64 and "Traceback" not in r.all, (args, r.all)
    r = submit("--domain", dom, "--to", "old")
    assert r.code == 1 and "at old already" in r.err, r.all
    # the mailboxes do not exist at the target yet: refused, nothing queued
    r = submit("--domain", dom, "--to", "new")
    assert r.code == 1 and "do not exist at provider 'new'" in r.err, r.all
    new.set(accounts={f"{n}@{dom}": f"target-pw-{n}" for n in ("ann", "ben", "cyd")},
            masters={"admin": MASTER_PW})
    r = submit("--domain", dom, "--to", "new", "--mailbox", "zed")
    assert r.code == 1 and "no such mailbox" in r.err, r.all
    r = jobs_cli(tmp_path, "jobs", "status", "--json", "--queue", queue)
    assert json.loads(r.out)["accounts_total"] == 0

    r = submit("--domain", dom, "--to", "new")
    assert r.code == 0 and "queued 3 accounts" in r.out, r.all
    r = submit("--domain", dom, "--to", "new", "--json")
    assert json.loads(r.out)["already_queued"] == 3, r.all
    st, worker_out = _two_workers_until_done(tmp_path, queue)
    assert st["states"]["done"] == 3, st
    labels = sorted(a["label"] for a in st["accounts"])
    assert labels == [f"{n}@{dom}: old -> new" for n in ("ann", "ben", "cyd")]
    for name in ("ann", "ben", "cyd"):
        user = master_login(f"{name}@{dom}")
        assert content(new, user, MASTER_PW) == content(old, user, MASTER_PW), name
    assert sum(a["copied"] for a in st["accounts"]) == 12 + 16 + 20
    out = worker_out
    assert QUEUE_PW not in out + r.all and MASTER_PW not in out and "Traceback" not in out


def _two_workers_until_done(tmp_path: Path, queue: str) -> tuple[dict[str, Any], str]:
    """Two workers (hosts) take the queued jobs: the status once nothing is left, and
    what the workers printed."""
    workers = Workers(tmp_path, queue)
    try:
        workers.start("a", "--concurrency", "2")
        workers.start("b", "--concurrency", "2")
        status = _wait(tmp_path, queue, timeout=120)
    finally:
        workers.stop()
    return status, workers.output()
