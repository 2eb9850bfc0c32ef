"""The accounts store: tokens, use counts and accounts, in short transactions.

A redemption is reserve -> create at the provider -> activate (or release).
`reserve` takes a slot with one conditional UPDATE (`usecount < maxuse`),
which the database applies atomically whatever the number of processes, and
inserts the account as `pending` in the same transaction. The provider is
called with no transaction open. `release` gives the slot back only for a
row that is still pending, so a repeated release cannot free two slots.

Token secrets are looked up by their SHA-256 and, by default, stored only as
that hash (`accounts.token_secrets: hashed`): a copy of the database then
mints no accounts. Secrets are 192 random bits, so a fast hash is enough.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from mailctl.accounts.db import (
    accounts,
    leases,
    make_engine,
    migrate,
    rate_limits,
    store_meta,
    tokens,
)
from mailctl.accounts.errors import (
    AddressTaken,
    AlreadyExists,
    NotFound,
    StoreBusy,
    StoreUnavailable,
    TokenUnusable,
)
from mailctl.accounts.model import ACTIVE, PENDING, Account, Token, secret_hash

TOKEN_FIELDS = frozenset({"domain", "prefix", "expiry", "maxuse", "valid_until", "disabled"})


def _token(row: Any) -> Token:
    m = row._mapping
    return Token(m["id"], m["name"], m["secret"], m["domain"], m["prefix"], m["expiry"],
                 m["maxuse"], m["usecount"], m["valid_until"], bool(m["disabled"]),
                 m["created"])


def _account(row: Any) -> Account:
    m = row._mapping
    return Account(m["id"], m["address"], m["token_id"], m["token_name"], m["provider"],
                   m["created"], m["expires"], m["state"])


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


class Store:
    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        try:
            self.engine = make_engine(url, pool_size)
            migrate(self.engine)
        except (OSError, DBAPIError) as exc:
            reason = exc.orig if isinstance(exc, DBAPIError) else exc.strerror or exc
            raise StoreUnavailable(f"cannot open the accounts store {_shown(url)}: {reason}",
                                   local=url.startswith("sqlite")) from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy("the accounts store is busy; try again shortly") from None
            raise

    # -- tokens ------------------------------------------------------------------

    def add_token(self, name: str, secret: str, domain: str, prefix: str, expiry: str,
                  maxuse: int, valid_until: int | None = None, usecount: int = 0,
                  disabled: bool = False, keep_secret: bool = False) -> Token:
        """`keep_secret`: store the secret itself too, so its URL can be printed again."""
        try:
            with self._tx() as c:
                c.execute(insert(tokens).values(
                    name=name, secret=secret if keep_secret else None,
                    secret_hash=secret_hash(secret), domain=domain,
                    prefix=prefix, expiry=expiry, maxuse=maxuse, usecount=usecount,
                    valid_until=valid_until, disabled=disabled, created=int(time.time())))
        except IntegrityError:
            raise AlreadyExists(f"a token named {name} (or with that secret) exists") from None
        return self.token(name)

    def token(self, name: str) -> Token:
        with self.engine.connect() as c:
            row = c.execute(select(tokens).where(tokens.c.name == name)).first()
        if row is None:
            raise NotFound(f"no token named {name}")
        return _token(row)

    def tokens(self) -> list[Token]:
        with self.engine.connect() as c:
            return [_token(r) for r in c.execute(select(tokens).order_by(tokens.c.name))]

    def find_secret(self, secret: str) -> Token | None:
        """The token with this secret; the final comparison is in constant time."""
        digest = secret_hash(secret)
        with self.engine.connect() as c:
            row = c.execute(select(tokens).where(tokens.c.secret_hash == digest)).first()
        if row is None or not secrets.compare_digest(row.secret_hash.encode(),
                                                     digest.encode()):
            return None
        return _token(row)

    def rotate_token(self, name: str, secret: str, keep_secret: bool = False) -> Token:
        """A new secret for `name`: the old one stops working when this commits."""
        with self._tx() as c:
            r = c.execute(update(tokens).where(tokens.c.name == name).values(
                secret=secret if keep_secret else None, secret_hash=secret_hash(secret)))
        if r.rowcount == 0:
            raise NotFound(f"no token named {name}")
        return self.token(name)

    def forget_secret(self, name: str) -> Token:
        """Keep only the hash: the URL keeps working but can no longer be printed."""
        with self._tx() as c:
            r = c.execute(update(tokens).where(tokens.c.name == name).values(secret=None))
        if r.rowcount == 0:
            raise NotFound(f"no token named {name}")
        return self.token(name)

    def update_token(self, name: str, **fields: Any) -> Token:
        """Change settings; the use count is not among them, so an edit never resets it."""
        bad = set(fields) - TOKEN_FIELDS
        if bad:
            raise ValueError(f"cannot change {sorted(bad)}")
        if fields:
            with self._tx() as c:
                r = c.execute(update(tokens).where(tokens.c.name == name).values(**fields))
            if r.rowcount == 0:
                raise NotFound(f"no token named {name}")
        return self.token(name)

    def delete_token(self, name: str) -> int:
        """Delete; its accounts stay (they keep the token's name) until they expire."""
        tok = self.token(name)
        with self._tx() as c:
            n = c.execute(update(accounts).where(accounts.c.token_id == tok.id)
                          .values(token_id=None)).rowcount
            c.execute(delete(tokens).where(tokens.c.id == tok.id))
        return int(n)

    # -- accounts ----------------------------------------------------------------

    def reserve(self, address: str, provider: str, token: Token | None,
                ttl: int | None, now: float | None = None) -> int:
        """Take a slot of `token` (if any) and record `address` as pending; its row id."""
        ts = int(now if now is not None else time.time())
        try:
            with self._tx() as c:
                if token is not None:
                    took = c.execute(update(tokens).where(and_(
                        tokens.c.id == token.id,
                        tokens.c.disabled == False,  # noqa: E712 - SQL expression
                        tokens.c.usecount < tokens.c.maxuse,
                        or_(tokens.c.valid_until.is_(None), tokens.c.valid_until > ts),
                    )).values(usecount=tokens.c.usecount + 1)).rowcount
                    if took != 1:
                        raise self._why_unusable(c, token, ts)
                r = c.execute(insert(accounts).values(
                    address=address, token_id=token.id if token else None,
                    token_name=token.name if token else None, provider=provider,
                    created=ts, expires=ts + ttl if ttl is not None else None, state=PENDING))
                return int(r.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            raise AddressTaken(f"{address} already exists") from None

    @staticmethod
    def _why_unusable(c: Connection, token: Token, now: int) -> Exception:
        row = c.execute(select(tokens).where(tokens.c.id == token.id)).first()
        if row is None:
            return TokenUnusable(f"token {token.name} was deleted")
        return TokenUnusable(_token(row).unusable_reason(now) or "token is not usable")

    def activate(self, account_id: int) -> None:
        with self._tx() as c:
            c.execute(update(accounts).where(accounts.c.id == account_id)
                      .values(state=ACTIVE))

    def release(self, account_id: int) -> bool:
        """Undo a reservation: the row goes and its slot comes back (once)."""
        with self._tx() as c:
            row = c.execute(select(accounts.c.token_id).where(and_(
                accounts.c.id == account_id, accounts.c.state == PENDING))).first()
            if row is None:
                return False
            c.execute(delete(accounts).where(accounts.c.id == account_id))
            if row.token_id is not None:
                c.execute(update(tokens).where(tokens.c.id == row.token_id)
                          .values(usecount=tokens.c.usecount - 1))
        return True

    def remove(self, account_id: int) -> None:
        """Forget an account deleted at its provider (prune): its slot stays used."""
        with self._tx() as c:
            c.execute(delete(accounts).where(accounts.c.id == account_id))

    def account(self, address: str) -> Account | None:
        with self.engine.connect() as c:
            row = c.execute(select(accounts).where(accounts.c.address == address)).first()
        return _account(row) if row else None

    def accounts(self, token_name: str | None = None) -> list[Account]:
        q = select(accounts).order_by(accounts.c.created, accounts.c.address)
        if token_name is not None:
            q = q.where(accounts.c.token_name == token_name)
        with self.engine.connect() as c:
            return [_account(r) for r in c.execute(q)]

    def expired(self, now: float) -> list[Account]:
        q = select(accounts).where(and_(accounts.c.state == ACTIVE,
                                        accounts.c.expires.is_not(None),
                                        accounts.c.expires <= int(now)))
        with self.engine.connect() as c:
            return [_account(r) for r in c.execute(q.order_by(accounts.c.expires))]

    def stale_pending(self, before: float) -> list[Account]:
        q = select(accounts).where(and_(accounts.c.state == PENDING,
                                        accounts.c.created <= int(before)))
        with self.engine.connect() as c:
            return [_account(r) for r in c.execute(q)]

    # -- leases (one runner of a periodic job across workers and hosts) ----------

    def claim_lease(self, name: str, holder: str, hold: float, every: float,
                    now: float | None = None) -> bool:
        """Start a run of job `name` if none is running and the last one finished at least
        `every` seconds ago; then nobody else may start one for `hold` seconds (or until
        finish_lease). One atomic upsert, so of any number of callers one wins."""
        t = self._clock(now)
        pg = self.engine.dialect.name == "postgresql"
        ins = (postgresql.insert if pg else sqlite.insert)(leases).values(
            name=name, holder=holder, until=t + hold, done=0.0)
        stmt = ins.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={"holder": holder, "until": t + hold},
            where=and_(leases.c.until <= t, leases.c.done <= t - every),
        ).returning(leases.c.holder)
        with self._tx() as c:
            return c.execute(stmt).first() is not None

    def finish_lease(self, name: str, holder: str, now: float | None = None) -> None:
        """The run of `name` that `holder` started is over: the next is due `every` later."""
        t = self._clock(now)
        with self._tx() as c:
            c.execute(update(leases).where(and_(leases.c.name == name,
                                                leases.c.holder == holder))
                      .values(until=t, done=t))

    # -- rate limiting -----------------------------------------------------------

    def rate_limit_salt(self) -> bytes:
        """The random key (made by migration 0002) that client addresses are hashed with."""
        with self.engine.connect() as c:
            value = c.execute(select(store_meta.c.value).where(
                store_meta.c.name == "rate_limit_salt")).scalar_one()
        return bytes.fromhex(value)

    def _clock(self, now: float | None) -> ColumnElement[float]:
        """`now` if given; else the database's clock on PostgreSQL (one clock for every
        host, fixed for the statement) and this host's on SQLite (a single host anyway)."""
        if now is not None:
            return literal(float(now), Float)
        if self.engine.dialect.name == "postgresql":
            return cast(extract("epoch", func.statement_timestamp()), Float)
        return literal(time.time(), Float)

    def take_rate(self, client_key: str, interval: float, burst: int,
                  now: float | None = None) -> float:
        """Count one request of `client_key`: 0 if allowed, else the seconds to wait.

        A token bucket of `burst` refilled every `interval` seconds, kept as GCRA's
        theoretical arrival time (`tat`) in one row, updated by a single atomic upsert
        (SQLite: inside BEGIN IMMEDIATE; PostgreSQL: ON CONFLICT takes the row lock), so
        the limit holds across worker processes and hosts. `allowed` records whether
        this very update took a slot."""
        t = self._clock(now)
        tau = (burst - 1) * interval
        pg = self.engine.dialect.name == "postgresql"
        greatest = func.greatest if pg else func.max
        rl = rate_limits
        at = greatest(rl.c.seen, t)  # clocks are read before the lock is held
        start = greatest(rl.c.tat, at)
        ok = start - at <= tau
        ins = (postgresql.insert if pg else sqlite.insert)(rl).values(
            client_key=client_key, tat=t + interval, seen=t, allowed=1)
        stmt = ins.on_conflict_do_update(
            index_elements=[rl.c.client_key],
            set_={"tat": case((ok, start + interval), else_=rl.c.tat),
                  "seen": at,
                  "allowed": case((ok, 1), else_=0)},
        ).returning(rl.c.allowed, rl.c.tat - rl.c.seen)
        with self._tx() as c:
            allowed, ahead = c.execute(stmt).one()
        return 0.0 if allowed else max(float(ahead) - tau, 1e-3)

    def prune_rate_limits(self, now: float | None = None) -> int:
        """Forget clients whose bucket is full again (their row says nothing any more)."""
        with self._tx() as c:
            r = c.execute(delete(rate_limits).where(rate_limits.c.tat <= self._clock(now)))
        return int(r.rowcount)

    def import_accounts(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert finished accounts (mailadm import); existing addresses are skipped."""
        done = 0
        for row in rows:
            try:
                with self._tx() as c:
                    c.execute(insert(accounts).values(state=ACTIVE, **row))
                done += 1
            except AddressTaken:
                continue
            except IntegrityError:
                continue
        return done
