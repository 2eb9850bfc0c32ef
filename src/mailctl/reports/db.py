"""Tables, engines and migrations of the reports store (SQLite or PostgreSQL).

The uniqueness of a report is a database constraint, (kind, reporter,
report_id), and every insert is `ON CONFLICT DO NOTHING`: a report that
arrives twice, or is read again after a fetch was killed before the mailbox
caught up, is stored once whatever the interleaving, on one host or many.

The SQLite file holds other organisations' data (their mail volumes and
addresses): it is created 0600 before SQLite opens it, so the -wal/-shm files
SQLite makes later inherit that mode, and a directory made for it is 0700.
Migrations are Alembic's, as in accounts/; "already at head" costs one query.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from mailctl.util import sqlstore

HEAD = "0001"
VERSION_TABLE = "reports_alembic_version"  # the accounts store may share the database

metadata = MetaData()

reports = Table(
    "reports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # dmarc | tlsrpt | failure
    Column("reporter", String(255), nullable=False),  # model.reporter_key
    Column("report_id", String(255), nullable=False),
    Column("org", String(255), nullable=False),  # the reporter's name as sent
    Column("email", String(320), nullable=False, server_default=""),
    Column("domain", String(253), nullable=False),
    Column("begin", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("day", Integer, nullable=False),  # days since the epoch of the window's middle
    Column("received", BigInteger, nullable=False),
    Column("policy", String(255), nullable=False, server_default=""),
    Column("notes", Text, nullable=False, server_default=""),
    Column("origin", String(300), nullable=False, server_default=""),
    UniqueConstraint("kind", "reporter", "report_id", name="uq_reports_key"),
    Index("ix_reports_domain_end", "domain", "end"),
    Index("ix_reports_end", "end"),
)

records = Table(
    "report_records", metadata,
    Column("report", Integer, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("source_ip", String(45), nullable=False),
    Column("count", Integer, nullable=False),
    Column("disposition", String(16), nullable=False),
    Column("dkim", String(8), nullable=False),  # policy_evaluated (aligned)
    Column("spf", String(8), nullable=False),
    Column("header_from", String(253), nullable=False),
    Column("envelope_from", String(253), nullable=False),
    Column("envelope_to", String(253), nullable=False),
    Column("dkim_auth", String(1000), nullable=False),  # "d=x s=y pass; ..."
    Column("spf_auth", String(1000), nullable=False),  # "d=x mfrom fail; ..."
    Column("reasons", String(500), nullable=False),
)

tls_results = Table(
    "report_tls", metadata,
    Column("report", Integer, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("policy_type", String(16), nullable=False),
    Column("policy_domain", String(253), nullable=False),
    Column("mx", String(253), nullable=False),  # receiving MX, else the policy's MX patterns
    Column("result", String(64), nullable=False),  # "success" or the failure result-type
    Column("sessions", Integer, nullable=False),
    Column("sending_ip", String(45), nullable=False),
    Column("receiving_ip", String(45), nullable=False),
    Column("reason", String(200), nullable=False),
)

failures = Table(
    "report_failures", metadata,
    Column("report", Integer, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
    Column("source_ip", String(45), nullable=False),
    Column("auth_failure", String(32), nullable=False),
    Column("delivery_result", String(32), nullable=False),
    Column("header_from", String(253), nullable=False),
    Column("envelope_from", String(253), nullable=False),
    Column("dkim_domain", String(253), nullable=False),
    Column("dkim_selector", String(63), nullable=False),
)

# Inputs that could not be read, by content digest: counted once however often seen.
rejections = Table(
    "report_rejections", metadata,
    Column("digest", String(64), primary_key=True),
    Column("code", String(32), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("origin", String(300), nullable=False),
    Column("size", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_rejections_at", "at"),
)

# Mail in a report mailbox that is not a report: remembered so that it is neither
# downloaded again nor touched (origin = mailbox label + folder).
seen = Table(
    "report_seen", metadata,
    Column("origin", String(300), primary_key=True),
    Column("uidvalidity", BigInteger, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# A move by copy + delete (servers without MOVE) in progress: after a crash the copy
# may or may not exist, and this row says to look before copying again.
moves = Table(
    "report_moves", metadata,
    Column("origin", String(300), primary_key=True),
    Column("uidvalidity", BigInteger, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("at", BigInteger, nullable=False),
)

rdns = Table(
    "report_rdns", metadata,
    Column("ip", String(45), primary_key=True),
    Column("name", String(253), nullable=False),  # "" when there is no PTR
    Column("at", BigInteger, nullable=False),
)


def default_url(config_path: Path) -> str:
    return f"sqlite:///{(config_path.parent / '.mailctl' / 'reports.db').resolve()}"


def resolve_url(configured: str | None, config_path: Path) -> str:
    """Config beats $MAILCTL_REPORTS_DB beats the default."""
    return sqlstore.resolve_url(configured, "MAILCTL_REPORTS_DB", default_url(config_path),
                                config_path)


sqlite_path = sqlstore.sqlite_file


def make_engine(url: str, pool_size: int = 4) -> Engine:
    # synchronous=FULL: a commit that returned is on disk, so a report the mailbox then
    # moves away is never lost to a power cut between the two.
    return sqlstore.make_engine(url, pool_size=pool_size, overflow=pool_size * 2,
                                synchronous="FULL")


def current_revision(engine: Engine) -> str | None:
    return sqlstore.current_revision(engine, VERSION_TABLE)


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD; safe when several processes start at once."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7040424)"))
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", "mailctl.reports:migrations")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
