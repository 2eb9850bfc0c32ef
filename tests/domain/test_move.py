"""`mailctl move`: a whole domain from one sandbox to another, its zone on the local Knot.

What a user relies on, each asserted as they would see it: every message arrives at
the new side exactly once (including mail delivered to the old side during and after
the cutover), what users do at the new side after the cutover is never undone by a
later delta pass, folder roles map onto the target's (one Sent), aliases move, MX
and the other records are switched at the DNS host with a lowered TTL, and rollback
points MX back and says what arrived at the target meanwhile.
"""

from __future__ import annotations

import json
import random
import stat
import threading
from collections import Counter
from pathlib import Path

from tests.domain.conftest import MASTER_PW, access_block, enable_master, make_site, master_login
from tests.domain.movesite import (
    USERS,
    body_count,
    contents,
    deliver,
    make_move_site,
    random_tag,
    user_session,
)
from tests.fixtures.dnsserver import DnsLab
from tests.fixtures.mailstack import MailStack, imap_login
from tests.sync.helpers import assert_private


def _no_duplicates(stack: MailStack, address: str) -> None:
    seen: Counter[bytes] = Counter()
    for folder in contents(stack, address).values():
        seen.update(folder)
    dup = {b[:120]: n for b, n in seen.items() if n > 1}
    assert not dup, f"{address}: duplicated at the target: {dup}"


def _source_at_target(old: MailStack, new: MailStack, address: str,
                      maps: dict[str, str] | None = None,
                      skip: frozenset[bytes] = frozenset()) -> None:
    """Every message of the source mailbox is at the target once, in the mapped folder,
    except those in `skip` (a user moved or deleted them at the target)."""
    src, dst = contents(old, address), contents(new, address)
    for folder, msgs in src.items():
        there = dst.get((maps or {}).get(folder, folder), Counter())
        for body, n in msgs.items():
            if body not in skip:
                assert there[body] == n, (address, folder, body[:80])


def test_complete_move_with_mail_during_cutover(two_stacks: tuple[MailStack, MailStack],
                                                dns_lab: DnsLab, tmp_path: Path) -> None:
    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=600)  # 2,400 messages
    dom = site.domain
    rng = random.Random(12)
    alice = f"alice@{dom}"

    # a sent folder of another name, which the operator maps onto the target's Sent
    c = user_session(old, alice)
    c.create('"Sent Messages"')
    for i in range(3):
        c.append('"Sent Messages"', "(\\Seen)", None,
                 f"Subject: sent {i}\r\n\r\nhi\r\n".encode())
    c.logout()

    # the plan: nothing touched yet; the project is private
    r = site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}", "--json",
                 "--map", "Sent Messages=Sent")
    assert r.code == 0, r.all
    st = json.loads(r.out)
    assert st["phase"] == "inventory" and st["next"] == "provision" and not st["not_moved"]
    assert not imap_login(new.info, master_login(alice), MASTER_PW)
    project = tmp_path / f"move-{dom}"
    assert_private(project)
    assert MASTER_PW not in (project / "move.json").read_text()

    r = site.run("move", "run", "--until", "presync")
    assert r.code == 0, r.all
    # accounts and aliases exist at the target (create-only provisioning)
    assert imap_login(new.info, master_login(alice), MASTER_PW)
    virtual = (new.dms_dir / "postfix-virtual.cf").read_text()
    assert f"team@{dom}" in virtual and f"info@{dom}" in virtual

    status = json.loads(site.run("move", "status", "--json").out)
    assert status["phase"] == "presync" and status["next"] == "lower-ttl"
    assert all(b["presync"] and b["presync"] > 0 for b in status["mailboxes"])

    # lower TTL, then cut over while mail keeps arriving at the old side
    r = site.run("move", "run", "--until", "lower-ttl")
    assert r.code == 0, r.all
    assert dns_lab.ttl(dom, "MX") == 300 and dns_lab.rrset(dom, "MX") == [f"10 mx.old.{dom}."]
    r = site.run("move", "run", "--until", "cutover")
    assert r.code == 4 and "--no-ttl-wait" in r.err, r.all  # resolvers may hold 3600 s

    during: list[tuple[str, str]] = []
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            who = f"{rng.choice(USERS)}@{dom}"
            tag = random_tag(rng, "during")
            deliver(old, who, tag)
            during.append((who, tag))
            stop.wait(0.05)

    t = threading.Thread(target=sender)
    t.start()
    try:
        r = site.run("move", "run", "--until", "cutover", "--no-ttl-wait")
    finally:
        stop.set()
        t.join()
    assert r.code == 0, r.all
    assert dns_lab.rrset(dom, "MX") == [f"10 mx.new.{dom}."] and dns_lab.ttl(dom, "MX") == 300
    assert dns_lab.rrset(f"www.{dom}", "A") == ["192.0.2.80"]  # not a mail record: kept
    assert any("site-verification=keep-me" in v for v in dns_lab.rrset(dom, "TXT"))
    assert len(during) > 5

    # after the cutover: stale resolvers still send some mail to the old side; users
    # work at the new side (flag a message, move one away, delete one)
    after = [(f"{u}@{dom}", random_tag(rng, "after")) for u in USERS]
    for who, tag in after:
        deliver(old, who, tag)
    c = user_session(new, alice)
    c.select("INBOX")
    _, data = c.uid("SEARCH", "UNFLAGGED")
    uids = data[0].split()
    flag_uid, move_uid, del_uid = uids[0], uids[1], uids[2]
    bodies = {}
    for uid in (flag_uid, move_uid, del_uid):
        _, got = c.uid("FETCH", uid, "(BODY.PEEK[])")
        bodies[uid] = got[0][1]
    c.uid("STORE", flag_uid, "+FLAGS", "(\\Flagged)")
    c.create("Kept")
    c.uid("MOVE", move_uid, "Kept")
    c.uid("STORE", del_uid, "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()

    r = site.run("move", "run")  # delta, verify, keep
    assert r.code == 0, r.all
    st = json.loads(site.run("move", "status", "--json").out)
    assert st["phase"] == "keep" and all(b["verified"] for b in st["mailboxes"]), st
    assert st["keep_until"] is not None

    # once more while the source is kept: more stragglers, and users' work stays
    late = [(f"{u}@{dom}", random_tag(rng, "late")) for u in USERS]
    for who, tag in late:
        deliver(old, who, tag)
    r = site.run("move", "run")
    assert r.code == 0, r.all

    for who, tag in during + after + late:
        assert body_count(new, who, tag) == 1, (who, tag)
    for user in USERS:
        address = f"{user}@{dom}"
        _no_duplicates(new, address)
        _source_at_target(old, new, address, {"Sent Messages": "Sent"},
                          frozenset([bodies[move_uid], bodies[del_uid]]))
    a_new = contents(new, alice)
    assert bodies[move_uid] in a_new["Kept"] and bodies[move_uid] not in a_new["INBOX"]
    assert all(bodies[del_uid] not in f for f in a_new.values())  # deleted stays deleted
    c = user_session(new, alice)
    c.select("INBOX", readonly=True)
    _, fdata = c.uid("FETCH", flag_uid, "(FLAGS)")
    assert "\\Flagged" in str(fdata[0])
    _, lst = c.list()
    c.logout()
    assert not [x for x in lst if "Sent Messages" in str(x)], lst  # mapped into Sent

    r = site.run("move", "finish")
    assert r.code == 4 and "--now" in r.err, r.all
    r = site.run("move", "finish", "--now")
    assert r.code == 0, r.all
    assert "provider: new" in r.err
    assert dns_lab.ttl(dom, "MX") == 3600 and dns_lab.rrset(dom, "MX") == [f"10 mx.new.{dom}."]
    report = json.loads((project / "report.json").read_text())
    assert report["state"] == "finished" and report["not_moved"] == []
    assert stat.S_IMODE((project / "report.json").stat().st_mode) == 0o600
    r = site.run("move", "run")
    assert r.code == 1 and "finished" in r.err
    assert_private(project)
    assert MASTER_PW not in r.all


def test_rollback_points_mx_back_and_reports_what_arrived(
        two_stacks: tuple[MailStack, MailStack], dns_lab: DnsLab, tmp_path: Path) -> None:
    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=20)
    dom = site.domain
    assert site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}").code == 0
    r = site.run("move", "run", "--until", "cutover", "--no-ttl-wait")
    assert r.code == 0, r.all
    assert dns_lab.rrset(dom, "MX") == [f"10 mx.new.{dom}."]
    deliver(new, f"bob@{dom}", "arrived-1")
    deliver(new, f"bob@{dom}", "arrived-2")
    r = site.run("move", "rollback", "--json")
    assert r.code == 0, r.all
    arrived = json.loads(r.out)["arrived_at_target"]
    assert arrived[f"bob@{dom}"] == {"INBOX": 2}
    assert arrived[f"alice@{dom}"] == {}
    assert dns_lab.rrset(dom, "MX") == [f"10 mx.old.{dom}."]
    assert dns_lab.ttl(dom, "MX") == 3600
    st = json.loads(site.run("move", "status", "--json").out)
    assert st["phase"] == "rolled-back"
    r = site.run("move", "status")
    assert r.code == 0 and "bob@" in r.out and "INBOX" in r.out, r.all
    r = site.run("move", "run")
    assert r.code == 1 and "rolled back" in r.err


def test_usage_errors_exit_64_before_any_side_effect(mailstack_factory: object,
                                                    tmp_path: Path) -> None:
    stack = mailstack_factory()  # type: ignore[operator]
    site = make_site(tmp_path, {"old": stack, "new": stack},
                     "    provider: old\n    mailboxes:\n      - local_part: a\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, what in [
        (("move", "start", site.domain, "--to", "nope"), "--to 'nope'"),
        (("move", "start", site.domain, "--to", "new", "--map", "Sent"), "--map"),
        (("move", "start", site.domain, "--to", "new", "--ttl", "5"), "--ttl"),
        (("move", "start", site.domain, "--to", "new", "--mx", "a b"), "--mx"),
        (("move", "start", site.domain, "--to", "new", "--project", "no/such/dir"),
         "--project"),
        (("move", "start", "other.test", "--to", "new"), "not declared"),
        (("move", "status",), "no move project"),
        (("move", "run", "--until", "later"), "--until"),
        (("move", "run", "--project", "nowhere"), "--project"),
        (("move", "finish", "--resolver", "nohost"), "--resolver"),
    ]:
        r = site.run(*args)
        assert r.code == 64, (args, r.all)
        assert what in r.err and "Traceback" not in r.all
        assert r.err.startswith("error: ") or "--ttl" in args  # click's own range message
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_kill_9_in_every_phase_then_run_completes_exactly(
        two_stacks: tuple[MailStack, MailStack], dns_lab: DnsLab, tmp_path: Path) -> None:
    """Each phase is started and killed (SIGKILL) twice at a random moment, with mail
    arriving at the old side in between; then it runs to its end. The result is exact:
    every message once, in its folder, every mailbox verified."""
    import os
    import signal
    import subprocess
    import sys
    import time

    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=150)
    dom = site.domain
    assert site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}").code == 0
    rng = random.Random(9)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(site.env, NO_COLOR="1", MAILCTL_SYNC_BATCH="10")  # small commits: kill between
    delivered: list[tuple[str, str]] = []
    killed: list[tuple[str, float]] = []
    t0 = time.monotonic()
    for phase in ("provision", "presync", "lower-ttl", "cutover", "delta", "verify", "keep"):
        for _ in range(2):
            who = f"{rng.choice(USERS)}@{dom}"
            tag = random_tag(rng, "soak")
            deliver(old, who, tag)
            delivered.append((who, tag))
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailctl", "move", "run", "--until", phase,
                 "--no-ttl-wait"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            delay = rng.uniform(0.4, 2.0)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append((phase, delay))
            proc.wait()
        r = site.run("move", "run", "--until", phase, "--no-ttl-wait",
                     env={"MAILCTL_SYNC_BATCH": "10"})
        assert r.code == 0, (phase, r.all)
    r = site.run("move", "run")  # in keep: a delta pass for what arrived last
    assert r.code == 0, r.all
    assert time.monotonic() - t0 < 240
    assert len({p for p, _ in killed}) >= 4, killed  # killed while working in most phases

    st = json.loads(site.run("move", "status", "--json").out)
    assert st["phase"] == "keep" and all(b["verified"] for b in st["mailboxes"]), st
    assert dns_lab.rrset(dom, "MX") == [f"10 mx.new.{dom}."]
    for who, tag in delivered:
        assert body_count(new, who, tag) == 1, (who, tag)
    for user in USERS:
        address = f"{user}@{dom}"
        _no_duplicates(new, address)
        _source_at_target(old, new, address)


def test_what_the_target_cannot_store_is_listed_before_anything_is_touched(
        mailstack_factory: object, tmp_path: Path) -> None:
    stack = mailstack_factory()  # type: ignore[operator]
    enable_master(stack)
    site = make_site(
        tmp_path, {"old": stack},
        "    provider: old\n    catch_all: alice\n    mailboxes:\n"
        "      - local_part: alice\n        quota: 1G\n      - local_part: bob\n",
        access={"old": access_block("old", stack)})
    text = (tmp_path / "mailctl.yaml").read_text().replace(
        "mail_access:\n",
        "mail_access:\n  hosted: {imap: 'imap://127.0.0.1:9', auth: passwords}\n")
    text = text.replace("providers:\n", "providers:\n  hosted: {type: migadu, user: "
                        f"admin@{site.domain}, api_key: \"${{env:MIGADU_KEY}}\"}}\n")
    (tmp_path / "mailctl.yaml").write_text(text)
    site.env["MIGADU_KEY"] = "k" * 16
    assert site.run("apply").code == 0
    project = tmp_path / f"move-{site.domain}"

    r = site.run("move", "start", site.domain, "--to", "hosted")
    assert r.code == 4, r.all
    assert "catch_all" in r.err and "quota" in r.err and "--accept-losses" in r.err
    assert not project.exists()

    r = site.run("move", "start", site.domain, "--to", "hosted", "--accept-losses", "--json")
    assert r.code == 0, r.all
    lost = {x["field"]: x["value"] for x in json.loads(r.out)["not_moved"]}
    assert lost == {"catch_all": "alice", "mailboxes[0].quota": "1G"}, lost
    assert "catch_all" not in (project / "target.yaml").read_text()
    r = site.run("move", "status")
    assert r.code == 0 and "not moved: catch_all" in r.out, r.all


def test_dns_by_hand_prints_the_records_and_waits_until_a_resolver_sees_them(
        two_stacks: tuple[MailStack, MailStack], dns_lab: DnsLab, tmp_path: Path) -> None:
    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=5)
    dom = site.domain
    cfg = tmp_path / "mailctl.yaml"
    cfg.write_text(cfg.read_text().replace("dns: {host: knot, ", "dns: {"))  # not managed
    assert site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}").code == 0
    # the TTL is read at the zone's authoritative server (the lab's answers on its own port)
    res = ("--resolver", dns_lab.authoritative)

    r = site.run("move", "run", "--until", "lower-ttl", *res)
    assert r.code == 4, r.all
    assert f"{dom}. 300 IN MX 10 mx.old.{dom}." in r.err
    st = json.loads(site.run("move", "status", "--json").out)
    assert st["phase"] == "presync" and "300 IN MX" in st["blocked"]
    dns_lab.publish(dom, f"@ 300 MX 10 mx.old.{dom}.")  # the operator's edit
    r = site.run("move", "run", "--until", "lower-ttl", *res)
    assert r.code == 0, r.all
    assert json.loads(site.run("move", "status", "--json").out)["blocked"] is None

    res = ("--resolver", dns_lab.resolver)  # a recursive resolver for the MX switch
    r = site.run("move", "run", "--until", "cutover", "--no-ttl-wait", *res)
    assert r.code == 4 and f"IN MX 10 mx.new.{dom}." in r.err, r.all
    dns_lab.publish(dom, f"@ 300 MX 10 mx.new.{dom}.")
    r = site.run("move", "run", "--until", "cutover", "--no-ttl-wait", *res)
    assert r.code == 0, r.all
    assert json.loads(site.run("move", "status", "--json").out)["phase"] == "cutover"

    # a rollback by hand waits the same way, and nothing else runs meanwhile
    r = site.run("move", "rollback", *res)
    assert r.code == 4 and f"IN MX 10 mx.old.{dom}." in r.err, r.all
    r = site.run("move", "run", *res)
    assert r.code == 1 and "rollback" in r.err, r.all
    dns_lab.publish(dom, f"@ 3600 MX 10 mx.old.{dom}.")
    r = site.run("move", "rollback", *res)
    assert r.code == 0, r.all
    assert json.loads(site.run("move", "status", "--json").out)["phase"] == "rolled-back"


def test_rollback_after_lowering_the_ttl_raises_it_again(
        two_stacks: tuple[MailStack, MailStack], dns_lab: DnsLab, tmp_path: Path) -> None:
    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=3)
    dom = site.domain
    assert site.run("move", "start", dom, "--to", "new", "--mx", f"mx.new.{dom}").code == 0
    r = site.run("move", "run", "--until", "lower-ttl")
    assert r.code == 0, r.all
    assert dns_lab.ttl(dom, "MX") == 300
    r = site.run("move", "status")
    assert r.code == 0 and "next: cutover" in r.out and "alice@" in r.out, r.all
    r = site.run("move", "rollback")
    assert r.code == 0, r.all
    assert dns_lab.ttl(dom, "MX") == 3600 and dns_lab.rrset(dom, "MX") == [f"10 mx.old.{dom}."]


def test_move_to_a_hosted_provider_emulator(two_stacks: tuple[MailStack, MailStack],
                                            dns_lab: DnsLab, tmp_path: Path) -> None:
    """To Migadu (its API emulated; a sandbox stands in for its IMAP, where the
    accounts exist as they would once the API created them)."""
    from tests.emulators.migadu import MigaduEmulator
    from tests.fixtures.mailstack import write_dms

    old, new = two_stacks
    site = make_move_site(tmp_path, old, new, dns_lab, per_user=40)
    dom = site.domain
    key = "migadu-api-key-abcdef0123456789"
    with MigaduEmulator(f"admin@{dom}", key) as emu:
        emu.add_domain(dom)
        cfg = tmp_path / "mailctl.yaml"
        text = cfg.read_text()
        block = f"  new: {{type: dms, path: {new.dms_dir}}}\n"
        assert block in text
        cfg.write_text(text.replace(block, (
            f"  new: {{type: migadu, url: '{emu.url}', user: 'admin@{dom}', "
            "api_key: \"${env:MIGADU_KEY}\", timeout: 2, retry_backoff: 0.01}\n")))
        site.env["MIGADU_KEY"] = key
        write_dms(new.dms_dir, accounts={f"{u}@{dom}": "stand-in-pw-1" for u in USERS})
        new.sandbox.reload()

        r = site.run("move", "start", dom, "--to", "new", "--json")
        assert r.code == 0, r.all
        assert json.loads(r.out)["not_moved"] == []
        r = site.run("move", "run", "--no-ttl-wait")
        assert r.code == 0, r.all
        assert set(emu.mailboxes) == {f"{u}@{dom}" for u in USERS}
        assert {a for a in emu.aliases if a.startswith("team@")}
        assert _key_not_leaked(key, r.all, tmp_path / f"move-{dom}")
    assert dns_lab.rrset(dom, "MX") == ["10 aspmx1.migadu.com.", "20 aspmx2.migadu.com."]
    st = json.loads(site.run("move", "status", "--json").out)
    assert st["phase"] == "keep" and all(b["verified"] for b in st["mailboxes"])
    for user in USERS:
        _source_at_target(old, new, f"{user}@{dom}")
        _no_duplicates(new, f"{user}@{dom}")


def _key_not_leaked(key: str, output: str, project: Path) -> bool:
    return key not in output and all(key not in p.read_text(errors="replace")
                                     for p in project.rglob("*") if p.is_file()
                                     and p.suffix != ".db")
