"""`mailctl jobs status|retry|cancel`: the queue as a person (or a script) needs it.

An account's state comes from its procrastinate job (queued, copying, done,
failed, cancelled) and mailctl's row (progress, failure kind, the server's
words, advice). A job whose worker died shows as queued again once the
stalled-job recovery of a live worker has put it back.
"""

from __future__ import annotations

import time
from typing import Any

from mailctl.jobs.queue import QueueUrl, connect

STATES = ("queued", "copying", "retrying", "done", "failed", "cancelled")


def account_state(job_status: str | None, row_status: str) -> str:
    """What `jobs status` calls an account: its job's state, with our row's "retrying"."""
    if job_status == "todo":
        return "retrying" if row_status == "retrying" else "queued"
    if job_status == "doing":
        return "copying"
    if job_status == "succeeded":
        return "done"
    if job_status == "failed":
        return "failed"
    if job_status in ("cancelled", "aborted"):
        return "cancelled"
    return row_status


def collect(url: QueueUrl) -> dict[str, Any]:
    """Everything `jobs status` shows, as the --json document."""
    with connect(url) as conn:
        if conn.execute("SELECT to_regclass('mailctl_jobs_accounts')").fetchone()[0] is None:
            rows: list[Any] = []
            workers = 0
        else:
            rows = conn.execute(
                "SELECT a.account, a.kind, a.label, a.status, a.messages, a.bytes, a.copied, "
                "a.runs, a.worker, a.failure, a.words, a.advice, "
                "extract(epoch from a.started_at), extract(epoch from a.finished_at), "
                "j.status::text, j.attempts, j.id, extract(epoch from a.submitted_at) "
                "FROM mailctl_jobs_accounts a LEFT JOIN procrastinate_jobs j "
                "ON j.id = a.job_id ORDER BY a.label").fetchall()
            workers = conn.execute(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - interval '60 seconds'").fetchone()[0]
        now = conn.execute("SELECT extract(epoch from now())").fetchone()[0]
    accounts = []
    counts = dict.fromkeys(STATES, 0)
    for r in rows:
        state = account_state(r[14], r[3])
        counts[state] = counts.get(state, 0) + 1
        accounts.append({
            "account": r[0], "kind": r[1], "label": r[2], "state": state,
            "messages": r[4], "bytes": r[5], "copied": r[6], "runs": r[7], "worker": r[8],
            "attempts": r[15], "job_id": r[16],
            "failure": r[9] if state in ("failed", "retrying") else None,
            "words": r[10] if state in ("failed", "retrying") else None,
            "advice": r[11] if state in ("failed", "retrying") else None,
            "seconds": (round(float(r[13]) - float(r[12]), 2)
                        if r[12] is not None and r[13] is not None and state == "done"
                        else None)})
    return {"ok": counts["failed"] == 0, "queue": url.display(), "accounts_total": len(rows),
            "states": counts, "workers": workers,
            **_rates(accounts, rows, float(now)), "accounts": accounts,
            "failures": [{k: a[k] for k in ("label", "state", "failure", "words", "advice")}
                         for a in accounts if a["failure"]]}


def _rates(accounts: list[dict[str, Any]], rows: list[Any], now: float) -> dict[str, Any]:
    """Totals, throughput since the first job started, and an ETA from the messages a
    finished account had on average."""
    msgs = sum(a["messages"] for a in accounts)
    nbytes = sum(a["bytes"] for a in accounts)
    starts = [float(r[12]) for r in rows if r[12] is not None]
    elapsed = now - min(starts) if starts else 0.0
    rate = msgs / elapsed if elapsed > 0 else 0.0
    done = [a for a in accounts if a["state"] == "done"]
    left = [a for a in accounts if a["state"] in ("queued", "copying", "retrying")]
    eta = None
    if left and done and rate > 0:
        per = sum(a["messages"] for a in done) / len(done)
        remaining = max(0.0, per * len(left) - sum(a["messages"] for a in left))
        eta = round(remaining / rate, 1)
    elif not left:
        eta = 0.0
    return {"messages": msgs, "bytes": nbytes, "elapsed_seconds": round(elapsed, 1),
            "messages_per_second": round(rate, 1),
            "bytes_per_second": round(nbytes / elapsed, 1) if elapsed > 0 else 0.0,
            "eta_seconds": eta}


def select(conn: Any, accounts: list[str], failure: str | None, states: tuple[str, ...]
           ) -> list[tuple[str, str, str, dict[str, Any], int | None]]:
    """(account, kind, label, spec, job id) of the accounts named (key, label or a part of
    it) or with this failure kind, in one of `states`."""
    rows = conn.execute(
        "SELECT a.account, a.kind, a.label, a.spec, a.job_id, j.status::text, a.status, "
        "a.failure FROM mailctl_jobs_accounts a LEFT JOIN procrastinate_jobs j "
        "ON j.id = a.job_id").fetchall()
    out = []
    for key, kind, label, spec, job_id, jstatus, rstatus, fkind in rows:
        if account_state(jstatus, rstatus) not in states:
            continue
        if failure is not None and fkind != failure:
            continue
        if accounts and not any(a == key or a in label for a in accounts):
            continue
        out.append((key, kind, label, spec, job_id))
    return out


TASKS = {"migrate": "migrate_account", "domain-backup": "backup_mailbox",
         "migrate-domain": "migrate_mailbox", "move-run": "move_mailbox"}


def retry(url: QueueUrl, accounts: list[str], failure: str | None) -> dict[str, Any]:
    """Failed (or cancelled) accounts queued again with the job they had."""
    from mailctl.jobs.submit import enqueue

    with connect(url) as conn:
        chosen = select(conn, accounts, failure, ("failed", "cancelled"))
    out: dict[str, Any] = {"ok": True, "queued": 0, "accounts": []}
    for kind in sorted({c[1] for c in chosen}):
        items = [(k, label, spec) for k, kd, label, spec, _ in chosen if kd == kind]
        res = enqueue(url, TASKS[kind], kind, items)
        out["queued"] += res["queued"]
        out["accounts"] += res["accounts"]
    return out


def cancel(url: QueueUrl, accounts: list[str], failure: str | None) -> dict[str, Any]:
    """Queued (or retrying) jobs cancelled; a copy that is running is asked to stop
    (procrastinate's abort): it ends after the batch it is on, which the target has
    confirmed and the state recorded, so `jobs retry` or a new submit goes on from there."""
    from mailctl.jobs.tasks import app

    application = app(url)
    cancelled: list[str] = []
    stopping: list[str] = []
    with connect(url) as conn, application.open():
        for _key, _kind, label, _spec, job_id in select(
                conn, accounts, failure, ("queued", "retrying", "copying")):
            if job_id is None:
                continue
            st = conn.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s",
                              (job_id,)).fetchone()
            if not st or st[0] not in ("todo", "doing"):
                continue
            if application.job_manager.cancel_job_by_id(job_id, abort=st[0] == "doing"):
                (cancelled if st[0] == "todo" else stopping).append(label)
    return {"ok": True, "cancelled": len(cancelled), "accounts": cancelled,
            "stopping": stopping}


def wait_idle(url: QueueUrl, timeout: float, poll: float = 0.5) -> dict[str, Any]:
    """Until no account is queued, copying or retrying (for scripts and tests)."""
    t0 = time.monotonic()
    while True:
        st = collect(url)
        busy = sum(st["states"][s] for s in ("queued", "copying", "retrying"))
        if not busy or time.monotonic() - t0 > timeout:
            return st
        time.sleep(poll)
