"""The store on SQLite and PostgreSQL: slots, releases, repairs, migrations."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.accounts import db as dbmod
from mailctl.accounts.errors import TokenUnusable
from mailctl.accounts.service import AccountService
from mailctl.accounts.store import Store
from mailctl.config.load import load_config
from mailctl.model import Kind, Mailbox
from mailctl.provision.changes import Action, Change
from mailctl.secret import generate_password
from tests.accounts.conftest import Site, make_site


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def svc(url: str, tmp_path: Path) -> Iterator[tuple[AccountService, Site]]:
    site = make_site(tmp_path, tmp_path / "dms", db_url=url)
    config = load_config(site.dir / "mailctl.yaml")
    service = AccountService(config, Store(url))
    yield service, site
    service.store.close()


def _grab(url: str, n: int, out: multiprocessing.Queue[int]) -> None:
    store = Store(url, pool_size=2)
    tok = store.token("t")
    got = 0
    for i in range(n):
        try:
            store.reserve(f"p{multiprocessing.current_process().pid}.{i}@example.org", "sb",
                          tok, None)
            got += 1
        except TokenUnusable:
            pass
    out.put(got)
    store.close()


def test_reserve_never_exceeds_maxuse_across_processes(url: str) -> None:
    store = Store(url)
    store.add_token("t", "secret-value-1234567890", "example.org", "", "1d", 25)
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(url, 20, q)) for _ in range(4)]
    for p in procs:
        p.start()
    total = sum(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert total == 25
    assert store.token("t").usecount == 25 and len(store.accounts()) == 25
    store.close()


def test_release_gives_the_slot_back_once(url: str) -> None:
    store = Store(url)
    tok = store.add_token("t", "secret-value-abcdefghij", "example.org", "", "1d", 1)
    rid = store.reserve("a@example.org", "sb", tok, 60)
    with pytest.raises(TokenUnusable, match="used up"):
        store.reserve("b@example.org", "sb", tok, 60)
    assert store.release(rid) and not store.release(rid)
    assert store.token("t").usecount == 0 and store.accounts() == []
    store.close()


def test_reconcile_undoes_a_creation_interrupted_before_commit(
        svc: tuple[AccountService, Site]) -> None:
    service, site = svc
    tok = service.store.add_token("t", "secret-value-zyxwvutsrq", "example.org", "tmp.",
                                  "1d", 5)
    # What a worker killed between "created at the provider" and "commit" leaves behind:
    addr = "tmp.crashed@example.org"
    service.store.reserve(addr, "sb", tok, 86400, now=time.time() - 3600)
    _, provider = service.provider_of("example.org")
    provider.apply([Change(Action.CREATE, Kind.MAILBOX, "example.org", addr, "sb",
                           desired=Mailbox(addr, password=generate_password()))])
    fresh = "tmp.inflight@example.org"  # still within the grace period: left alone
    service.store.reserve(fresh, "sb", tok, 86400)
    assert site.dms_accounts() == {addr}

    dry = service.prune(dry_run=True)
    assert [a.address for a in dry.repaired] == [addr] and site.dms_accounts() == {addr}
    rep = service.prune()
    assert [a.address for a in rep.repaired] == [addr] and not rep.failed
    assert site.dms_accounts() == set()
    assert [a.address for a in service.store.accounts()] == [fresh]
    assert service.store.token("t").usecount == 1


def test_failed_creation_leaves_no_account_and_no_slot(
        svc: tuple[AccountService, Site]) -> None:
    service, site = svc
    service.store.add_token("t", "secret-value-qwertyuiop", "example.org", "tmp.", "1d", 5)
    site.dms.rmdir()  # the provider cannot write
    from mailctl.accounts.errors import AccountsError

    with pytest.raises(AccountsError) as info:
        service.redeem("secret-value-qwertyuiop")
    assert info.value.status in (502, 503)
    assert service.store.accounts() == [] and service.store.token("t").usecount == 0


def test_migrations_run_once_when_processes_start_together(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=Store, args=(url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    engine = dbmod.make_engine(url)
    assert dbmod.current_revision(engine) == dbmod.HEAD
    engine.dispose()


def test_head_constant_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "mailctl.accounts:migrations")
    assert ScriptDirectory.from_config(cfg).get_current_head() == dbmod.HEAD
