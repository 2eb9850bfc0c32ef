"""The jobs: one account pair of a migration, one mailbox of a domain backup.

Declared on a Blueprint (no database here); queue.app() adds them to an App.
Each job, in order:

1. takes the account's advisory lock on a control connection of its own. The
   job's procrastinate `lock` already keeps two jobs of one account apart; this
   lock also covers a job that the stalled-job recovery re-queued while its
   first worker, slow but alive, still copies (the second one waits and retries).
   It dies with the session, so a worker killed with -9 frees the account.
2. waits for a connection slot at each server with a limit (slots.py);
3. runs the sync engine (domain.mailsync.sync_one, one session per side) with
   the state in PostgreSQL (pgstate.py): whichever worker runs the account next
   resumes from the last committed batch, dead runs' pending uploads included;
4. records the result, or the failure's kind and the server's words, and
   raises CopyFailed (retried, growing wait) or CopyRefused (not retried).

Credentials never enter the queue: a job names password files, `${env:..}` or
`${file:..}` references and config files, resolved on the worker's host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from procrastinate import Blueprint, JobContext, RetryStrategy

from mailctl.jobs import failures

bp = Blueprint()

# Retries of a server that is down or drops us: how many (after the first run), and the
# wait before the first (growing by as much each time: 10, 20, 30 ... s).
# MAILCTL_JOBS_RETRY_WAIT lets tests wait less.
ATTEMPTS = int(os.environ.get("MAILCTL_JOBS_ATTEMPTS", "6"))
_WAIT = int(os.environ.get("MAILCTL_JOBS_RETRY_WAIT", "10"))
RETRY = RetryStrategy(max_attempts=ATTEMPTS, wait=_WAIT, linear_wait=_WAIT,
                      retry_exceptions={failures.CopyFailed})
LOCK_WAIT = 30.0  # seconds a job waits for its account's lock before it is retried later

_queue: Any = None  # the QueueUrl, set by the worker before it runs jobs
_name: str | None = None  # the worker's --name


def use_queue(url: Any, name: str | None = None) -> None:
    global _queue, _name
    _queue, _name = url, name


def account_key(src: str, dst: str) -> str:
    return hashlib.sha256(f"{src}\0{dst}".encode()).hexdigest()[:20]


def worker_name() -> str:
    return _name or f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def _control(account: str, servers: list[str]) -> Iterator[tuple[Any, threading.Lock]]:
    """The control connection: the account's lock and the server slots, held on it."""
    from mailctl.jobs import queue, slots

    conn = queue.connect(_queue)
    try:
        conn.execute("SET application_name = 'mailctl-job'")
        with contextlib.suppress(Exception):
            conn.execute("SET tcp_keepalives_idle = 5")
        key = int(account[:8], 16) - (1 << 31)
        t0 = time.monotonic()
        while not conn.execute("SELECT pg_try_advisory_lock(7265, %s)", (key,)).fetchone()[0]:
            if time.monotonic() - t0 > LOCK_WAIT:
                raise failures.CopyFailed(failures.DOWN, "another worker is still copying "
                                          "this account")
            time.sleep(0.5)
        with slots.held(conn, servers):
            yield conn, threading.Lock()
    finally:
        conn.close()


def _run(context: JobContext, account: str, servers: list[str],
         copy: Callable[[Any, threading.Lock], Any]) -> dict[str, Any]:
    """Steps 1-4 around `copy(conn, lock)`, which returns a MailboxResult."""
    import psycopg

    from mailctl.jobs import progress

    job_id = context.job.id if context.job else None
    try:
        with _control(account, servers) as (conn, lock):
            with lock:
                progress.started(conn, account, job_id, worker_name())
            try:
                res = copy(conn, lock)
            except failures.CopyRefused as exc:
                with lock:
                    progress.finished(conn, account, None, exc.kind, exc.words,
                                      failures.ADVICE[exc.kind])
                raise
            with lock:
                if res.ok:
                    progress.finished(conn, account, res)
                    return res.as_dict()  # type: ignore[no-any-return]
                kind = failures.classify(res.error or "")
                last = context.job.attempts >= ATTEMPTS if context.job else True  # retries
                status = "retrying" if failures.retryable(kind) and not last else "failed"
                progress.finished(conn, account, res, kind, res.error,
                                  failures.ADVICE[kind], status=status)
            if failures.retryable(kind):
                raise failures.CopyFailed(kind, res.error or "")
            raise failures.CopyRefused(kind, res.error or "")
    except psycopg.OperationalError as exc:
        from mailctl.secret import scrub

        raise failures.CopyFailed(failures.DOWN, f"the queue database: {scrub(str(exc))}"
                                  ) from None


def _servers(*endpoints: Any) -> list[str]:
    return [f"{ep.host}:{ep.port}".lower() for ep in endpoints if ep.kind == "imap"]


@bp.task(name="migrate_account", pass_context=True, retry=RETRY)
def migrate_account(context: JobContext, account: str, spec: dict[str, Any]
                    ) -> dict[str, Any]:
    """One account pair of `jobs submit migrate`."""
    from mailctl.jobs.pgstate import PgState
    from mailctl.jobs.progress import DbProgress
    from mailctl.sync.endpoint import parse_endpoint, read_password
    from mailctl.sync.engine import Options
    from mailctl.sync.model import UsageError
    from mailctl.sync.stores import open_store

    s, d = parse_endpoint(spec["src"]), parse_endpoint(spec["dst"])
    base = spec.get("base") or "."

    def password(n: str, ep: Any) -> Any:
        if ep.kind != "imap":
            return None
        pf = spec.get(f"password{n}_file")
        if pf and not os.path.isabs(pf):
            pf = os.path.join(base, pf)
        try:
            return read_password(pf, spec.get(f"password{n}_ref"), ep.label)
        except UsageError as exc:  # a file or variable missing on this worker's host
            raise failures.CopyRefused(failures.AUTH, f"{exc} (on worker {worker_name()})"
                                       ) from None

    def copy(conn: Any, lock: threading.Lock) -> Any:
        from mailctl.domain.mailsync import sync_one
        from mailctl.jobs import queue

        p1, p2 = password("1", s), password("2", d)
        ca = spec.get("ca_file")
        maps = [tuple(m.split("=", 1)) for m in spec.get("map") or []]
        opts = Options(folders=spec.get("folders") or [], exclude=spec.get("exclude") or [],
                       maps=maps, jobs=1)  # one session per side: a slot is a connection
        return sync_one(
            spec["src"], lambda: open_store(s, p1, cafile=ca, readonly=True),
            lambda: open_store(d, p2, cafile=ca), f"the queue's state of {s.label}",
            opts, (s.label, d.label), DbProgress(conn, lock, account),
            open_state=lambda: PgState(queue.connect(_queue), account,
                                       f"the queue's state of {s.label} -> {d.label}"))

    return _run(context, account, _servers(s, d), copy)


@bp.task(name="backup_mailbox", pass_context=True, retry=RETRY)
def backup_mailbox(context: JobContext, account: str, spec: dict[str, Any]
                   ) -> dict[str, Any]:
    """One mailbox of `jobs submit domain-backup`: into DIR/mail/<address>/ (DIR on storage
    every worker mounts; the mailbox's sync state lives beside its Maildir there, as in
    `mailctl domain backup`), then the manifest is merged under the backup's lock."""
    from pathlib import Path

    from mailctl.domain import backup as dbackup
    from mailctl.jobs.progress import DbProgress
    from mailctl.sync.engine import Options
    from mailctl.sync.maildir import MaildirStore

    address, dest = spec["mailbox"], Path(spec["dir"])
    access = _domain_access(spec)

    def copy(conn: Any, lock: threading.Lock) -> Any:
        from mailctl.domain.mailsync import sync_one
        from mailctl.util.atomic import locked

        md = dbackup.mail_dir(dest, address)
        res = sync_one(address, lambda: access.store(address, readonly=True),
                       lambda: MaildirStore(str(md)), str(md / dbackup.STATE_NAME),
                       Options(jobs=1), (f"mailbox:{address}", "maildir:."),
                       DbProgress(conn, lock, account))
        if res.ok:
            with locked(dest / ".lock", timeout=600):
                result = dbackup.BackupResult(dest, spec["domain"], spec["provider"],
                                              {address: res}, list(spec.get("keys") or []))
                dbackup.write_manifest(dest, spec["domain"], spec["provider"],
                                       list(spec.get("all") or [address]), result)
        return res

    return _run(context, account, [f"{access.host}:{access.port}".lower()], copy)


def _domain_access(spec: dict[str, Any]) -> Any:
    from pathlib import Path

    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config
    from mailctl.domain.access import Overrides, access_for
    from mailctl.errors import MailctlError

    try:
        config = load_config(Path(spec["config"]))
        return access_for(config, spec["provider"], Overrides(
            imap=spec.get("imap"), ca_file=spec.get("ca_file")))
    except ConfigError as exc:
        raise failures.CopyRefused(failures.OTHER, f"{spec['config']}: {exc} (on worker "
                                   f"{worker_name()})") from None
    except MailctlError as exc:
        raise failures.CopyRefused(failures.AUTH, f"{exc} (on worker {worker_name()})"
                                   ) from None
