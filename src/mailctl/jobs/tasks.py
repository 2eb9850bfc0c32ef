"""The jobs: one account pair of a migration, one mailbox of a domain backup.

Declared on a Blueprint (no database here); app() adds them to an App.
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
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from procrastinate import Blueprint, JobContext, RetryStrategy

from mailctl.jobs import failures, queue

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


def worker_name() -> str:
    return _name or f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def _control(account: str, servers: list[str]) -> Iterator[tuple[Any, threading.Lock]]:
    """The control connection: the account's lock and the server slots, held on it."""
    from mailctl.jobs import slots

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
         copy: Callable[[Any], Any]) -> dict[str, Any]:
    """Steps 1-4 around `copy(progress)`, which returns a MailboxResult (or a dict with
    "ok", for a move's verify step). `progress` is the account's DbProgress: it stops
    the copy between two batches once `jobs cancel` asked this job to abort."""
    import psycopg
    from procrastinate.exceptions import JobAborted

    from mailctl.jobs import progress

    job_id = context.job.id if context.job else None
    try:
        with _control(account, servers) as (conn, lock):
            with lock:
                progress.started(conn, account, job_id, worker_name())
            prog = progress.DbProgress(conn, lock, account, stop=context.should_abort)
            try:
                res = copy(prog)
            except failures.CopyRefused as exc:
                with lock:
                    progress.finished(conn, account, None, exc.kind, exc.words,
                                      failures.ADVICE[exc.kind])
                raise
            except failures.Aborted as exc:
                with lock:
                    progress.cancelled(conn, account, prog.done, str(exc))
                raise JobAborted(str(exc)) from None
            if isinstance(res, dict):
                res = _Outcome(res)
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


class _Outcome:
    """A step that returns a dict (a move's verify) seen as a MailboxResult."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d
        self.ok = bool(d.get("ok"))
        self.error = d.get("error") or "; ".join(d.get("errors") or []) or (
            None if self.ok else f"{d.get('missing')} missing, {d.get('date_mismatch')} "
            "dates differ")
        self.copied, self.adopted, self.bytes = int(d.get("copied", 0)), 0, 0
        if "messages" in d:
            self.adopted = int(d["messages"]) - self.copied

    def as_dict(self) -> dict[str, Any]:
        return self.d


def _servers(*endpoints: Any) -> list[str]:
    return [f"{ep.host}:{ep.port}".lower() for ep in endpoints if ep.kind == "imap"]


@bp.task(name="migrate_account", pass_context=True, retry=RETRY)
def migrate_account(context: JobContext, account: str, spec: dict[str, Any]
                    ) -> dict[str, Any]:
    """One account pair of `jobs submit migrate`."""
    from mailctl.jobs.pgstate import PgState
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

    def copy(prog: Any) -> Any:
        from mailctl.domain.mailsync import sync_one

        p1, p2 = password("1", s), password("2", d)
        ca = spec.get("ca_file")
        maps = [tuple(m.split("=", 1)) for m in spec.get("map") or []]
        opts = Options(folders=spec.get("folders") or [], exclude=spec.get("exclude") or [],
                       maps=maps, jobs=1)  # one session per side: a slot is a connection
        return sync_one(
            spec["src"], lambda: open_store(s, p1, cafile=ca, readonly=True),
            lambda: open_store(d, p2, cafile=ca), f"the queue's state of {s.label}",
            opts, (s.label, d.label), prog,
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
    from mailctl.sync.engine import Options
    from mailctl.sync.maildir import MaildirStore

    address, dest = spec["mailbox"], Path(spec["dir"])
    access = _domain_access(spec)

    def copy(prog: Any) -> Any:
        from mailctl.domain.mailsync import sync_one
        from mailctl.util.atomic import locked

        md = dbackup.mail_dir(dest, address)
        res = sync_one(address, lambda: access.store(address, readonly=True),
                       lambda: MaildirStore(str(md)), str(md / dbackup.STATE_NAME),
                       Options(jobs=1), (f"mailbox:{address}", "maildir:."), prog)
        if res.ok:
            with locked(dest / ".lock", timeout=600):
                result = dbackup.BackupResult(dest, spec["domain"], spec["provider"],
                                              {address: res}, list(spec.get("keys") or []))
                dbackup.write_manifest(dest, spec["domain"], spec["provider"],
                                       list(spec.get("all") or [address]), result)
        return res

    return _run(context, account, [f"{access.host}:{access.port}".lower()], copy)


@bp.task(name="migrate_mailbox", pass_context=True, retry=RETRY)
def migrate_mailbox(context: JobContext, account: str, spec: dict[str, Any]
                    ) -> dict[str, Any]:
    """One mailbox of `jobs submit migrate --domain D --to P`: the same address from the
    domain's provider to P, each side signed in through its `mail_access` (resolved on
    this worker), folder roles mapped as `mailctl move` maps them, the state in
    PostgreSQL as for `migrate_account`."""
    from mailctl.jobs.pgstate import PgState
    from mailctl.sync.engine import Options

    address = spec["mailbox"]
    src = _domain_access(spec)
    dst = _domain_access({**spec, "provider": spec["to"], "imap": None})
    bind = (f"{spec['provider']}:{address}", f"{spec['to']}:{address}")

    def copy(prog: Any) -> Any:
        from mailctl.domain.mailsync import sync_one
        from mailctl.sync.roles import role_maps, roles

        return sync_one(
            address, lambda: src.store(address, readonly=True), lambda: dst.store(address),
            f"the queue's state of {bind[0]}", Options(jobs=1), bind, prog,
            maps=lambda s, d: role_maps(roles(s), roles(d), []),
            open_state=lambda: PgState(queue.connect(_queue), account,
                                       f"the queue's state of {bind[0]} -> {bind[1]}"))

    return _run(context, account, [f"{a.host}:{a.port}".lower() for a in (src, dst)], copy)


@bp.task(name="move_mailbox", pass_context=True, retry=RETRY)
def move_mailbox(context: JobContext, account: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One mailbox's step of a move (`jobs submit move-run`): Move.presync_one, the
    cutover's catch-up pass, delta_one or settle_one, exactly as `mailctl move run` calls
    them, with the project directory (on storage every worker mounts) holding the
    mailbox's sync state and, merged under its lock, the result (moveproject.py)."""
    from mailctl.jobs.moverun import mailbox_step

    step = mailbox_step(spec, worker_name())
    return _run(context, account, step.servers, step.run)


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


def app(url: queue.QueueUrl) -> Any:
    """The procrastinate App over this database, with mailctl's tasks."""
    import procrastinate

    application = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url.conninfo(), min_size=1, max_size=4,
        kwargs={"application_name": "mailctl-queue"}))
    application.add_tasks_from(bp, namespace="mailctl")
    return application
