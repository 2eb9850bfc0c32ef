"""The queue URL, its connections and the tables mailctl keeps beside procrastinate's.

The URL's password is a Secret from the moment it is parsed: it is never
printed (`display()` masks it), and any error text that could hold it goes
through the scrubber. libpq's own sources (PGPASSWORD, ~/.pgpass) work as
well, so a password need not be in the URL at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from mailctl.errors import MailctlError
from mailctl.secret import Secret

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
ENV = "MAILCTL_QUEUE"


class QueueUsageError(MailctlError):
    """The URL itself is wrong (exit 64)."""


class QueueDown(MailctlError):
    """The database could not be reached or refused us (exit 3)."""


class QueueUrl:
    def __init__(self, raw: str) -> None:
        try:
            u = urlsplit(raw.strip())
            port = u.port
        except ValueError as exc:
            raise QueueUsageError(f"--queue: {_mask(raw)}: {exc} (expected "
                                  "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)") from None
        if u.scheme not in SCHEMES:
            raise QueueUsageError(f"--queue: scheme {u.scheme or '(none)'!r} (expected "
                                  "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)")
        if not u.hostname:
            raise QueueUsageError("--queue: no host (expected postgresql://USER@HOST/DATABASE)")
        if not u.path.strip("/"):
            raise QueueUsageError("--queue: no database (expected postgresql://USER@HOST/"
                                  "DATABASE)")
        self.password = Secret(unquote(u.password), "--queue") if u.password else None
        self.user = unquote(u.username or "")
        self.host, self.port = u.hostname, port or 5432
        self.database = unquote(u.path.strip("/"))
        self.query = u.query

    def conninfo(self) -> str:
        """For psycopg; holds the password (never print it)."""
        from psycopg.conninfo import make_conninfo

        extra: dict[str, Any] = {}
        if self.query:
            from urllib.parse import parse_qsl

            extra = dict(parse_qsl(self.query))
        if self.password is not None:
            extra["password"] = self.password.reveal()
        return make_conninfo(host=self.host, port=self.port, dbname=self.database,
                             user=self.user or None, application_name="mailctl", **extra)

    def display(self) -> str:
        who = f"{self.user}{':***' if self.password else ''}@" if self.user else ""
        return f"postgresql://{who}{self.host}:{self.port}/{self.database}"


def _mask(raw: str) -> str:
    """A URL that failed to parse, with anything like a password taken out."""
    head, at, tail = raw.rpartition("@")
    if not at:
        return raw
    scheme, sep, cred = head.partition("://")
    user = cred.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{tail}" if ":" in cred else raw


def parse(raw: str | None) -> QueueUrl:
    import os

    value = raw or os.environ.get(ENV)
    if not value:
        raise QueueUsageError(f"no queue given (expected --queue postgresql://... or ${ENV})")
    return QueueUrl(value)


def connect(url: QueueUrl, autocommit: bool = True) -> Any:
    """A psycopg connection; a failure is QueueDown with the password scrubbed."""
    import psycopg

    try:
        return psycopg.connect(url.conninfo(), autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        from mailctl.secret import scrub

        raise QueueDown(f"the queue {url.display()}: {scrub(str(exc).strip())}") from None


def account_key(src: str, dst: str) -> str:
    """The queue's name for an account pair: its jobs' lock and queueing lock."""
    import hashlib

    return hashlib.sha256(f"{src}\0{dst}".encode()).hexdigest()[:20]


SCHEMA = """
CREATE TABLE IF NOT EXISTS mailctl_jobs_accounts(
  account TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL, spec JSONB NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued', job_id BIGINT,
  messages INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0, copied INTEGER NOT NULL DEFAULT 0,
  runs INTEGER NOT NULL DEFAULT 0, worker TEXT, failure TEXT, words TEXT, advice TEXT,
  submitted_at TIMESTAMPTZ NOT NULL DEFAULT now(), started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS mailctl_jobs_limits(server TEXT PRIMARY KEY, slots INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mailctl_sync_meta(
  pair TEXT, k TEXT, v TEXT, PRIMARY KEY(pair, k));
CREATE TABLE IF NOT EXISTS mailctl_sync_folders(
  pair TEXT, src TEXT, dst TEXT, src_uv BIGINT, dst_uv BIGINT, src_next BIGINT,
  src_modseq BIGINT, src_count BIGINT, max_uid BIGINT, PRIMARY KEY(pair, src));
CREATE TABLE IF NOT EXISTS mailctl_sync_pairs(
  pair TEXT, src TEXT, skey TEXT, dkey TEXT, flags TEXT, hash TEXT,
  PRIMARY KEY(pair, src, skey));
CREATE TABLE IF NOT EXISTS mailctl_sync_pending(
  pair TEXT, src TEXT, skey TEXT, run BIGINT, hash TEXT, at DOUBLE PRECISION,
  PRIMARY KEY(pair, src, skey, run));
"""


def ensure_schema(url: QueueUrl) -> None:
    """procrastinate's schema (once) and mailctl's tables, under an advisory lock so that
    workers starting together do not race to create them."""
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(72657)")
        try:
            have = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
            if have is None:
                from procrastinate.schema import SchemaManager

                conn.execute(SchemaManager.get_schema())
            conn.execute(SCHEMA)
        finally:
            conn.execute("SELECT pg_advisory_unlock(72657)")
