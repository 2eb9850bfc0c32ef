"""`jobs submit move-run`: `mailctl move run` with its per-mailbox steps as queue jobs.

A move's phases are of two kinds. Provision, lower-ttl, the cutover's DNS change
and keep are a few calls each: `submit` runs them itself, as `move run` does.
Presync, the cutover's catch-up pass, the delta passes and verify are one step
per mailbox (Move.presync_one, catchup_one, delta_one, settle_one): `submit`
queues one job per mailbox and returns; workers on any host run exactly the
method `move run` would. Each later `submit` looks at the round it queued: while
any of its jobs is queued or running it says so and changes nothing; once all
are done it completes the phase (the same marks and report as `move run`) and
goes on to the next, up to the next round of jobs. Mailboxes whose job failed
or was cancelled are queued again by the next `submit` (as a new `move run`
re-runs an incomplete phase).

Where the state lives: the project directory stays the move's state, and must
be on storage every worker mounts at the same path (as domain-backup's DIR).
Each mailbox's sync state is its SQLite file there, with its lock, exactly as
for `move run` (so a later `move run` or `move finish` continues from it). The
workers record each mailbox's result into move.json under the project's state
lock, merging with what other hosts wrote (moveproject.Project._merge), so
`move status` shows what the workers did. Whether a round is complete is read
from the queue (the job's state), not from timestamps in the file, so the
hosts' clocks do not matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.jobs import failures

if TYPE_CHECKING:
    from mailctl.domain.move import Move
    from mailctl.jobs.queue import QueueUrl

# The phase each mailbox step belongs to; "keep" is a delta pass after verify.
STEP = {"presync": "presync", "cutover": "catchup", "delta": "delta", "verify": "verify"}
KIND = "move-run"


@dataclass
class Step:
    servers: list[str]
    run: Callable[[Any], Any]


def mailbox_step(spec: dict[str, Any], worker: str) -> Step:
    """On a worker: the move step a job names, as a function of its progress."""
    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config
    from mailctl.domain.move import Move
    from mailctl.domain.moveproject import Project
    from mailctl.errors import MailctlError

    try:
        project = Project.load(Path(spec["project"]))
        config = load_config(Path(project.data["config"]))
        move = Move(project, config, jobs=1, sessions=1)
        src, dst = move.src, move.dst
    except ConfigError as exc:
        raise failures.CopyRefused(failures.OTHER, f"{spec['project']}: {exc} (on worker "
                                   f"{worker})") from None
    except MailctlError as exc:
        raise failures.CopyRefused(failures.OTHER, f"{exc} (on worker {worker})") from None
    one = {"presync": move.presync_one, "catchup": move.catchup_one,
           "delta": move.delta_one, "verify": move.settle_one}[spec["step"]]

    def run(progress: Any) -> Any:
        move.progress = progress
        return one(spec["mailbox"])

    return Step([f"{a.host}:{a.port}".lower() for a in (src, dst)], run)


def _key(move: Move, address: str) -> str:
    from mailctl.jobs.queue import account_key

    return account_key(f"move:{move.project.root.resolve()}", address)


def _queue_round(url: QueueUrl, move: Move, step: str, addresses: list[str],
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from mailctl.jobs.submit import enqueue

    p = move.project
    root = str(p.root.resolve())
    items = [(_key(move, a), f"{a}: move {step}", {"project": root, "mailbox": a,
                                                    "step": step}) for a in addresses]
    round_ = dict(p.data.get("jobs") or {})
    round_.update({"step": step, "queued_at": time.time(), **(extra or {})})
    p.data["jobs"] = round_
    p.save()  # before the first job can start (and record into the file)
    res = enqueue(url, "move_mailbox", KIND, items)
    p.event(f"{step}: {res['queued']} mailboxes queued on {url.display()}")
    return res


def _outcome(url: QueueUrl, move: Move) -> dict[str, str]:
    """address -> its job's state (queued, copying, retrying, done, failed, cancelled)."""
    from mailctl.jobs.queue import connect
    from mailctl.jobs.status import account_state

    keys = {_key(move, a): a for a in move.project.addresses}
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT a.account, a.status, j.status::text FROM mailctl_jobs_accounts a "
            "LEFT JOIN procrastinate_jobs j ON j.id = a.job_id WHERE a.account = ANY(%s)",
            (list(keys),)).fetchall()
    return {keys[k]: account_state(js, rs) for k, rs, js in rows}


def _copied(move: Move, step: str) -> int:
    boxes = move.project.data["mailboxes"]
    return sum(int((boxes.get(a, {}).get(step) or {}).get("copied", 0))
               for a in move.project.addresses)


def _complete(move: Move, round_: dict[str, Any], max_passes: int,
              resolver: str | None) -> str | None:
    """The round's phase completed as `move run` completes it; the step to queue next
    (another delta pass), or None."""
    p, step = move.project, round_["step"]
    if round_.get("keep"):
        p.event("keep: delta pass")
    elif step == "presync":
        p.mark("presync", copied=_copied(move, "presync"))
    elif step == "catchup":
        p.data["catchup_done"] = time.time()
        p.event("cutover: last full pass done")
        move.phase_cutover(ttl_wait=False, resolver=resolver)
    elif step == "delta":
        passes = [*round_.get("passes", []), _copied(move, "delta")]
        if passes[-1] and len(passes) < max_passes:
            round_["passes"] = passes
            return "delta"
        p.mark("delta", passes=len(passes), copied=sum(passes), quiet=passes[-1] == 0)
    elif step == "verify":
        move.write_report("verified")
        p.mark("verify")
    return None


def advance(url: QueueUrl, move: Move, *, ttl_wait: bool = True, resolver: str | None = None,
            max_passes: int = 10) -> dict[str, Any]:
    """Run the phases that are not per mailbox, complete a finished round, queue the next
    one. Holds the project's run lock (the caller takes it)."""
    from mailctl.domain.moveproject import DOES, Blocked, MoveError

    p = move.project
    if p.ended:
        raise MoveError(f"the move of {move.domain} has {p.ended.replace('-', ' ')} "
                        "(nothing left to run)")
    if p.data.get("rollback_started"):
        raise MoveError("a rollback of this move is under way (`mailctl move rollback` "
                        "again completes it)")
    done: list[str] = []
    out: dict[str, Any] = {"done": done, "queued": 0, "step": None, "waiting": 0,
                           "requeued": []}
    try:
        while True:
            round_ = p.data.get("jobs")
            if round_:
                states = _outcome(url, move)
                busy = [a for a in p.addresses
                        if states.get(a) in ("queued", "copying", "retrying")]
                if busy:
                    out.update(step=round_["step"], waiting=len(busy))
                    return out
                p.refresh()  # the workers' results, for the phase's marks and report
                bad = [a for a in p.addresses if states.get(a) != "done"]
                if bad:
                    res = _queue_round(url, move, round_["step"], bad)
                    out.update(step=round_["step"], queued=res["queued"], requeued=bad)
                    return out
                again = _complete(move, round_, max_passes, resolver)
                if again:
                    res = _queue_round(url, move, again, p.addresses)
                    out.update(step=again, queued=res["queued"])
                    return out
                done.append("keep" if round_.get("keep") else next(
                    ph for ph, st in STEP.items() if st == round_["step"]))
                p.data.pop("jobs")
                p.save()
                if round_.get("keep"):
                    return out
                continue
            if p.done("keep") and not done:  # as `move run` in the keep phase
                res = _queue_round(url, move, "delta", p.addresses, {"keep": True})
                out.update(step="delta", queued=res["queued"])
                return out
            phase = p.next_phase
            if phase is None:
                return out
            if phase in STEP and not (phase == "cutover" and p.data.get("catchup_done")):
                if phase == "cutover":
                    move.cutover_ready(ttl_wait)
                res = _queue_round(url, move, STEP[phase], p.addresses)
                out.update(step=STEP[phase], queued=res["queued"])
                return out
            move.say(f"{phase}: {DOES[phase]}")
            getattr(move, "phase_" + phase.replace("-", "_"))(
                ttl_wait=ttl_wait, resolver=resolver, max_passes=max_passes)
            if p.data.pop("blocked", None) is not None:
                p.save()
            done.append(phase)
    except Blocked as exc:
        p.data["blocked"] = str(exc)
        p.save()
        raise
