"""Connection slots per mail server, shared by every worker through the database.

A limit `imap.example=10` is a row of mailctl_jobs_limits; a job that talks to
imap.example holds one of its slots (a PostgreSQL advisory lock, key
(hash of the server, slot number)) on a connection of its own for as long as it
copies. Advisory locks belong to a database session, so a worker killed with
kill -9 or a host that vanishes gives its slots back as soon as the server
notices the connection is gone (TCP keepalives, set short on that connection);
no row has to be cleaned up. A job copies with one session per side
(Options(jobs=1)), so N slots are at most N connections at that server.

A server is named `host` (every port) or `host:port`; a job takes a slot of
each limit that names its server either way.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from typing import Any

WAIT_STEP = 0.25  # seconds between two tries when every slot is taken
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
             "keepalives_count": 3}


def parse_limit(text: str) -> tuple[str, int]:
    """`imap.example=10` -> ("imap.example", 10); ValueError with what was expected."""
    server, eq, n = text.partition("=")
    server = server.strip().lower()
    if not eq or not server or " " in server:
        raise ValueError(f"--host-limit {text!r} (expected SERVER=N, e.g. imap.example=10)")
    try:
        slots = int(n)
    except ValueError:
        raise ValueError(f"--host-limit {text!r}: {n!r} is not a number (expected "
                         "SERVER=N with N from 1 to 10000)") from None
    if not 1 <= slots <= 10000:
        raise ValueError(f"--host-limit {text!r}: {slots} is out of range (expected 1-10000)")
    return server, slots


def set_limits(conn: Any, limits: dict[str, int]) -> None:
    for server, slots in limits.items():
        conn.execute("INSERT INTO mailctl_jobs_limits VALUES (%s, %s) ON CONFLICT (server) "
                     "DO UPDATE SET slots = EXCLUDED.slots", (server, slots))


def _key(server: str) -> int:
    return zlib.crc32(b"mailctl-slot:" + server.encode()) - (1 << 31)  # an int4


def matching(conn: Any, servers: list[str]) -> list[tuple[str, int]]:
    """The limits that apply to these servers ("host:port" each)."""
    names = set(servers) | {s.rsplit(":", 1)[0] for s in servers}
    return [(r[0], int(r[1])) for r in conn.execute(
        "SELECT server, slots FROM mailctl_jobs_limits WHERE server = ANY(%s) ORDER BY server",
        (sorted(names),))]


@contextlib.contextmanager
def held(conn: Any, servers: list[str], stop: Any = None) -> Iterator[list[str]]:
    """Wait for one slot of every limit that applies to `servers`, hold them while the
    body runs. Limits are taken in a fixed order (by name), so two jobs never hold one
    each of two servers and wait for the other. `stop()`: give up waiting (returns None
    then raises TimeoutError)."""
    taken: list[tuple[int, int]] = []
    names: list[str] = []
    try:
        for server, slots in matching(conn, servers):
            key = _key(server)
            while True:
                got = None
                for i in range(slots):
                    if conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                    (key, i)).fetchone()[0]:
                        got = i
                        break
                if got is not None:
                    taken.append((key, got))
                    names.append(f"{server}#{got}")
                    break
                if stop is not None and stop():
                    raise TimeoutError(f"no free connection slot at {server}")
                time.sleep(WAIT_STEP)
        yield names
    finally:
        for key, i in taken:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (key, i))
