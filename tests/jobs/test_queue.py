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
    r = jobs_cli(tmp_path, "jobs", "status", "--watch", "--all", "--queue", queue)
    assert r.code == 0 and "done 6" in r.out and "ETA 0m00s" in r.out, r.all
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


def test_two_hundred_accounts_across_workers_killed_and_joined_exactly_once(
        mailstack_factory: Any, postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Three worker processes (each its own HOME and state directory) copy 200 accounts:
    one is killed with -9 mid-copy three times and restarted, one joins late, and a limit
    of 3 connections at the source server holds across all of them, counted at the
    server. Every account ends up exact, each with one job."""
    src, dst = mailstack_factory(), mailstack_factory()
    queue, db = _db(postgres_server)
    csv, pairs = _accounts(src, dst, tmp_path, 200, msgs=3, seed=2)
    port = src.info.ports.imap
    limit = ["--host-limit", f"127.0.0.1:{port}=3", "--concurrency", "4"]
    workers = Workers(tmp_path, queue)
    try:
        a = workers.start("a", *limit)
        workers.start("b", *limit)
        r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue)
        assert r.code == 0, r.all
        late = None
        kills = 0
        with ConnectionCounter(port) as counter:
            deadline = time.monotonic() + 240
            while kills < 3 and time.monotonic() < deadline:
                st = _status(tmp_path, queue)
                mine = [x for x in st["accounts"]
                        if x["state"] == "copying" and x["worker"] and a in x["worker"]]
                if st["states"]["done"] >= 20 * (kills + 1) and mine:
                    workers.kill9(a)  # mid-copy: it holds accounts, slots and sessions
                    kills += 1
                    a = workers.start("a", *limit)
                    if late is None:
                        late = workers.start("c", *limit)  # a host that joins later
                time.sleep(0.3)
            assert kills == 3, "the workers finished before three kills"
            st = _wait(tmp_path, queue, timeout=400)
        assert st["states"]["done"] == 200, {k: v for k, v in st.items() if k != "accounts"}
        assert counter.peak <= 3, f"{counter.peak} connections at the source (limit 3)"
        assert counter.peak >= 2 and counter.samples > 100
        assert late is not None and any(x["worker"] == late for x in st["accounts"]), \
            "the late worker took no account"
        assert any(x["runs"] >= 2 for x in st["accounts"]), "no job of a killed worker resumed"
        jobs = _job_rows(postgres_server, db)
        assert len(jobs) == 200 and len({j[0] for j in jobs}) == 200
        assert {j[1] for j in jobs} == {"succeeded"}
    finally:
        workers.stop()
    _exact(src, dst, pairs)
    assert QUEUE_PW not in workers.output()


def test_failures_are_classified_and_auth_is_not_retried(
        mailstack_factory: Any, postgres_server: PostgresServer, tmp_path: Path) -> None:
    """A wrong password fails once (never a loop), a full target says quota, a server that
    is down is retried and then fails; each with the server's words and advice, and
    `jobs retry --failure auth` after the fix completes the account."""
    from tests.fixtures.mailstack import free_ports

    src, dst = mailstack_factory(), mailstack_factory()
    queue, _ = _db(postgres_server)
    csv, pairs = _accounts(src, dst, tmp_path, 3, msgs=4, seed=3,
                           dst_passwords={0: "wrong-Password-77"})
    dst.set(quotas={pairs[1][2]: "1k"})
    dead = free_ports(1)[0]  # nothing listens there: a server that is down
    text = csv.read_text().replace(f"@{src.info.host}:{src.info.ports.imap},imap://"
                                   f"{pairs[2][2]}", f"@127.0.0.1:{dead},imap://{pairs[2][2]}")
    csv.write_text(text)
    r = jobs_cli(tmp_path, "jobs", "submit", "migrate", "--accounts", csv, "--queue", queue)
    assert r.code == 0, r.all
    workers = Workers(tmp_path, queue)
    try:
        workers.start("a", extra={"MAILCTL_JOBS_ATTEMPTS": "2"})
        st = _wait(tmp_path, queue, timeout=120)
    finally:
        workers.stop()
    by = {x["label"].split(" -> ")[1]: x for x in st["accounts"]}
    auth = by[f"imap://{pairs[0][2]}@{dst.info.host}:{dst.info.ports.imap}"]
    quota = by[f"imap://{pairs[1][2]}@{dst.info.host}:{dst.info.ports.imap}"]
    down = by[f"imap://{pairs[2][2]}@{dst.info.host}:{dst.info.ports.imap}"]
    assert auth["state"] == "failed" and auth["failure"] == "auth" and auth["runs"] == 1
    assert "credentials" in auth["advice"] and auth["words"]
    assert quota["state"] == "failed" and quota["failure"] == "quota", quota
    assert "quota" in quota["advice"].lower() and quota["words"]
    assert down["state"] == "failed" and down["failure"] == "server down" and down["runs"] == 3
    assert "refused" in down["words"].lower()
    r = jobs_cli(tmp_path, "jobs", "status", "--queue", queue)
    assert r.code == 1 and "what to do:" in r.out and "auth" in r.out
    assert "wrong-Password-77" not in r.all + workers.output() + json.dumps(st)
    assert "Traceback" not in workers.output() and "auth: " in workers.output()
    # fix the password, retry the auth failures only
    Path(tmp_path / "p3d0").write_text(pairs[0][3] + "\n")
    r = jobs_cli(tmp_path, "jobs", "retry", "--failure", "auth", "--queue", queue)
    assert r.code == 0 and "queued 1 accounts again" in r.out, r.all
    workers = Workers(tmp_path, queue)
    try:
        workers.start("b", "--until-empty")
        workers.procs["b-1"].wait(timeout=120)
    finally:
        workers.stop()
    st = _status(tmp_path, queue)
    assert st["states"]["done"] == 1 and st["states"]["failed"] == 2
    _exact(src, dst, [pairs[0]])


def test_usage_errors_exit_64_and_the_queue_password_never_shows(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    queue, _ = _db(postgres_server)
    bad = tmp_path / "bad.csv"
    bad.write_text("src,dst\nimap://a@127.0.0.1:1,\n")
    cases: list[list[str | Path]] = [
        ["jobs", "status", "--queue", "mysql://u:" + QUEUE_PW + "@h/db"],
        ["jobs", "status", "--queue", f"postgresql://u:{QUEUE_PW}@/db"],
        ["jobs", "status", "--queue", f"postgresql://u:{QUEUE_PW}@h:99999/db"],
        ["jobs", "submit", "migrate", "--accounts", tmp_path / "missing.csv", "--queue", queue],
        ["jobs", "submit", "migrate", "--accounts", bad, "--queue", queue],
        ["jobs", "retry", "--failure", "bogus", "--queue", queue],
        ["worker", "--queue", queue, "--host-limit", "imap.example=0"],
        ["worker", "--queue", queue, "--host-limit", "imap.example"],
        ["worker", "--queue", queue, "--concurrency", "0"],
        ["jobs", "status"],  # no queue at all
    ]
    for args in cases:
        r = jobs_cli(tmp_path, *args)
        assert r.code == 64, (args, r.all)
        assert "error: " in r.err.lower() and "Traceback" not in r.all, r.all
        assert QUEUE_PW not in r.all, args
    # nothing was created in the database by any of them
    r = jobs_cli(tmp_path, "jobs", "status", "--json", "--queue", queue)
    assert r.code == 0 and json.loads(r.out)["accounts_total"] == 0
    # a queue that is down: exit 3, the password masked
    down = f"postgresql://mailctl:{QUEUE_PW}@127.0.0.1:1/x"
    r = jobs_cli(tmp_path, "jobs", "status", "--queue", down)
    assert r.code == 3 and QUEUE_PW not in r.all and "postgresql://mailctl:***@" in r.err
