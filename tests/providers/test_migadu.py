"""The Migadu provider through the real CLI, against the Migadu emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.base import Fault, Request
from tests.emulators.migadu import FORBIDDEN, MigaduEmulator
from tests.providers.conftest import Site, assert_no_secret, statuses

USER = "admin@example.org"
KEY = "migadu-api-key-abcdef0123456789"
BOB_PW = "bobs-declared-password-77"

CONFIG = """\
providers:
  mig:
    type: migadu
    url: {url}
    user: {user}
    api_key: ${{env:MIGADU_KEY}}
    timeout: 2
    retry_backoff: 0.01
    rate_limit: {{requests: {limit}, per_seconds: {window}, backoff_seconds: 0.2}}
domains:
  example.org:
    provider: mig
    mailboxes:
      - local_part: alice
        name: Alice Liddell
        aliases: [ali]
        spam: {{action: tag, aggressiveness: most_strict}}
      - local_part: bob
        password: ${{env:BOB_PASSWORD}}
    aliases:
      - local_part: info
        destinations: [alice, bob, someone@outside.test]
"""


@pytest.fixture
def mig() -> Iterator[MigaduEmulator]:
    with MigaduEmulator(USER, KEY) as emu:
        emu.add_domain("example.org")
        yield emu


def configure(site: Site, emu: MigaduEmulator, limit: int = 60, window: float = 120) -> None:
    site.config(CONFIG.format(url=emu.url, user=USER, limit=limit, window=window))


@pytest.fixture
def msite(site: Site, mig: MigaduEmulator) -> Site:
    site.env.update({"MIGADU_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    configure(site, mig)
    return site


def test_plan_apply_status_import_cycle(msite: Site, mig: MigaduEmulator) -> None:
    r = msite.run("plan", "--detailed-exitcode")
    assert r.code == 2, r.all
    assert "Plan: 4 to create" in r.out
    r, data = msite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"] == {"done": 4, "failed": 0, "not_attempted": 0}
    alice = mig.mailboxes["alice@example.org"]
    assert (alice["name"], alice["spam_action"], alice["spam_aggressiveness"]) == (
        "Alice Liddell", "subject", "strictest")
    assert mig.mailboxes["bob@example.org"]["name"] == "bob"  # Migadu wants a name
    assert mig.passwords["bob@example.org"] == BOB_PW
    generated = msite.secrets()
    assert mig.passwords["alice@example.org"] == generated["alice@example.org"]
    assert sorted(mig.aliases["info@example.org"]["destinations"]) == [
        "alice@example.org", "bob@example.org", "someone@outside.test"]
    assert_no_secret(r, KEY, BOB_PW, *generated.values())

    # Volatile fields change on every read, passwords never come back: still no drift.
    mig.reset_log()
    r = msite.run("plan", "--detailed-exitcode")
    assert r.code == 0, r.all
    assert sorted(p for _, p, _ in mig.log) == [  # identities, forwardings embedded
        "domains/example.org/aliases", "domains/example.org/mailboxes",
        "domains/example.org/rewrites"]
    r = msite.run("status", "--json")
    assert r.code == 0 and json.loads(r.out)["in_sync"] is True

    r, imported = msite.import_roundtrip("mig")
    assert_no_secret(r, KEY)
    assert imported["providers"]["mig"]["api_key"] == "${env:MIGADU_KEY}"


def test_update_is_a_partial_put(msite: Site, mig: MigaduEmulator) -> None:
    assert msite.run("apply").code == 0
    mig.mailboxes["alice@example.org"].update(name="Someone Else", may_send=False)
    sent: list[object] = []
    mig.before = lambda req: sent.append(req.json()) if req.method == "PUT" else None
    r = msite.run("apply", "--reconcile")
    assert r.code == 0, r.all
    assert sent == [{"name": "Alice Liddell"}]
    assert mig.mailboxes["alice@example.org"]["may_send"] is False  # not ours: untouched


def test_duplicate_400_is_settled_by_rereading(msite: Site, mig: MigaduEmulator) -> None:
    def before(req: Request) -> None:
        if req.method == "POST" and "aliases" in req.path and "info@example.org" not in \
                mig.aliases:
            mig.add_alias("info@example.org", ["bob@example.org", "alice@example.org",
                                               "someone@outside.test"])
            mig.add_alias("ali@example.org", ["carol@example.org"])
    mig.before = before
    r, data = msite.apply_json()
    assert r.code == 3
    st = statuses(data)
    assert st["create alias info@example.org"] == "done"
    assert st["create alias ali@example.org"] == "failed"
    msgs = {o["address"]: o.get("message", "") for o in data["outcomes"]}
    assert "adopted" in msgs["info@example.org"]
    assert "already exists with different settings" in msgs["ali@example.org"]


def test_client_side_limit_is_never_tripped(site: Site, mig: MigaduEmulator) -> None:
    mig.limit, mig.window = 3, 1.0
    site.env.update({"MIGADU_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    configure(site, mig, limit=3, window=1.0)
    start = time.monotonic()
    assert site.run("plan").code == 0  # 3 reads, remembered for the next process
    r = site.run("apply")  # 3 reads + 4 creates
    assert r.code == 0, r.all
    assert mig.trips == 0
    assert mig.calls() == 10
    assert time.monotonic() - start >= 3.0  # 10 calls at 3 per second: at least 3 windows


def test_403_is_a_rate_limit_backed_off_and_retried(msite: Site, mig: MigaduEmulator) -> None:
    mig.inject(Fault("status", status=403, body=FORBIDDEN, method="POST", times=2))
    r, data = msite.apply_json()
    assert r.code == 0, r.all
    assert data["summary"]["done"] == 4
    assert len(mig.mailboxes) == 2 and len(mig.aliases) == 2  # nothing created twice


def test_403_waits_backoff_seconds_before_the_retry(msite: Site, mig: MigaduEmulator) -> None:
    alice: list[float] = []  # when alice's create reached the server, refused or not

    def arrived(req: Request) -> bool:
        if req.method == "POST" and b"Alice" in req.body:
            alice.append(time.monotonic())
            return True
        return False

    # The fault is asked about each request until it has fired; `before` sees those served.
    mig.inject(Fault("status", status=403, body=FORBIDDEN, times=1, when=arrived))
    mig.before = arrived
    r = msite.run("apply")
    assert r.code == 0, r.all
    assert len(alice) == 2  # refused once, then sent again ...
    assert alice[1] - alice[0] >= 0.2  # ... no sooner than backoff_seconds
    assert "Migadu refused a request with HTTP 403 (its rate limit): pausing 0.2 s" in r.err


def _start(site: Site, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(site.env, NO_COLOR="1")
    return subprocess.Popen([sys.executable, "-m", "mailctl", *args], cwd=site.path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def test_default_rate_limit_backs_off_too(site: Site, mig: MigaduEmulator) -> None:
    """With no `rate_limit:` key, a 403 pauses everything for the default backoff_seconds
    (120 s) — in this process and the next — instead of retrying every second, which is
    what gets an IP blocked."""
    site.env.update({"MIGADU_KEY": KEY, "BOB_PASSWORD": BOB_PW})
    text = CONFIG.format(url=mig.url, user=USER, limit=60, window=120)
    site.config("\n".join(line for line in text.splitlines() if "rate_limit" not in line))
    mig.inject(Fault("status", status=403, body=FORBIDDEN, times=-1))
    first = _start(site, "plan")
    try:
        deadline = time.monotonic() + 30  # however slow the start-up, then 6 s more
        while not mig.log and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        time.sleep(6)
        assert first.poll() is None  # still waiting out the pause, not given up
        assert [st for _, _, st in mig.log] == [403]  # one refusal in 6 s, no retries
        second = _start(site, "plan")  # the pause is remembered across processes
        try:
            time.sleep(3)
            assert second.poll() is None
            assert len(mig.log) == 1
        finally:
            _stop(second)
    finally:
        err = _stop(first)
    assert "Migadu refused a request with HTTP 403 (its rate limit): pausing 120 s" in err
    state = next((Path(site.env["XDG_CACHE_HOME"]) / "mailctl" / "ratelimit").iterdir())
    assert json.loads(state.read_text())["paused_until"] > time.time() + 100
    assert state.stat().st_mode & 0o777 == 0o600
    assert state.parent.stat().st_mode & 0o777 == 0o700


def test_persistent_403_stops_the_apply(msite: Site, mig: MigaduEmulator) -> None:
    mig.inject(Fault("status", status=403, body=FORBIDDEN, method="POST", times=-1))
    r, data = msite.apply_json()
    assert r.code == 3
    assert data["summary"]["done"] == 0 and data["summary"]["not_attempted"] == 2
    msg = next(o["message"] for o in data["outcomes"] if o["status"] == "failed")
    assert "rate limit" in msg and "${env:MIGADU_KEY}" in msg
    assert_no_secret(r, KEY)


def test_delete_answering_500_but_done(msite: Site, mig: MigaduEmulator) -> None:
    mig.add_alias("old@example.org", ["bob@example.org"])
    mig.delete_answers_500 = True
    r, data = msite.apply_json("--prune", "--yes")
    assert r.code == 0, r.all
    assert statuses(data)["delete alias old@example.org"] == "done"
    assert "old@example.org" not in mig.aliases


def test_bad_key_and_missing_domain(msite: Site, mig: MigaduEmulator) -> None:
    wrong = "not-the-key-99999999"
    r = msite.run("plan", env={"MIGADU_KEY": wrong})
    assert r.code == 3
    assert "${env:MIGADU_KEY}" in r.err and USER in r.err
    assert_no_secret(r, wrong, KEY)



def test_a_domain_the_account_lacks_is_one_error_and_one_request(
    msite: Site, mig: MigaduEmulator
) -> None:
    """Not a plan of creates that would each fail (and spend a rate-limited request)."""
    del mig.domains["example.org"]
    for cmd in ("plan", "apply", "status"):
        mig.reset_log()
        r = msite.run(cmd)
        assert r.code == 3, r.all
        assert ("mig: example.org: Migadu does not hold domain example.org (account "
                f"{USER}): add it in Migadu's admin first") in r.err
        assert "to create" not in r.out
        assert mig.calls() == 1, (cmd, mig.log)  # the domain's first list call said 404
    assert not mig.mailboxes and not mig.aliases
