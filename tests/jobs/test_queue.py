"""Jobs on a real PostgreSQL queue, copied by worker processes between real Dovecots."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.mailstack import MailStack, unique_domain
from tests.fixtures.postgres import PostgresServer
from tests.jobs.helpers import QUEUE_PW, ConnectionCounter, Workers, jobs_cli
from tests.sync.helpers import dump, fill, message, pwfile

pytestmark = pytest.mark.mailstack
T0 = 1_650_000_000


def _db(server: PostgresServer) -> tuple[str, str]:
    """(queue URL with a password, the database's name)."""
    url = server.create_database()
    name = url.rsplit("/", 1)[1]
    return server.queue_url(name, QUEUE_PW), name


def _accounts(src: MailStack, dst: MailStack, tmp: Path, n: int, *, msgs: int = 3,
              seed: int = 1, dst_passwords: dict[int, str] | None = None
              ) -> tuple[Path, list[tuple[str, str, str, str]]]:
    """n source accounts with mail and n empty targets; the accounts CSV."""
    rng = random.Random(seed)
    dom_s, dom_d = unique_domain("src"), unique_domain("dst")
    pairs = [(f"u{i}@{dom_s}", f"pw-s{i}-x", f"u{i}@{dom_d}", f"pw-d{i}-y") for i in range(n)]
    src.set(accounts={a: pa for a, pa, _, _ in pairs})
    dst.set(accounts={b: pb for _, _, b, pb in pairs})
    for i, (a, pa, _, _) in enumerate(pairs):
        k = msgs + rng.randint(0, 2)
        plan = {"INBOX": [(message(10_000 * seed + 100 * i + j, rng=rng), "(\\Seen)", T0 + j)
                          for j in range(k)]}
        if i % 3 == 0:
            plan["Archive"] = [(message(900_000 + 100 * i + seed, rng=rng), "($Keep)", T0)]
        fill(src.info, a, pa, plan)
    rows = ["src,dst,password1_file,password2_file"]
    for i, (a, pa, b, pb) in enumerate(pairs):
        pw2 = (dst_passwords or {}).get(i, pb)
        rows.append(f"imap://{a}@{src.info.host}:{src.info.ports.imap},"
                    f"imap://{b}@{dst.info.host}:{dst.info.ports.imap},"
                    f"{pwfile(tmp, pa, f'p{seed}s{i}')},{pwfile(tmp, pw2, f'p{seed}d{i}')}")
    csv = tmp / f"accounts{seed}.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv, pairs


def _status(tmp: Path, queue: str) -> dict[str, Any]:
    r = jobs_cli(tmp, "jobs", "status", "--json", "--queue", queue)
    assert r.code in (0, 1), r.all
    return json.loads(r.out)  # type: ignore[no-any-return]


def _wait(tmp: Path, queue: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = _status(tmp, queue)
        busy = sum(st["states"][s] for s in ("queued", "copying", "retrying"))
        if not busy or time.monotonic() > deadline:
            return st
        time.sleep(1)


def _exact(src: MailStack, dst: MailStack, pairs: list[tuple[str, str, str, str]]) -> None:
    """Every target holds exactly its source's messages, with their flags: none lost,
    none twice."""
    for a, pa, b, pb in pairs:
        want, got = dump(src.info, a, pa), dump(dst.info, b, pb)
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, b


def _job_rows(server: PostgresServer, db: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(host="127.0.0.1", port=server.port, user=server.user,
                         dbname=db) as conn:
        return conn.execute("SELECT lock, status::text, attempts FROM procrastinate_jobs"
                            ).fetchall()


def test_submit_once_a_worker_copies_and_a_second_submit_is_not_a_second_job(
        mailstack_factory: Any, postgres_server: PostgresServer, tmp_path: Path) -> None:
    src, dst = mailstack_factory(), mailstack_factory()
    queue, db = _db(postgres_server)
    csv, pairs = _accounts(src, dst, tmp_path, 6)
    r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue)
    assert r.code == 0, r.all
    assert "queued 6 accounts" in r.out
    r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue,
                 "--json")
    assert r.code == 0, r.all
    again = json.loads(r.out)
    assert again["queued"] == 0 and again["already_queued"] == 6
    assert len(_job_rows(postgres_server, db)) == 6
    st = _status(tmp_path, queue)
    assert st["states"]["queued"] == 6 and st["accounts_total"] == 6
    workers = Workers(tmp_path, queue)
    try:
        workers.start("a", "--until-empty")
        p = workers.procs["a-1"]
        p.wait(timeout=180)
    finally:
        workers.stop()
    st = _status(tmp_path, queue)
    assert st["states"]["done"] == 6, st
    assert st["messages"] == sum(a["messages"] for a in st["accounts"]) > 0
    assert st["eta_seconds"] == 0.0
    _exact(src, dst, pairs)
    # submitted again once done: a new pass that finds nothing to copy
    r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue)
    assert "queued 6 accounts" in r.out
    workers = Workers(tmp_path, queue)
    try:
        workers.start("b", "--until-empty")
        workers.procs["b-1"].wait(timeout=180)
    finally:
        workers.stop()
    st = _status(tmp_path, queue)
    assert st["states"]["done"] == 6 and all(a["copied"] == 0 for a in st["accounts"])
    _exact(src, dst, pairs)
    out = r.all + workers.output()
    assert QUEUE_PW not in out
