"""`jobs cancel` of a copy that is running: it stops after its current batch, and a
later retry (or submit) completes the account exactly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.postgres import PostgresServer
from tests.jobs.helpers import QUEUE_PW, Workers, jobs_cli
from tests.jobs.test_queue import _accounts, _db, _exact, _job_rows, _status, _wait
from tests.sync.helpers import dump

pytestmark = pytest.mark.mailstack


def test_cancel_stops_a_running_copy_and_a_retry_completes_it_exactly(
        mailstack_factory: Any, postgres_server: PostgresServer, tmp_path: Path) -> None:
    src, dst = mailstack_factory(), mailstack_factory()
    queue, db = _db(postgres_server)
    csv, pairs = _accounts(src, dst, tmp_path, 1, msgs=2000, seed=5)
    want = sum(len(v) for v in dump(src.info, pairs[0][0], pairs[0][1]).values())
    r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue)
    assert r.code == 0, r.all
    workers = Workers(tmp_path, queue)  # batches of 3 messages (host_env)
    try:
        workers.start("a", "--concurrency", "1")
        with psycopg.connect(host="127.0.0.1", port=postgres_server.port,
                             user=postgres_server.user, dbname=db, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            sql = "SELECT COALESCE(max(messages), 0) FROM mailctl_jobs_accounts"
            while (conn.execute(sql).fetchone() or (0,))[0] < 30:
                assert time.monotonic() < deadline, "the copy did not start"
                time.sleep(0.05)
        r = jobs_cli(tmp_path, "jobs", "cancel", "u0@", "--queue", queue)
        assert r.code == 0 and "1 running, asked to stop" in r.out, r.all
        st = _wait(tmp_path, queue, timeout=60)
        assert st["states"]["cancelled"] == 1, st
        got = sum(len(v) for v in dump(dst.info, pairs[0][2], pairs[0][3]).values())
        assert 0 < got < want, f"{got} of {want} copied: the copy did not stop"
        assert st["accounts"][0]["messages"] > 0
        assert workers.procs["a-1"].poll() is None, "the worker itself stopped"
        # the worker is still there for other jobs: a retry completes the account
        r = jobs_cli(tmp_path, "jobs", "retry", "u0@", "--queue", queue)
        assert r.code == 0 and "queued 1 accounts again" in r.out, r.all
        st = _wait(tmp_path, queue, timeout=180)
    finally:
        workers.stop()
    assert st["states"]["done"] == 1, st
    _exact(src, dst, pairs)  # nothing lost, nothing twice
    assert sorted(j[1] for j in _job_rows(postgres_server, db)) == ["aborted", "succeeded"]
    out = workers.output()
    assert "Traceback" not in out and QUEUE_PW not in out
    assert _status(tmp_path, queue)["ok"]
