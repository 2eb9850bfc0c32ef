"""What the accounts store and the reports store share about their databases.

Both are SQLAlchemy engines on SQLite (the default, one host) or PostgreSQL
(several hosts), both hold data others must not read, and both check "already
at head" with one query so the CLI does not import Alembic on every run. The
differences are parameters: the URL's environment variable, the pool, how
durable a commit must be, and the Alembic version table.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError

BUSY_TIMEOUT_MS = 15_000
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def resolve_url(configured: str | None, env_var: str, default: str, config_path: Path) -> str:
    """Config beats the environment beats the default; a relative SQLite path is
    relative to the config file, not to wherever the command was started."""
    url = configured or os.environ.get(env_var) or default
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        if rel and rel != ":memory:" and not rel.startswith("/"):
            url = f"sqlite:///{(config_path.parent / rel).resolve()}"
    return url


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///"):].split("?", 1)[0]
    if not rest or rest == ":memory:" or rest.startswith("file:"):
        return None
    return Path(rest)


def secure_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its directory 0700 if we make it) before SQLite does.

    SQLite gives its -wal/-shm/-journal files the database file's mode. A file we own
    that is readable by others (made by an older mailctl with the umask's 0644) is
    narrowed to 0600, with those files."""
    from mailctl.util.private import private_dir

    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        return
    for suffix in SQLITE_SUFFIXES:
        part = path.with_name(path.name + suffix)
        try:
            st = part.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(part, 0o600)
            log.warning("%s was readable by others (mode %o): narrowed to 0600", part,
                        st.st_mode & 0o777)


def make_engine(url: str, *, pool_size: int, overflow: int, synchronous: str) -> Engine:
    """An engine whose SQLite connections use WAL, a busy timeout and `BEGIN IMMEDIATE`,
    so a writer takes the lock when its short transaction starts instead of failing
    to upgrade a read lock halfway through."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=pool_size, max_overflow=overflow,
                             pool_pre_ping=True)
    path = sqlite_file(url)
    if path is not None:
        secure_sqlite_file(path)
    engine = create_engine(url, pool_size=pool_size, max_overflow=overflow,
                           connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    def connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is ours
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def current_revision(engine: Engine, version_table: str) -> str | None:
    """The Alembic revision the database is at; None for a new (or unreadable) one."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text(f"SELECT version_num FROM {version_table}")).first()
            conn.rollback()
    except (OperationalError, ProgrammingError):
        return None
    return str(row[0]) if row else None
