"""`mailctl jobs submit|status|retry|cancel` and `mailctl worker`: the PostgreSQL queue.

The work lives in mailctl.jobs; this parses, checks every argument before any
side effect (exit 64), and prints. The queue URL's password is a Secret from
the moment it is parsed (mailctl.jobs.queue) and is never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mailctl.cli.common import (
    FAILED,
    INTERRUPTED,
    OK,
    PROVIDER,
    ConfigOpt,
    JsonOpt,
    fail,
    json_errors,
    usage,
)

if TYPE_CHECKING:
    from mailctl.jobs.queue import QueueUrl

app = typer.Typer(no_args_is_help=True, help="Mail copy jobs on a PostgreSQL queue.")
submit_app = typer.Typer(no_args_is_help=True, help="Queue one job per account.")
app.add_typer(submit_app, name="submit")
T = TypeVar("T")

QueueOpt = Annotated[str | None, typer.Option(
    "--queue", "-q", metavar="URL", help="the queue: postgresql://USER[:PASSWORD]@HOST[:PORT]"
    "/DATABASE [default: $MAILCTL_QUEUE]; the password may also come from PGPASSWORD or "
    "~/.pgpass", show_default=False)]
AccountsArg = Annotated[list[str] | None, typer.Argument(
    metavar="[ACCOUNT]...", help="accounts by key, label or a part of it (e.g. an address) "
    "[default: every one in that state]", show_default=False)]
FailureOpt = Annotated[str | None, typer.Option(
    "--failure", metavar="KIND", help="only accounts that failed this way: auth, quota, "
    "'server down', 'message rejected' or other", show_default=False)]
CaOpt = Annotated[str | None, typer.Option(
    "--ca-file", metavar="PEM", help="CA bundle for imaps:// (a path every worker can read) "
    "[default: the system's]", show_default=False)]
KINDS = ("auth", "quota", "server down", "message rejected", "other")


def _queue(raw: str | None) -> QueueUrl:
    from mailctl.jobs.queue import QueueUsageError, parse

    try:
        return parse(raw)
    except QueueUsageError as exc:
        what, sep, rest = str(exc).rpartition(" (expected ")
        usage(what if sep else str(exc), rest.rstrip(")") if sep else "a postgresql:// URL")


def _run(fn: Callable[[], T]) -> T:
    from mailctl.errors import MailctlError
    from mailctl.jobs.queue import QueueDown
    from mailctl.secret import scrub

    try:
        return fn()
    except QueueDown as exc:
        fail(scrub(str(exc)), PROVIDER, kind="queue")
    except MailctlError as exc:
        fail(scrub(str(exc)), FAILED)


def _print_submit(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(res, indent=2))
        return
    print(f"queued {res['queued']} accounts on {res['queue']}"
          + (f"; {res['already_queued']} already queued or running, not queued again"
             if res["already_queued"] else ""))


MailboxOpt = Annotated[list[str] | None, typer.Option(
    "--mailbox", "-m", metavar="ADDRESS", help="only this mailbox (repeatable)",
    show_default=False)]


@submit_app.command("migrate")
def submit_migrate(
    accounts: Annotated[Path | None, typer.Option(
        "--accounts", metavar="FILE", help="the `mailctl migrate` accounts file (CSV with a "
        "header, or YAML): src, dst, password1_file|password1_ref, password2_file|"
        "password2_ref, folders, exclude, map; files and ${env:..} are read on the workers",
        show_default=False)] = None,
    domain: Annotated[str | None, typer.Option(
        "--domain", metavar="DOMAIN", help="instead of --accounts: every mailbox of DOMAIN "
        "(declared in the config) from its provider to --to, signed in through mail_access",
        show_default=False)] = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="PROVIDER", help="with --domain: the provider (of the config) whose "
        "mailboxes of the same addresses receive the mail; they must exist there",
        show_default=False)] = None,
    file: ConfigOpt = None, mailbox: MailboxOpt = None,
    queue: QueueOpt = None, ca_file: CaOpt = None, as_json: JsonOpt = False,
) -> None:
    """One job per account pair (--accounts), or per mailbox of a domain (--domain D --to
    PROVIDER); each is copied by whichever worker is free."""
    from mailctl.jobs.submit import enqueue, migrate_specs
    from mailctl.sync.files import read_text
    from mailctl.sync.model import UsageError

    json_errors(as_json)
    if (accounts is None) == (domain is None):
        usage("give --accounts FILE or --domain DOMAIN", "exactly one of them")
    if domain is None and (to or mailbox):
        usage("--to and --mailbox go with --domain", "--domain DOMAIN --to PROVIDER")
    if domain is not None and not to:
        usage("--domain needs --to", "--domain DOMAIN --to PROVIDER")
    url = _queue(queue)
    try:
        if ca_file is not None:
            read_text(ca_file, "--ca-file")
        if domain is not None:
            _submit_domain(url, domain, str(to), file, mailbox, ca_file, as_json)
            return
        assert accounts is not None
        items = migrate_specs(accounts, ca_file)
    except UsageError as exc:
        what, sep, rest = str(exc).rpartition(" (expected ")
        usage(what if sep else str(exc), rest.rstrip(")") if sep else "a valid accounts file")
    _print_submit(_run(lambda: enqueue(url, "migrate_account", "migrate", items)), as_json)


def _submit_domain(url: QueueUrl, domain: str, to: str, file: Path | None,
                   mailbox: list[str] | None, ca_file: str | None, as_json: bool) -> None:
    from mailctl.cli.common import load
    from mailctl.cli.domain import addresses, domain_name, run_library
    from mailctl.jobs.queue import connect
    from mailctl.jobs.submit import domain_migrate_specs, enqueue

    config = load(file)
    if to not in config.providers:
        usage(f"--to {to} is not a provider of {config.path}",
              "one of " + (", ".join(sorted(config.providers)) or "(none)"))
    name = domain_name(config, domain)
    boxes = addresses(name, mailbox)
    _run(lambda: connect(url).close())
    items = run_library(lambda: domain_migrate_specs(config, name, to, boxes, ca_file))
    _print_submit(_run(lambda: enqueue(url, "migrate_mailbox", "migrate-domain", items)),
                  as_json)


@submit_app.command("move-run")
def submit_move_run(
    project: Annotated[Path | None, typer.Option(
        "--project", "-p", metavar="DIR", help="the move project, on storage every worker "
        "mounts at the same path [default: the one move-* here]", show_default=False)] = None,
    no_ttl_wait: Annotated[bool, typer.Option(
        "--no-ttl-wait", help="cut over without waiting for the old TTL to expire")] = False,
    max_passes: Annotated[int, typer.Option(
        "--max-passes", min=1, max=100, help="delta passes at most before verifying")] = 10,
    resolver: Annotated[str | None, typer.Option(
        "--resolver", metavar="IP[:PORT]", help="where DNS changes made by hand are checked "
        "[default: the system's resolvers]", show_default=False)] = None,
    queue: QueueOpt = None, as_json: JsonOpt = False,
) -> None:
    """`mailctl move run` with each mailbox's step as a job: runs the phases that are not
    per mailbox, completes a round the workers finished, queues the next. Run it again
    when `jobs status` shows the round done."""
    from mailctl.cli.move import check_resolver, exclusive, find_project, guarded, open_move
    from mailctl.jobs.moverun import advance
    from mailctl.jobs.queue import ensure_schema

    json_errors(as_json)
    url = _queue(queue)
    check_resolver(resolver)
    root = find_project(project)
    move = open_move(root, quiet=as_json)
    _run(lambda: ensure_schema(url))
    res = guarded(lambda: _run(lambda: exclusive(root, lambda: advance(
        url, move, ttl_wait=not no_ttl_wait, resolver=resolver, max_passes=max_passes))))
    p = move.project
    res.update(phase=p.phase, next=p.next_phase, queue=url.display())
    if as_json:
        print(json.dumps({"ok": True, **res}, indent=2))
        return
    parts = [f"done: {', '.join(res['done']) or 'nothing'}", f"phase: {p.phase}"]
    if res["waiting"]:
        parts.append(f"{res['waiting']} mailboxes of {res['step']} still queued or copying "
                     "(`mailctl jobs status`); submit again when they are done")
    elif res["queued"]:
        parts.append(f"queued {res['queued']} mailboxes ({res['step']}) on {res['queue']}"
                     + (f", {len(res['requeued'])} of them again after a failure"
                        if res["requeued"] else "")
                     + "; submit again when `jobs status` shows them done")
    elif p.next_phase is None:
        parts.append("nothing left to queue" + ("" if p.ended else
                                                 " (`mailctl move finish` ends the move)"))
    print("; ".join(parts))


@submit_app.command("domain-backup")
def submit_domain_backup(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="a domain declared in the "
                                          "config", show_default=False)],
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="the backup directory, on storage every worker mounts at the same "
        "path (created 0700 if missing; its parent must exist)", show_default=False)],
    file: ConfigOpt = None, mailbox: MailboxOpt = None,
    imap: Annotated[str | None, typer.Option(
        "--imap", metavar="URL", help="the provider's IMAP server [default: mail_access]",
        show_default=False)] = None,
    queue: QueueOpt = None, ca_file: CaOpt = None, as_json: JsonOpt = False,
) -> None:
    """`mailctl domain backup` as one job per mailbox (sign-in from the config's
    mail_access, resolved on each worker)."""
    from mailctl.cli.common import load
    from mailctl.cli.domain import addresses, domain_name, run_library
    from mailctl.domain.backup import check_dir
    from mailctl.errors import MailctlError
    from mailctl.jobs.submit import domain_backup_specs, enqueue

    json_errors(as_json)
    url = _queue(queue)
    if ca_file is not None and not Path(ca_file).is_file():
        usage(f"--ca-file {ca_file} is not a readable file", "an existing file")
    try:
        check_dir(directory)
    except MailctlError as exc:
        usage(str(exc), "a writable directory")
    config = load(file)
    name = domain_name(config, domain)
    boxes = addresses(name, mailbox)
    from mailctl.jobs.queue import connect

    _run(lambda: connect(url).close())  # the queue reachable before DIR is written
    items = run_library(lambda: domain_backup_specs(config, name, directory, boxes, imap,
                                                    ca_file))
    _print_submit(_run(lambda: enqueue(url, "backup_mailbox", "domain-backup", items)), as_json)


@app.command("status")
def status(
    queue: QueueOpt = None, as_json: JsonOpt = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="a live table until nothing is queued or copying (Ctrl-C "
        "ends it)")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.2, max=3600, help="seconds between two refreshes of --watch")
    ] = 2.0,
    all_accounts: Annotated[bool, typer.Option(
        "--all", help="list every account, not only those copying, failed or retrying")
    ] = False,
) -> None:
    """Accounts per state, per-account progress, throughput, ETA, failures and what to do.
    Exit 1 if an account failed."""
    from mailctl.jobs.status import collect

    json_errors(as_json)
    url = _queue(queue)
    if as_json and watch:
        usage("--json with --watch", "one of them")
    if watch:
        from mailctl.cli.jobs_view import watch as live

        st = _run(lambda: live(lambda: collect(url), interval, all_accounts))
    else:
        st = _run(lambda: collect(url))
        if as_json:
            print(json.dumps(st, indent=2))
        else:
            from mailctl.cli.jobs_view import render

            render(st, all_accounts)
    raise typer.Exit(OK if st["ok"] else FAILED)


def _failure(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        usage(f"--failure {kind!r}", ", ".join(KINDS))


@app.command("retry")
def retry(accounts: AccountsArg = None, failure: FailureOpt = None, queue: QueueOpt = None,
          as_json: JsonOpt = False) -> None:
    """Queue failed or cancelled accounts again (after fixing what `jobs status` said)."""
    from mailctl.jobs.status import retry as do_retry

    json_errors(as_json)
    _failure(failure)
    url = _queue(queue)
    res = _run(lambda: do_retry(url, accounts or [], failure))
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        print(f"queued {res['queued']} accounts again")


@app.command("cancel")
def cancel(accounts: AccountsArg = None, failure: FailureOpt = None, queue: QueueOpt = None,
           as_json: JsonOpt = False) -> None:
    """Cancel queued or retrying accounts; a copy that is running stops after the batch it
    is on (nothing lost or copied twice: `jobs retry` goes on from there)."""
    from mailctl.jobs.status import cancel as do_cancel

    json_errors(as_json)
    _failure(failure)
    url = _queue(queue)
    res = _run(lambda: do_cancel(url, accounts or [], failure))
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        print(f"cancelled {res['cancelled']} queued accounts"
              + (f"; {len(res['stopping'])} running, asked to stop after their current batch"
                 if res["stopping"] else ""))


def _expected_failure(record: Any) -> bool:
    """A job that failed the way mailctl classifies (auth, quota, server down, ...) is one
    log line, not a traceback: `jobs status` has its reason and what to do."""
    from mailctl.jobs.failures import CopyFailed, CopyRefused

    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, CopyFailed | CopyRefused):
        record.msg, record.args = f"{record.getMessage().split('(', 1)[0]}: {exc}", None
        record.exc_info = record.exc_text = None
    return True


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="jobs", help="Mail copy jobs on a PostgreSQL queue, across hosts.")

    @root.command("worker")
    def worker_cmd(
        queue: QueueOpt = None,
        concurrency: Annotated[int, typer.Option(
            "--concurrency", "-c", min=1, max=64, help="accounts this worker copies at once "
            "(each one session per side)")] = 4,
        host_limit: Annotated[list[str] | None, typer.Option(
            "--host-limit", metavar="SERVER=N", help="at most N connections to SERVER (host "
            "or host:port, 1-10000) across ALL workers, kept in the database; repeatable",
            show_default=False)] = None,
        stalled_after: Annotated[float, typer.Option(
            "--stalled-after", min=2, max=3600, help="seconds without a heartbeat after "
            "which another worker's jobs are queued again")] = 30.0,
        until_empty: Annotated[bool, typer.Option(
            "--until-empty", help="stop when no job is left to take (scripts, benchmarks)")
        ] = False,
        name: Annotated[str | None, typer.Option(
            "--name", metavar="NAME", help="this worker's name in logs and status "
            "[default: host:pid]", show_default=False)] = None,
    ) -> None:
        """Take jobs from the queue and copy them; run one per host, as many hosts as you
        like. Ctrl-C (or SIGTERM) stops after the running copies."""
        import asyncio
        import logging

        from mailctl.jobs import slots, worker
        from mailctl.jobs.queue import connect, ensure_schema
        from mailctl.jobs.tasks import worker_name
        from mailctl.secret import ScrubFilter

        url = _queue(queue)
        limits: dict[str, int] = {}
        for text in host_limit or []:
            try:
                server, n = slots.parse_limit(text)
            except ValueError as exc:
                what, _, rest = str(exc).rpartition(" (expected ")
                usage(what, rest.rstrip(")"))
            limits[server] = n
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(ScrubFilter())
        handler.addFilter(_expected_failure)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        plog = logging.getLogger("procrastinate")
        plog.handlers[:] = [handler]
        plog.setLevel(logging.WARNING)
        plog.propagate = False

        def setup() -> None:
            ensure_schema(url)
            with connect(url) as conn:
                slots.set_limits(conn, limits)

        _run(setup)
        print(f"worker {name or worker_name()} on {url.display()}", file=sys.stderr)
        try:
            asyncio.run(worker.run(url, concurrency, stalled_after, until_empty,
                                   name or worker_name()))
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None
