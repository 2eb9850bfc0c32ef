"""`mailctl serve` prunes expired accounts by itself, one pruner at a time across every
worker and host sharing the store; and `tokens list` shows what the API would answer.
(That a pruned account stops logging in is in test_sandbox.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailctl.accounts.store import Store
from tests.accounts.conftest import NO_RATE_LIMIT, Server, Site, make_site, secret_of
from tests.accounts.test_api import dms_locked


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (str(request.getfixturevalue("postgres_url")) if request.param == "postgresql"
           else f"sqlite:///{tmp_path / 'store.db'}")
    s = Store(url, pool_size=2)
    yield s
    s.close()


def test_lease_one_runner_then_not_before_the_interval(store: Store) -> None:
    assert store.claim_lease("job", "a", hold=900, every=60, now=1000)
    assert not store.claim_lease("job", "b", hold=900, every=60, now=1001)  # a is running
    assert not store.claim_lease("job", "a", hold=900, every=60, now=1001)  # even for a
    store.finish_lease("job", "b", now=1005)  # not b's run: changes nothing
    assert not store.claim_lease("job", "b", hold=900, every=60, now=1010)
    store.finish_lease("job", "a", now=1010)
    assert not store.claim_lease("job", "b", hold=900, every=60, now=1069)  # too soon
    assert store.claim_lease("job", "b", hold=900, every=60, now=1070)
    # a shorter interval (a restarted server with a new setting) counts at once
    store.finish_lease("job", "b", now=1100)
    assert store.claim_lease("job", "c", hold=900, every=5, now=1105)
    # a runner killed mid-run holds the job only until its lease ends
    assert not store.claim_lease("job", "d", hold=900, every=5, now=2004)
    assert store.claim_lease("job", "d", hold=900, every=5, now=2006)
    assert store.claim_lease("other", "a", hold=1, every=1, now=2006)  # jobs are separate


def pruned_lines(server: Server) -> list[str]:
    return [ln for ln in server.log.read_text().splitlines()
            if "mailctl.accounts.prune: pruned " in ln]


def test_serve_prunes_on_schedule_once_per_account_across_workers(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    """Three workers poll every 0.5 s. While the expired accounts wait for the provider
    (its lock is held here), every worker would list them and delete them again if the
    store did not let only one prune at a time: each would log them."""
    site = make_site(tmp_path, tmp_path / "dms",
                     accounts_yaml=NO_RATE_LIMIT + "  prune_interval: 0.5\n")
    cfg = site.dir / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("lock_timeout: 2", "lock_timeout: 30"))
    secret = secret_of(site.json("tokens", "add", "brief", "--expiry", "10s", "--maxuse", "20"))
    server = serve(site, 3)
    made = {server.post(f"/?t={secret}")[2]["email"] for _ in range(8)}
    assert len(made) == 8
    last_made = time.monotonic()
    with dms_locked(site.dms):  # all expire meanwhile, and every worker polls a few times
        time.sleep(max(0.0, last_made + 10 + 2.5 - time.monotonic()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(pruned_lines(server)) < 8:
        time.sleep(0.2)
    time.sleep(2)  # let any second pruner show itself
    lines = pruned_lines(server)
    assert sorted(ln.split("pruned ")[1].split(" ")[0] for ln in lines) == sorted(made), lines
    assert all("(token brief, expired " in ln for ln in lines)
    assert "could not prune" not in server.log.read_text()
    assert site.dms_accounts() == set() and site.json("accounts", "list") == []
    assert site.json("tokens", "show", "brief")["usecount"] == 8  # pruning frees no slot


def test_serve_prunes_at_start_and_retries_a_failed_prune(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    site = make_site(tmp_path, tmp_path / "dms", accounts_yaml=NO_RATE_LIMIT)
    site.json("tokens", "add", "brief", "--expiry", "1s")
    assert site.cli("accounts", "add", "old@example.org", "--token", "brief").code == 0
    time.sleep(1.5)
    server = serve(site)  # the default interval (600 s): the first prune runs at start
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pruned_lines(server):
        time.sleep(0.2)
    assert [ln.split("pruned ")[1].split(" ")[0] for ln in pruned_lines(server)] == \
        ["old@example.org"]
    assert site.dms_accounts() == set()

    # a prune the provider refuses is logged, and done at the next one
    secret = secret_of(site.json("tokens", "add", "later", "--expiry", "1s"))
    fast = serve(site, 1, "--prune-interval", "1")
    email = fast.post(f"/?t={secret}")[2]["email"]
    with dms_locked(site.dms):
        time.sleep(4.5)  # past the dms lock_timeout (2 s): that prune fails
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pruned_lines(fast):
        time.sleep(0.2)
    log = fast.log.read_text()
    assert f"could not prune {email}" in log and "retried at the next prune" in log
    assert [ln.split("pruned ")[1].split(" ")[0] for ln in pruned_lines(fast)] == [email]
    assert site.dms_accounts() == set()


def test_prune_interval_zero_leaves_it_to_the_admin(tmp_path: Path,
                                                    serve: Callable[..., Server]) -> None:
    site = make_site(tmp_path, tmp_path / "dms",
                     accounts_yaml=NO_RATE_LIMIT + "  prune_interval: 0.5\n")
    secret = secret_of(site.json("tokens", "add", "brief", "--expiry", "1s"))
    server = serve(site, 1, "--prune-interval", "0")  # the option beats the config
    email = server.post(f"/?t={secret}")[2]["email"]
    time.sleep(3)
    log = server.log.read_text()
    assert "not pruning: run `mailctl accounts prune` on a schedule" in log
    assert not pruned_lines(server) and site.dms_accounts() == {email}
    assert site.json("accounts", "prune")["removed"] == [email]


def test_tokens_list_shows_what_the_api_answers(site: Site,
                                               serve: Callable[..., Server]) -> None:
    secrets = {name: secret_of(site.json("tokens", "add", name, *args)) for name, args in (
        ("fine", ()), ("used", ("--maxuse", "1")), ("off", ()))}
    site.json("tokens", "disable", "off")
    ends = int(time.time()) + 12  # later than the command needs to start and check it
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ends))
    secrets["past"] = secret_of(site.json("tokens", "add", "past", "--until", soon))
    server = serve(site)
    assert server.post(f"/?t={secrets['used']}")[0] == 200
    time.sleep(max(0.0, ends - time.time() + 0.5))
    states = {t["name"]: t["state"] for t in site.json("tokens", "list")}
    assert states == {"fine": "active", "used": "exhausted", "past": "expired",
                      "off": "disabled"}
    plain = site.cli("tokens", "list").out.splitlines()
    for name, state in states.items():
        [line] = [ln for ln in plain if ln.startswith(f"{name}:")]
        assert f", {state}" in line, line
    answers = {name: server.post(f"/?t={s}")[0] for name, s in secrets.items()}
    assert answers == {"fine": 200, "used": 410, "past": 410, "off": 410}
