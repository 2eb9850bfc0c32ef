"""`mailctl move`: a whole domain from one provider to another, losing nothing.

Every phase is built from another capability (STYLE 2.4) and is idempotent, so
`move run` after kill -9 simply runs the unfinished phase again:

- inventory (`move start`): the source as `import` reads it, and the target's
  config: the same YAML with the provider swapped. What the target cannot
  store is listed before anything is touched, and the move refuses unless the
  operator accepts exactly that list (it stays in the project and the report).
- provision: plan/apply of that config, creates only; passwords mailctl sets
  are written to the project's secrets.tsv before the provider is asked.
- presync: every mailbox through the sync engine (state per mailbox, resumable).
- lower-ttl, cutover: dns plan/apply (movedns.py); the cutover first runs one
  more full pass (flags changed at the source since presync), then publishes.
- delta: add-only passes (sync `Options.add_only`) until one copies nothing.
  After the cutover users work at the target: a pass never changes a flag,
  re-copies a message a user moved or deleted there, or copies anything twice
  (the per-mailbox state knows every message already copied).
- verify: a delta pass, then each mailbox with the sync engine's verify (counts, flags, internal
  dates, content hashes; the target may hold more: mail that arrived there).
- keep: the source stays for N days; `move run` then runs another delta pass.

The per-mailbox work is plain methods (`presync_one`, `delta_one`,
`verify_one`, `settle_one`: address -> result), so a job queue can run them
elsewhere.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mailctl.domain.moveproject import DOES, PHASES, Blocked, MoveError, Project
from mailctl.errors import MailctlError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.access import Access
    from mailctl.domain.mailsync import MailboxResult, Progress

from mailctl.domain.moveplan import SECRETS, TARGET


class Incomplete(MailctlError):
    """Some mailboxes could not be copied or checked this time (servers, sessions):
    recorded per mailbox; `move run` again goes on from there (exit 3)."""


# -- running -------------------------------------------------------------------------------


class Move:
    """One move project with its config loaded: the phases and the per-mailbox steps."""

    def __init__(self, project: Project, config: Config, *, jobs: int = 4,
                 progress: Progress | None = None, say: Any = None, sessions: int = 2) -> None:
        """`sessions`: IMAP sessions per side for one mailbox (a queue worker uses 1, so
        that a server's connection slot is one connection)."""
        self.project, self.config, self.jobs = project, config, jobs
        self.sessions = sessions
        self.progress = progress
        self.say = say or (lambda text: None)
        self._src: Access | None = None
        self._dst: Access | None = None
        self._target: Config | None = None

    # -- what each side is -----------------------------------------------------------
    @property
    def domain(self) -> str:
        return self.project.domain

    @property
    def target_config(self) -> Config:
        from mailctl.config.load import load_config

        if self._target is None:
            text = self.project.path(TARGET).read_text()
            self._target = load_config(self.config.path, text=text)
        return self._target

    @property
    def src(self) -> Access:
        from mailctl.domain.access import access_for

        if self._src is None:
            self._src = access_for(self.config, self.project.data["source"])
        return self._src

    @property
    def dst(self) -> Access:
        from mailctl.domain.access import access_for, read_passwords

        if self._dst is None:
            secrets = self.project.path(SECRETS)
            known = read_passwords(secrets) if secrets.exists() else {}
            self._dst = access_for(self.config, self.project.data["target"], known=known)
        return self._dst

    def _maps(self, s: Any, d: Any) -> list[tuple[str, str]]:
        from mailctl.sync.roles import role_maps, roles

        own = [(str(a), str(b)) for a, b in self.project.data.get("maps") or []]
        return role_maps(roles(s), roles(d), own)

    # -- per mailbox (plain functions of an address, for a job queue) ------------------
    def _sync(self, address: str, step: str, add_only: bool) -> MailboxResult:
        from mailctl.domain.mailsync import sync_one
        from mailctl.sync.engine import Options

        p = self.project.data
        res = sync_one(address, lambda: self.src.store(address, readonly=True),
                       lambda: self.dst.store(address),
                       str(self.project.sync_state(address)),
                       Options(jobs=self.sessions, add_only=add_only),
                       (f"{p['source']}:{address}", f"{p['target']}:{address}"),
                       self.progress, maps=self._maps)
        self.project.record(address, step, res.as_dict())
        return res

    def presync_one(self, address: str) -> MailboxResult:
        """Everything at the source, flags included (nobody works at the target yet)."""
        return self._sync(address, "presync", add_only=False)

    def catchup_one(self, address: str) -> MailboxResult:
        """The cutover's last full pass (flags changed at the source since presync)."""
        return self._sync(address, "catchup", add_only=False)

    def delta_one(self, address: str) -> MailboxResult:
        """Only messages new at the source: what users did at the target stays."""
        return self._sync(address, "delta", add_only=True)

    def verify_one(self, address: str) -> dict[str, Any]:
        """The sync engine's verify of one mailbox, as `movecheck.verify_mailbox` reads it
        after a cutover; recorded in the project."""
        from mailctl.domain.movecheck import verify_mailbox

        out = verify_mailbox(lambda: self.src.store(address, readonly=True),
                             lambda: self.dst.store(address, readonly=True),
                             self._maps, self.project.sync_state(address))
        self.project.record(address, "verify", out)
        return out

    def _all(self, step: str, one: Any) -> dict[str, Any]:
        from mailctl.domain.mailsync import run_all

        if self.progress is not None:
            self.progress.done, self.progress.total = 0, 0
        results = run_all(self.project.addresses, one, self.jobs)
        outcome = {a: (r if isinstance(r, dict) else r.as_dict()) for a, r in results.items()}
        bad = {a: r for a, r in outcome.items() if not r.get("ok")}
        if bad:
            first = next(iter(bad.items()))
            why = first[1].get("error") or "; ".join(first[1].get("errors") or []) or (
                f"{first[1].get('missing')} missing, {first[1].get('flag_mismatch')} flags, "
                f"{first[1].get('date_mismatch')} dates differ")
            raise Incomplete(f"{step}: {len(bad)} of {len(results)} mailboxes did not "
                             f"complete, e.g. {first[0]}: {why} (`mailctl move run` goes on "
                             "from here)")
        return results

    # -- phases ------------------------------------------------------------------------
    def run(self, until: str | None = None, *, ttl_wait: bool = True,
            resolver: str | None = None, max_passes: int = 10) -> list[str]:
        """Advance phase by phase up to `until` (all by default); the phases done now.
        A move in its keep phase gets one more delta pass."""
        if self.project.ended:
            raise MoveError(f"the move of {self.domain} has {self.project.ended.replace('-', ' ')}"
                            " (nothing left to run)")
        if self.project.data.get("rollback_started"):
            raise MoveError("a rollback of this move is under way (`mailctl move rollback` "
                            "again completes it)")
        if self.project.data.get("jobs"):
            raise MoveError("this move's mailbox steps are on a job queue (`mailctl jobs "
                            "submit move-run` goes on from there, once `jobs status` shows "
                            "them done)")
        done: list[str] = []
        if self.project.done("keep"):
            self.delta_pass()
            self.project.event("keep: delta pass")
            return ["delta"]
        for phase in PHASES:
            if not self.project.done(phase):
                self.say(f"{phase}: {DOES[phase]}")
                try:
                    getattr(self, "phase_" + phase.replace("-", "_"))(
                        ttl_wait=ttl_wait, resolver=resolver, max_passes=max_passes)
                except Blocked as exc:
                    self.project.data["blocked"] = str(exc)
                    self.project.save()
                    raise
                if self.project.data.pop("blocked", None) is not None:
                    self.project.save()
                done.append(phase)
            if phase == until:
                break
        return done

    def phase_inventory(self, **_: Any) -> None:  # written by start(); kept for symmetry
        self.project.mark("inventory")

    def phase_provision(self, **_: Any) -> None:
        import dataclasses

        from mailctl.model import Kind
        from mailctl.provision.changes import Action, Status
        from mailctl.provision.engine import execute, make_plan

        cfg = self.target_config
        plan = make_plan(cfg, domains=[self.domain])
        creates = [c for c in plan.changes if c.action is Action.CREATE]
        skipped = [f"{c.action.value} {c.kind.value} {c.key}" for c in plan.changes
                   if c.action is not Action.CREATE]
        if skipped:  # the target holds something else already: not ours to change
            self.project.event("provision: left as found at the target: "
                               + "; ".join(skipped[:20]))
        failed: list[str] = []
        if creates:
            applied = execute(cfg, dataclasses.replace(plan, changes=creates),
                              secrets_out=self.project.path(SECRETS))
            failed = [f"{o.change.kind.value} {o.change.key}: {o.error}"
                      for o in applied.outcomes if o.status is not Status.DONE]
            self.dst.known.update(applied.generated)
            if failed:
                raise Incomplete("provision: " + "; ".join(failed[:5]))
        lacking = self.dst.missing(self.project.addresses)
        if lacking:
            raise MoveError(f"no way to sign in to {', '.join(lacking[:10])} at provider "
                            f"{self.project.data['target']!r} ({self.dst.describe()}): they "
                            "existed there before the move; give their passwords "
                            "(mail_access passwords file) or configure a master user")
        self.project.mark("provision", created=len(creates),
                          mailboxes=sum(1 for c in creates if c.kind is Kind.MAILBOX))

    def phase_presync(self, **_: Any) -> None:
        results = self._all("presync", self.presync_one)
        self.project.mark("presync", copied=sum(r.copied for r in results.values()))

    def phase_lower_ttl(self, *, resolver: str | None = None, **_: Any) -> None:
        from mailctl.domain import movedns

        self.project.data.setdefault("dns_touched", time.time())
        self.project.save()
        info = movedns.publish(self, "lower-ttl", resolver)
        self.project.mark("lower-ttl", **info)

    def phase_cutover(self, *, ttl_wait: bool = True, resolver: str | None = None,
                      **_: Any) -> None:
        from mailctl.domain import movedns

        self.cutover_ready(ttl_wait)
        if not self.project.data.get("catchup_done"):
            self._all("cutover", self.catchup_one)
            self.project.data["catchup_done"] = time.time()
            self.project.event("cutover: last full pass done")
        self.project.data.setdefault("cutover_started", time.time())
        self.project.save()
        info = movedns.publish(self, "cutover", resolver)
        self.project.mark("cutover", **info)

    def cutover_ready(self, ttl_wait: bool = True) -> None:
        """Blocked until resolvers forgot the old TTL (unless told not to wait)."""
        lowered = self.project.data["done"]["lower-ttl"]
        ready = float(lowered["at"]) + float(lowered.get("old_ttl") or 0)
        if ttl_wait and time.time() < ready:
            raise Blocked(f"cutover waits until {_utc(ready)} for resolvers to forget the "
                          f"old TTL ({lowered.get('old_ttl')} s); `move run --no-ttl-wait` "
                          "cuts over now (mail that still reaches the old side is copied by "
                          "the delta passes)")

    def delta_pass(self) -> int:
        results = self._all("delta", self.delta_one)
        return sum(r.copied for r in results.values())

    def phase_delta(self, *, max_passes: int = 10, **_: Any) -> None:
        copied = []
        for _n in range(max_passes):
            copied.append(self.delta_pass())
            self.say(f"delta pass {len(copied)}: {copied[-1]} new messages")
            if copied[-1] == 0:
                break
        self.project.mark("delta", passes=len(copied), copied=sum(copied),
                          quiet=copied[-1] == 0)

    def settle_one(self, address: str) -> dict[str, Any]:
        """A delta pass, then verify; again (up to 3 times) while messages are missing:
        mail keeps arriving at the source after the delta phase (stale resolvers), and
        a message that came in between the two is not a difference."""
        out: dict[str, Any] = {}
        for _n in range(3):
            res = self.delta_one(address)
            if not res.ok:
                return res.as_dict()
            out = self.verify_one(address)
            if not out.get("missing"):
                break
        return out

    def phase_verify(self, **_: Any) -> None:
        self._all("verify", self.settle_one)
        self.write_report("verified")
        self.project.mark("verify")

    def phase_keep(self, **_: Any) -> None:
        days = int(self.project.data["keep_days"])
        self.project.mark("keep", until=time.time() + days * 86400)

    # -- the end ---------------------------------------------------------------------
    def finish(self, now: bool = False, resolver: str | None = None) -> None:
        from mailctl.domain import movedns

        if self.project.ended:
            raise MoveError(f"the move has {self.project.ended.replace('-', ' ')} already")
        if self.project.data.get("rollback_started"):
            raise MoveError("a rollback of this move is under way (`mailctl move rollback` "
                            "again completes it)")
        if not self.project.done("keep"):
            raise MoveError(f"the move is not verified yet (next: {self.project.next_phase}; "
                            "`mailctl move run` first)")
        until = float(self.project.data["done"]["keep"]["until"])
        if time.time() < until and not now:
            raise Blocked(f"the source is kept until {_utc(until)}; `move finish --now` "
                          "ends the move earlier")
        self.delta_pass()
        info = movedns.publish(self, "finish", resolver)
        self.project.data["ended"] = "finished"
        self.project.mark("finish", **info)
        self.write_report("finished")

    def rollback(self, resolver: str | None = None) -> dict[str, Any]:
        """MX back to the source (if it had moved); what arrived at the target meanwhile."""
        from mailctl.domain import movedns

        if self.project.ended:
            raise MoveError(f"the move has {self.project.ended.replace('-', ' ')} already "
                            "(a finished move is undone by moving back)")
        info: dict[str, Any] = {}
        self.project.data.setdefault("rollback_started", time.time())
        self.project.save()
        if self.project.data.get("dns_touched"):  # a lowered TTL goes back up too
            info = movedns.publish(self, "rollback", resolver)
        arrived = {}
        if self.project.done("provision"):
            arrived = {a: self.arrived_one(a) for a in self.project.addresses}
        self.project.data["ended"] = "rolled-back"
        self.project.data["arrived_at_target"] = arrived
        self.project.mark("rollback", **info)
        self.write_report("rolled back")
        return arrived

    def arrived_one(self, address: str) -> dict[str, Any]:
        """Messages at the target the source does not have, per folder."""
        from mailctl.domain.movecheck import arrived_at_target

        return arrived_at_target(lambda: self.src.store(address, readonly=True),
                                 lambda: self.dst.store(address, readonly=True), self._maps)

    def write_report(self, what: str) -> None:
        import json

        from mailctl.util.atomic import atomic_write

        d = self.project.data
        report = {"version": 1, "domain": d["domain"], "source": d["source"],
                  "target": d["target"], "state": what, "at": time.time(),
                  "not_moved": d.get("losses", []),
                  "temporary_passwords_for": sorted(self.dst.known),
                  "arrived_at_target": d.get("arrived_at_target"),
                  "mailboxes": d["mailboxes"]}
        atomic_write(self.project.path("report.json"),
                     json.dumps(report, indent=2, sort_keys=True) + "\n", 0o600)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
