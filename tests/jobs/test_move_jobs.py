"""`jobs submit move-run`: a whole-domain move whose per-mailbox steps run as jobs on
two worker processes, the zone on the local Knot; `move status` shows what they did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.domain.conftest import MASTER_PW, enable_master
from tests.domain.movesite import USERS, contents, deliver, make_move_site, random_tag
from tests.fixtures.dnsserver import DnsLab
from tests.fixtures.postgres import PostgresServer
from tests.jobs.helpers import QUEUE_PW, Workers
from tests.jobs.test_queue import _db, _wait

pytestmark = pytest.mark.mailstack


def test_move_run_as_jobs_over_two_workers(mailstack_factory: Any, dns_lab: DnsLab,
                                           postgres_server: PostgresServer,
                                           tmp_path: Path) -> None:
    import random

    old, new = mailstack_factory(), mailstack_factory()
    enable_master(old)
    enable_master(new)
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=40)
    dom = site.domain
    r = site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}", "--json")
    assert r.code == 0, r.all
    queue, _ = _db(postgres_server)
    env = {"MAILCTL_JOBS_RETRY_WAIT": "1"}

    def submit() -> dict[str, Any]:
        r = site.run("jobs", "submit", "move-run", "--no-ttl-wait", "--queue", queue,
                     "--json", env=env)
        assert r.code == 0, r.all
        return json.loads(r.out)  # type: ignore[no-any-return]

    rng = random.Random(7)
    late: list[tuple[str, str]] = []
    rounds: list[dict[str, Any]] = []
    workers = Workers(tmp_path, queue)
    try:
        first = submit()  # provision here, then one presync job per mailbox
        assert first["done"] == ["provision"] and first["step"] == "presync"
        assert first["queued"] == len(USERS)
        # while the round is on the queue, `move run` leaves it to the queue
        r = site.run("move", "run")
        assert r.code == 1 and "job queue" in r.err, r.all
        again = submit()  # nothing done yet, nothing queued twice
        assert again["waiting"] == len(USERS) and again["queued"] == 0, again
        # a mailbox whose job was cancelled is queued again once the round is over
        r = site.run("jobs", "cancel", f"alice@{dom}", "--queue", queue, env=env)
        assert r.code == 0 and "cancelled 1 queued" in r.out, r.all
        workers.start("a", "--concurrency", "2")
        workers.start("b", "--concurrency", "2")
        for _ in range(12):
            st = _wait(tmp_path, queue, timeout=180)
            assert st["states"]["failed"] == 0, st["failures"]
            if rounds and rounds[-1]["step"] == "catchup":  # cut over: mail still comes in
                late.extend((f"{u}@{dom}", random_tag(rng, "late")) for u in USERS[:2])
                for who, tag in late[-2:]:
                    deliver(old, who, tag)
            out = submit()
            rounds.append(out)
            if out["phase"] == "keep" and not out["queued"] and not out["waiting"]:
                break
    finally:
        workers.stop()
    assert rounds[0]["requeued"] == [f"alice@{dom}"] and rounds[0]["queued"] == 1, rounds
    assert rounds[0]["step"] == "presync" and rounds[0]["done"] == []
    steps = [o["step"] for o in rounds if o["queued"]]
    assert steps[:3] == ["presync", "catchup", "delta"] and steps[-1] == "verify", rounds
    assert rounds[-1]["phase"] == "keep" and rounds[-1]["done"] == ["verify", "keep"]
    assert dns_lab.rrset(dom, "MX") == [f"10 mx.new.{dom}."]
    status = json.loads(site.run("move", "status", "--json").out)
    assert status["phase"] == "keep" and status["next"] is None
    for box in status["mailboxes"]:
        assert box["presync"] and box["presync"] > 0 and box["verified"] is True, box
    # every message of the source is at the target exactly once, late mail included
    for user in USERS:
        address = f"{user}@{dom}"
        assert contents(new, address) == contents(old, address), address
    assert late and all(any(tag.encode() in b for f in contents(new, who).values() for b in f)
                        for who, tag in late)
    report = json.loads((tmp_path / f"move-{dom}" / "report.json").read_text())
    assert report["state"] == "verified"
    # in the keep phase, a submit is one more delta pass (as `move run` then)
    workers = Workers(tmp_path, queue)
    try:
        workers.start("c", "--concurrency", "2")
        keep = submit()
        assert keep["step"] == "delta" and keep["queued"] == len(USERS), keep
        _wait(tmp_path, queue, timeout=180)
        assert submit()["done"] == ["keep"]
    finally:
        workers.stop()
    events = json.loads((tmp_path / f"move-{dom}" / "move.json").read_text())["events"]
    assert any(e[1] == "keep: delta pass" for e in events)
    log = workers.output()
    assert "Traceback" not in log and QUEUE_PW not in log and MASTER_PW not in log
