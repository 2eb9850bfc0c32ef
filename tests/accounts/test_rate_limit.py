"""The per-client rate limit lives in the store, so it holds across worker processes
(and, on PostgreSQL, hosts): unit tests of the shared bucket, then a real
`mailctl serve --workers 3` on SQLite and on PostgreSQL."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailctl.accounts.db import rate_limits
from mailctl.accounts.settings import RateLimitSettings
from mailctl.accounts.store import Store
from mailctl.accounts.web import RateLimiter
from tests.accounts.conftest import Server, Site, make_site

LIMIT, EXTRA, WORKERS = 6, 5, 3


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = Store(url, pool_size=2)
    yield s
    s.close()


def test_bucket_refills_separates_clients_and_says_how_long(store: Store) -> None:
    rl = RateLimiter(store, RateLimitSettings(per_minute=60, burst=2))  # one per second
    assert rl.take("a", now=100) == 0 and rl.take("a", now=100) == 0
    assert rl.take("a", now=100) == pytest.approx(1.0)
    assert rl.take("a", now=100.25) == pytest.approx(0.75)  # refusals take nothing
    assert rl.take("b", now=100.25) == 0  # another client has its own bucket
    assert rl.take("a", now=101.0) == 0  # one slot back after a second
    assert rl.take("a", now=101.0) == pytest.approx(1.0)
    assert rl.take("a", now=103.0) == 0 and rl.take("a", now=103.0) == 0  # full burst again
    assert rl.take("a", now=103.0) > 0


def test_a_late_clock_reading_never_waits_longer_than_a_refill(store: Store) -> None:
    """A request that read the clock, then waited for the lock behind a later request."""
    rl = RateLimiter(store, RateLimitSettings(per_minute=1, burst=1))
    assert rl.take("a", now=100) == 0
    assert rl.take("a", now=99.5) == pytest.approx(60.0)  # counted at 100, not 99.5
    assert rl.take("a", now=130) == pytest.approx(30.0)


def test_two_limiters_share_one_bucket(url: str, store: Store) -> None:
    """Two processes (or hosts) on one store: the limit is counted once."""
    other = Store(url, pool_size=2)
    try:
        settings = RateLimitSettings(per_minute=1, burst=3)
        one, two = RateLimiter(store, settings), RateLimiter(other, settings)
        waits = [lim.take("203.0.113.9", now=50) for lim in (one, two, one, two, one)]
        assert waits[:3] == [0, 0, 0] and all(w > 0 for w in waits[3:])
    finally:
        other.close()


def test_addresses_are_not_stored_and_full_buckets_are_pruned(store: Store) -> None:
    rl = RateLimiter(store, RateLimitSettings(per_minute=60, burst=1))
    rl.take("203.0.113.77", now=10)
    rl.take("203.0.113.78", now=20)
    with store.engine.connect() as c:
        keys = [r.client_key for r in c.execute(select(rate_limits))]
    assert len(keys) == 2 and not any("203.0.113" in k for k in keys)
    assert rl.key("203.0.113.77") in keys and len(keys[0]) == 64
    assert store.prune_rate_limits(now=15) == 1  # the first is full again at 11
    assert store.prune_rate_limits() == 1  # by the real clock both are
    assert rl.take("203.0.113.78", now=20.5) == 0  # a pruned row is a full bucket


def test_off_when_per_minute_is_zero(store: Store) -> None:
    rl = RateLimiter(store, RateLimitSettings(per_minute=0, burst=1))
    assert all(rl.take("a", now=0) == 0 for _ in range(20))


# -- through `mailctl serve --workers 3` ---------------------------------------------


def post_from(server: Server, path: str, source: str = "127.0.0.1",
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """POST from a chosen loopback source address (a different client)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120,
                                      source_address=(source, 0))
    try:
        conn.request("POST", path, body=b"", headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture
def limited_site(url: str, tmp_path: Path) -> Site:
    return make_site(tmp_path, tmp_path / "dms", db_url=url, accounts_yaml=(
        f"accounts:\n  rate_limit: {{per_minute: 1, burst: {LIMIT}}}\n"))


def test_limit_holds_across_worker_processes(limited_site: Site,
                                             serve: Callable[..., Server]) -> None:
    tok = limited_site.json("tokens", "add", "rl", "--maxuse", "100")
    secret = tok["url"].split("t=")[1].split("&")[0]
    server = serve(limited_site, workers=WORKERS)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=LIMIT + EXTRA) as pool:
        results = list(pool.map(lambda _: post_from(server, f"/?t={secret}"),
                                range(LIMIT + EXTRA)))
    elapsed = time.monotonic() - started

    codes = Counter(code for code, _, _ in results)
    assert codes == {200: LIMIT, 429: EXTRA}, codes
    for code, headers, body in results:
        if code == 429:
            assert body["type"] == "error" and body["status_code"] == 429
            # per_minute 1: the next slot comes 60 s after the first request
            assert 60 - elapsed - 1 <= int(headers["retry-after"]) <= 60, headers
    assert limited_site.json("tokens", "show", "rl")["usecount"] == LIMIT

    code, headers, _ = post_from(server, f"/?t={secret}")
    assert code == 429 and int(headers["retry-after"]) <= 60
    # another client is not affected, and has its own full burst
    other = [post_from(server, f"/?t={secret}", source="127.0.0.2")[0] for _ in range(LIMIT)]
    assert other == [200] * LIMIT
    assert post_from(server, f"/?t={secret}", source="127.0.0.2")[0] == 429


def test_proxy_header_ignored_unless_configured(tmp_path: Path,
                                                serve: Callable[..., Server]) -> None:
    site = make_site(tmp_path, tmp_path / "dms", accounts_yaml=(
        "accounts:\n  rate_limit: {per_minute: 1, burst: 1}\n"))
    server = serve(site, workers=WORKERS)
    assert post_from(server, "/?t=x", headers={"X-Forwarded-For": "198.51.100.1"})[0] == 403
    assert post_from(server, "/?t=x", headers={"X-Forwarded-For": "198.51.100.2"})[0] == 429

    site = make_site(tmp_path, tmp_path / "dms", accounts_yaml=(
        "accounts:\n  rate_limit: {per_minute: 1, burst: 1}\n"
        "  web: {trusted_proxies: [127.0.0.1]}\n"))
    server = serve(site, workers=WORKERS)
    hdr = {"X-Forwarded-For": "198.51.100.3"}
    assert [post_from(server, "/?t=x", headers=hdr)[0] for _ in range(2)] == [403, 429]
    assert post_from(server, "/?t=x", headers={"X-Forwarded-For": "198.51.100.4"})[0] == 403
    # 127.0.0.2 is no trusted proxy: its header is ignored
    assert post_from(server, "/?t=x", "127.0.0.2", {"X-Forwarded-For": "198.51.100.5"})[0] == 403
    assert post_from(server, "/?t=x", "127.0.0.2", {"X-Forwarded-For": "198.51.100.6"})[0] == 429
