"""Every answer of the web API, errors included, is JSON with the documented status."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailctl.accounts.context import open_service
from mailctl.accounts.service import AccountService
from mailctl.accounts.web import create_app
from mailctl.config.load import load_config
from mailctl.model import Kind, Mailbox
from mailctl.provision.changes import Action, Change, Status
from mailctl.secret import Secret
from tests.accounts.conftest import Site, make_site


def api(site: Site, accounts_yaml: str) -> tuple[AccountService, TestClient]:
    site = make_site(site.dir, site.dms, accounts_yaml=accounts_yaml)
    svc = open_service(load_config(site.dir / "mailctl.yaml"))
    return svc, TestClient(create_app(svc), raise_server_exceptions=False)


@pytest.fixture
def client(site: Site) -> Iterator[tuple[AccountService, TestClient, str]]:
    svc, client = api(site, "accounts:\n  rate_limit: {per_minute: 0}\n"
                            "  web: {provider_timeout: 0.5}\n")
    secret = "s3cret-token-value-xyz"
    svc.store.add_token("t1", secret, "example.org", "tmp.", "1d", 2)
    yield svc, client, secret
    svc.store.close()


def is_error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()
    assert body["status_code"] == status and body["type"] == "error" and body["reason"]
    return body


@contextmanager
def dms_locked(dms: Path) -> Iterator[None]:
    """Another writer holding the docker-mailserver folder, as `apply` would."""
    with open(dms / ".mailctl.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def test_success_shape_like_mailadm(client: tuple[AccountService, TestClient, str]) -> None:
    _, c, secret = client
    for path in ("/", "/new_email"):
        r = c.post(f"{path}?t={secret}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["expiry"] == "1d" and body["ttl"] == 86400
        assert body["email"].startswith("tmp.") and len(body["password"]) >= 32


def test_token_errors(client: tuple[AccountService, TestClient, str]) -> None:
    svc, c, secret = client
    assert "not specified" in is_error(c.post("/"), 403)["reason"]
    body = is_error(c.post("/?t=wrong-secret-value"), 403)
    assert "wrong-secret-value" not in body["reason"]  # never echoed back
    assert c.post(f"/?t={secret}").status_code == 200
    assert c.post(f"/?t={secret}").status_code == 200
    assert "used up" in is_error(c.post(f"/?t={secret}"), 410)["reason"]
    svc.store.update_token("t1", maxuse=3, disabled=True)
    assert "disabled" in is_error(c.post(f"/?t={secret}"), 410)["reason"]
    svc.store.update_token("t1", disabled=False, valid_until=int(time.time()) - 1)
    assert "no longer valid" in is_error(c.post(f"/?t={secret}"), 410)["reason"]
    assert svc.store.token("t1").usecount == 2  # refused requests took no slot


def test_not_found_wrong_method_and_crash_are_json(
        client: tuple[AccountService, TestClient, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, c, secret = client
    is_error(c.get("/nowhere"), 404)
    is_error(c.get(f"/?t={secret}"), 405)

    def boom(*a: Any, **k: Any) -> None:
        raise RuntimeError("bug " + secret)

    monkeypatch.setattr(svc, "redeem", boom)
    r = c.post(f"/?t={secret}")
    body = is_error(r, 500)
    assert secret not in body["reason"]
    assert r.headers["cache-control"] == "no-store"  # even the crash handler's answer
    assert r.headers["x-content-type-options"] == "nosniff"


def test_collision_at_provider_is_409_and_leaves_it_alone(
        client: tuple[AccountService, TestClient, str], site: Site,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, c, secret = client
    taken = "tmp.taken@example.org"
    _, provider = svc.provider_of("example.org")
    out = provider.apply([Change(Action.CREATE, Kind.MAILBOX, "example.org", taken, "sb",
                                 desired=Mailbox(taken, password=Secret("theirs-password")))])
    assert out[0].status is Status.DONE
    before = (site.dms / "postfix-accounts.cf").read_text()
    monkeypatch.setattr(svc, "random_address", lambda token: taken)
    assert "already exists" in is_error(c.post(f"/?t={secret}"), 409)["reason"]
    assert (site.dms / "postfix-accounts.cf").read_text() == before  # password untouched
    assert svc.store.token("t1").usecount == 0
    assert svc.store.accounts() == []


def test_collision_in_store_retries_with_a_new_address(
        client: tuple[AccountService, TestClient, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc, c, secret = client
    first = c.post(f"/?t={secret}").json()["email"]
    picks = iter([first, "tmp.fresh12345@example.org"])
    monkeypatch.setattr(svc, "random_address", lambda token: next(picks))
    assert c.post(f"/?t={secret}").json()["email"] == "tmp.fresh12345@example.org"


def test_provider_down_is_503_and_takes_no_slot(
        client: tuple[AccountService, TestClient, str], site: Site) -> None:
    svc, c, secret = client
    svc.settings = svc.settings.model_copy(update={"web": svc.settings.web.model_copy(
        update={"provider_timeout": 10.0})})
    c = TestClient(create_app(svc), raise_server_exceptions=False)
    with dms_locked(site.dms):  # held past the provider's lock_timeout (2 s)
        r = c.post(f"/?t={secret}")
    body = is_error(r, 503)
    assert "unavailable" in body["reason"] and int(r.headers["retry-after"]) > 0
    assert svc.store.token("t1").usecount == 0 and svc.store.accounts() == []
    assert site.dms_accounts() == set()


def test_provider_timeout_is_504_and_the_late_account_is_undone(
        client: tuple[AccountService, TestClient, str], site: Site) -> None:
    svc, c, secret = client
    release = threading.Event()

    def hold() -> None:
        with dms_locked(site.dms):
            release.wait(1.5)  # longer than provider_timeout, shorter than lock_timeout

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    r = c.post(f"/?t={secret}")
    holder.join()
    assert "did not answer in time" in is_error(r, 504)["reason"]
    deadline = time.monotonic() + 20
    while svc.store.accounts() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert svc.store.accounts() == []
    assert svc.store.token("t1").usecount == 0
    assert site.dms_accounts() == set()  # created late, then deleted again


def test_rate_limit_per_client_address(site: Site) -> None:
    svc, c = api(site, "accounts:\n  rate_limit: {per_minute: 1, burst: 2}\n")
    assert c.post("/?t=x").status_code == 403
    assert c.post("/?t=x").status_code == 403
    r = c.post("/?t=x")
    is_error(r, 429)
    assert 1 <= int(r.headers["retry-after"]) <= 60
    svc.store.close()


def test_trusted_proxy_header_only_from_trusted_peers(site: Site) -> None:
    svc, _ = api(site, "accounts:\n  rate_limit: {per_minute: 1, burst: 1}\n"
                       "  web: {trusted_proxies: [10.0.0.0/8], client_address_header: X-Real-IP}\n")
    app = create_app(svc)
    proxy = TestClient(app, raise_server_exceptions=False, client=("10.1.2.3", 4000))
    direct = TestClient(app, raise_server_exceptions=False, client=("192.0.2.7", 4000))
    assert proxy.post("/?t=x", headers={"X-Real-IP": "198.51.100.1"}).status_code == 403
    assert proxy.post("/?t=x", headers={"X-Real-IP": "198.51.100.1"}).status_code == 429
    assert proxy.post("/?t=x", headers={"X-Real-IP": "198.51.100.2"}).status_code == 403
    # X-Forwarded-For is not the configured header: the proxy itself is the client
    assert proxy.post("/?t=x", headers={"X-Forwarded-For": "198.51.100.3"}).status_code == 403
    assert proxy.post("/?t=x", headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 429
    # an untrusted peer cannot choose its address by sending the header
    assert direct.post("/?t=x", headers={"X-Real-IP": "198.51.100.5"}).status_code == 403
    assert direct.post("/?t=x", headers={"X-Real-IP": "198.51.100.6"}).status_code == 429
    svc.store.close()
