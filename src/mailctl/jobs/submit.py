"""`mailctl jobs submit`: one job per account, each enqueued once.

An account already queued or being copied is not enqueued again: the job's
procrastinate `queueing_lock` (the account key) refuses a second job while the
first waits, and a job that is running is found by its `lock` before a new one
is deferred. Submitting a finished account again queues a new pass (an
incremental sync: only what is new is copied).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mailctl.jobs.queue import QueueUrl, connect, ensure_schema

ACTIVE = ("todo", "doing")


def migrate_specs(accounts: Path, ca_file: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(account key, label, job spec) per row, every row checked first (UsageError)."""
    from mailctl.jobs.queue import account_key
    from mailctl.sync.endpoint import parse_endpoint
    from mailctl.sync.migrate import load_accounts

    rows = load_accounts(accounts)
    base = str(accounts.resolve().parent)
    out = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        s, d = parse_endpoint(str(row["src"])), parse_endpoint(str(row["dst"]))
        key = account_key(s.label, d.label)
        if key in seen:
            from mailctl.sync.model import UsageError

            raise UsageError(f"{accounts}: account pair {s.label} -> {d.label} is listed twice "
                             f"(rows {seen[key] + 1} and {i + 1}; expected each pair once)")
        seen[key] = i
        spec: dict[str, Any] = {"src": str(row["src"]), "dst": str(row["dst"]), "base": base}
        for k in ("password1_file", "password2_file"):
            if row.get(k):
                p = Path(str(row[k])).expanduser()
                spec[k] = str(p if p.is_absolute() else Path(base) / p)
        for k in ("password1_ref", "password2_ref"):
            if row.get(k):
                spec[k] = str(row[k])
        for k in ("folders", "exclude", "map"):
            v = row.get(k) or []
            spec[k] = [v] if isinstance(v, str) else [str(x) for x in v]
        if ca_file:
            spec["ca_file"] = os.path.abspath(ca_file)
        out.append((key, f"{s.label} -> {d.label}", spec))
    return out


def enqueue(url: QueueUrl, task_name: str, kind: str,
            items: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Defer one job per item unless the account has one queued or running."""
    import procrastinate.exceptions

    from mailctl.jobs.tasks import app

    ensure_schema(url)
    queued: list[str] = []
    already: list[str] = []
    application = app(url)
    task = application.tasks[f"mailctl:{task_name}"]
    with connect(url) as conn, application.open():
        active = {r[0] for r in conn.execute(
            "SELECT lock FROM procrastinate_jobs WHERE status = ANY(%s) AND lock = ANY(%s)",
            (list(ACTIVE), [k for k, _, _ in items]))}
        for key, label, spec in items:
            if key in active:
                already.append(label)
                continue
            try:
                job_id = task.configure(lock=key, queueing_lock=key).defer(
                    account=key, spec=spec)
            except procrastinate.exceptions.AlreadyEnqueued:
                already.append(label)
                continue
            conn.execute(
                "INSERT INTO mailctl_jobs_accounts(account, kind, label, spec, job_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account) DO UPDATE SET "
                "kind = EXCLUDED.kind, label = EXCLUDED.label, spec = EXCLUDED.spec, "
                "job_id = EXCLUDED.job_id, status = 'queued', failure = NULL, words = NULL, "
                "advice = NULL, submitted_at = now(), started_at = NULL, finished_at = NULL, "
                "messages = 0, bytes = 0, copied = 0, updated_at = now()",
                (key, kind, label, json.dumps(spec), job_id))
            queued.append(label)
    return {"ok": True, "queue": url.display(), "queued": len(queued),
            "already_queued": len(already), "accounts": queued, "skipped": already}


def domain_backup_specs(config: Any, domain: str, dest: Path, mailboxes: list[str] | None,
                        imap: str | None, ca_file: str | None
                        ) -> list[tuple[str, str, dict[str, Any]]]:
    """Reads the domain at its provider and writes what is not mail (the declared state,
    DKIM keys) into DIR now; the mailboxes become the jobs."""
    from mailctl.domain import backup as dbackup
    from mailctl.domain.access import Overrides, access_for
    from mailctl.domain.keys import export_keys
    from mailctl.errors import MailctlError
    from mailctl.jobs.queue import account_key
    from mailctl.util.atomic import atomic_write, locked
    from mailctl.util.private import private_dir

    provider = config.desired.provider_of[domain]
    access_for(config, provider, Overrides(imap=imap, ca_file=ca_file))  # checked here too
    state = config.provider(provider).read([domain])[domain]
    if not state.exists:
        raise MailctlError(f"provider {provider!r} holds no domain {domain}")
    addresses = dbackup.chosen_mailboxes(state, provider, mailboxes)
    private_dir(str(dest))
    with locked(dest / ".lock", timeout=60):
        atomic_write(dest / dbackup.DECLARED,
                     dbackup.declared_yaml(config, provider, state), 0o600)
        keys = export_keys(config, provider, domain, dest / "dkim")
    base = {"config": str(Path(config.path).resolve()), "domain": domain,
            "provider": provider, "dir": str(dest.resolve()), "keys": keys,
            "all": sorted(state.mailboxes), "imap": imap,
            "ca_file": os.path.abspath(ca_file) if ca_file else None}
    return [(account_key(f"mailbox:{a}@{provider}", f"backup:{dest.resolve()}"),
             f"{a} -> backup {dest}", {**base, "mailbox": a}) for a in addresses]


def domain_migrate_specs(config: Any, domain: str, to: str, mailboxes: list[str] | None,
                         ca_file: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    """`jobs submit migrate --domain D --to P`: each mailbox of D at the provider the config
    declares for it, into the same address at provider P (both reached through their
    `mail_access`, checked here and resolved again on each worker). The mailboxes must
    exist at P already: creating them is `mailctl move`'s (or `apply`'s) work."""
    from mailctl.domain.access import Overrides, access_for
    from mailctl.domain.backup import chosen_mailboxes
    from mailctl.errors import MailctlError
    from mailctl.jobs.queue import account_key

    source = config.desired.provider_of[domain]
    if to == source:
        raise MailctlError(f"--to {to}: {domain} is at {to} already (expected another "
                           "provider of the config)")
    over = Overrides(ca_file=ca_file)
    access_for(config, source, over)
    dst = access_for(config, to, over)
    states = {p: config.provider(p).read([domain])[domain] for p in (source, to)}
    if not states[source].exists:
        raise MailctlError(f"provider {source!r} holds no domain {domain}")
    addresses = chosen_mailboxes(states[source], source, mailboxes)
    there = set(states[to].mailboxes) if states[to].exists else set()
    absent = [a for a in addresses if a not in there]
    if absent:
        raise MailctlError(f"{len(absent)} mailbox(es) do not exist at provider {to!r}, e.g. "
                           f"{', '.join(absent[:5])} (create them first: `mailctl move start "
                           f"{domain} --to {to}` provisions them, or apply a config)")
    lacking = dst.missing(addresses)
    if lacking:
        raise MailctlError(f"no way to sign in to {', '.join(lacking[:5])} at provider "
                           f"{to!r} ({dst.describe()}): give their passwords (mail_access "
                           "passwords file) or configure a master user")
    base = {"config": str(Path(config.path).resolve()), "domain": domain, "provider": source,
            "to": to, "ca_file": os.path.abspath(ca_file) if ca_file else None}
    return [(account_key(f"mailbox:{a}@{source}", f"mailbox:{a}@{to}"),
             f"{a}: {source} -> {to}", {**base, "mailbox": a}) for a in addresses]
