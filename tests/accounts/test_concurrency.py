"""maxuse holds under 200 simultaneous redemptions from several API worker processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.accounts.conftest import NO_RATE_LIMIT, Server, Site, make_site

REQUESTS, MAXUSE, WORKERS = 200, 50, 3


@pytest.fixture(params=["sqlite", "postgresql"])
def db_site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    site = make_site(tmp_path, tmp_path / "dms", accounts_yaml=NO_RATE_LIMIT
                     + "  web: {threads: 16}\n", db_url=url)
    # 50 creations queue for the one dms folder lock: on a starved CPU that can take
    # longer than the 2 s the other tests use to provoke "provider unavailable".
    cfg = site.dir / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("lock_timeout: 2", "lock_timeout: 60"))
    return site


def test_maxuse_exact_across_worker_processes(db_site: Site,
                                              serve: Callable[..., Server]) -> None:
    tok = db_site.json("tokens", "add", "rush", "--maxuse", str(MAXUSE))
    secret = tok["url"].split("t=")[1].split("&")[0]
    server = serve(db_site, workers=WORKERS)

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        results = list(pool.map(lambda _: server.post(f"/?t={secret}", timeout=120),
                                range(REQUESTS)))

    codes = Counter(code for code, _, _ in results)
    assert codes == {200: MAXUSE, 410: REQUESTS - MAXUSE}, \
        (codes, {b["reason"] for c, _, b in results if c not in (200, 410)})
    emails = {body["email"] for code, _, body in results if code == 200}
    assert len(emails) == MAXUSE
    assert all(body["type"] == "error" and "used up" in body["reason"]
               for code, _, body in results if code != 200)
    listed = db_site.json("accounts", "list", "--token", "rush")
    assert {a["address"] for a in listed} == emails
    assert {a["state"] for a in listed} == {"active"}
    assert db_site.json("tokens", "show", "rush")["usecount"] == MAXUSE
    assert db_site.dms_accounts() == emails  # exactly these exist at the provider
