"""Tables, engines and schema migration for the accounts store.

SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` so that a writer takes
the lock when its (short) transaction starts instead of failing to upgrade a
read lock halfway through. No transaction ever spans a provider call.
Migrations are Alembic's; the common "already at head" case is checked with
one query so that the CLI does not pay for importing Alembic on every run.

The SQLite file holds token hashes (or secrets) and the rate limiter's salt:
it is created 0600 before SQLite opens it, so its -wal, -shm and -journal
files (which SQLite creates with the database file's mode) are 0600 too, and
a directory made for it is 0700.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
    text,
)

from mailctl.util import sqlstore

HEAD = "0003"  # the newest migration in accounts/migrations/versions

metadata = MetaData()

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    # Kept only with `accounts.token_secrets: stored`, to print invite URLs and QR codes
    # again; NULL with `hashed` (the default). Redemption looks up the hash.
    Column("secret", String(128), nullable=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("domain", String(253), nullable=False),
    Column("prefix", String(32), nullable=False, server_default=""),
    Column("expiry", String(16), nullable=False),
    Column("maxuse", Integer, nullable=False),
    # Slots taken: reserved or done. Only a failed creation gives one back.
    Column("usecount", Integer, nullable=False, server_default="0"),
    Column("valid_until", Integer, nullable=True),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created", Integer, nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(320), nullable=False, unique=True),
    Column("token_id", Integer, ForeignKey("tokens.id", ondelete="SET NULL"), nullable=True),
    Column("token_name", String(64), nullable=True),
    Column("provider", String(64), nullable=False),
    Column("created", Integer, nullable=False),
    Column("expires", Integer, nullable=True),
    Column("state", String(16), nullable=False),  # pending | active
    Index("ix_accounts_expires", "expires"),
    Index("ix_accounts_token", "token_id"),
    Index("ix_accounts_state", "state"),
)

# Shared rate-limit state (see store.Store.take_rate): a GCRA theoretical arrival time
# per client, keyed by an HMAC of the client address with `store_meta.rate_limit_salt`.
# A row whose `tat` is in the past means a full burst, so those rows are pruned.
rate_limits = Table(
    "rate_limits", metadata,
    Column("client_key", String(64), primary_key=True),
    Column("tat", Float, nullable=False),
    # The latest request time applied: a request whose clock reading is older (it waited
    # for the lock behind a later one) counts at this time, so time never runs backwards.
    Column("seen", Float, nullable=False),
    Column("allowed", Integer, nullable=False, server_default="0"),
    Index("ix_rate_limits_tat", "tat"),
)

store_meta = Table(
    "store_meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Periodic jobs (the scheduled prune), one row each: who runs it, until when nobody else
# may start it, and when it last finished. Taken with one conditional upsert
# (Store.claim_lease), so one worker on any host runs it at a time.
leases = Table(
    "leases", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("until", Float, nullable=False),
    Column("done", Float, nullable=False, server_default="0"),
)


def default_url(config_path: Path) -> str:
    return f"sqlite:///{(config_path.parent / 'mailctl-accounts.db').resolve()}"


def resolve_url(configured: str | None, config_path: Path) -> str:
    """Config beats $MAILCTL_DB beats the default."""
    return sqlstore.resolve_url(configured, "MAILCTL_DB", default_url(config_path), config_path)


sqlite_file = sqlstore.sqlite_file
secure_sqlite_file = sqlstore.secure_sqlite_file


def make_engine(url: str, pool_size: int = 8) -> Engine:
    return sqlstore.make_engine(url, pool_size=pool_size, overflow=pool_size * 4,
                                synchronous="NORMAL")


def current_revision(engine: Engine) -> str | None:
    return sqlstore.current_revision(engine, "alembic_version")


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD; safe when several processes start at once."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        if sqlite:
            # Batch migrations rebuild a table (copy, drop, rename). With foreign keys on,
            # dropping `tokens` would SET NULL every account's token_id. The pragma only
            # takes effect outside a transaction, hence on the raw connection first.
            raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():  # SQLite: BEGIN IMMEDIATE serialises the migrators
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(7040423)"))
                cfg = AlembicConfig()
                cfg.set_main_option("script_location", "mailctl.accounts:migrations")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration broke {len(broken)} references")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
