"""A move on disk: one directory that holds everything a move needs to go on.

Why a project directory and not flags on one long command: a move takes days
(the source is kept while resolvers forget the old MX), so every step must be
resumable by a later `mailctl move run`, after kill -9 or a reboot, without
anybody remembering where it stopped. Layout (directories 0700, files 0600):

    DIR/move.json       the state: phases done, per-mailbox results (atomic rewrite)
    DIR/source.yaml     the source domain as `mailctl import` wrote it (the inventory)
    DIR/target.yaml     the config the target is provisioned and published from
    DIR/secrets.tsv     passwords mailctl set at the target (address<TAB>password)
    DIR/sync/ADDR.db    each mailbox's sync state (the engine's, kill -9 safe)
    DIR/report.json     written when the move verifies, finishes or rolls back

`move.json` is rewritten whole through `atomic_write` after every mailbox and
every phase, so a reader sees the state before or after a step, never half of
it; a step that was cut short is simply run again (each phase is idempotent).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from mailctl.errors import MailctlError

FORMAT = 1
STATE = "move.json"
PHASES = ("inventory", "provision", "presync", "lower-ttl", "cutover", "delta", "verify",
          "keep")
# What each phase does, for `move status` ("what is next").
DOES = {
    "inventory": "read the source domain (accounts, aliases, settings) and plan the target",
    "provision": "create the domain's accounts and aliases at the target (create-only)",
    "presync": "copy every mailbox to the target, all folders, flags and dates",
    "lower-ttl": "lower the TTL of MX and the other mail records, so the switch is quick",
    "cutover": "a last full pass, then publish the target's MX: new mail goes there",
    "delta": "copy what still arrives at the old side until it is quiet (add-only)",
    "verify": "check every mailbox: counts, flags, dates, content hashes",
    "keep": "keep the source for the agreed days; `move run` copies stragglers",
}
ENDED = ("finished", "rolled-back")


class MoveError(MailctlError):
    """A move cannot go on as asked (not a provider's fault: exit 1)."""


class Blocked(MailctlError):
    """A phase waits for something outside mailctl (DNS caches, an operator's DNS edit)."""


class Project:
    """The state file of one move; thread-safe updates, each saved atomically."""

    def __init__(self, root: Path, data: dict[str, Any]) -> None:
        self.root, self.data = root, data
        self.lock = threading.RLock()

    # -- files ---------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.root / STATE

    def path(self, name: str) -> Path:
        return self.root / name

    def sync_state(self, address: str) -> Path:
        from mailctl.domain.mailsync import safe_name

        return self.root / "sync" / (safe_name(address) + ".db")

    @classmethod
    def create(cls, root: Path, data: dict[str, Any]) -> Project:
        from mailctl.util.private import private_dir

        private_dir(root)
        private_dir(root / "sync")
        p = cls(root, {"format": FORMAT, "created_at": time.time(), "done": {},
                       "mailboxes": {}, "events": [], **data})
        p.save()
        return p

    @classmethod
    def load(cls, root: Path) -> Project:
        path = root / STATE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise MoveError(f"{root} is not a move project: no {STATE} (expected a directory "
                            "written by `mailctl move start`)") from None
        except (OSError, ValueError) as exc:
            raise MoveError(f"{path}: unreadable ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MoveError(f"{path}: not a move state of format {FORMAT}")
        return cls(root, data)

    def save(self) -> None:
        with self.lock, self._file_lock():
            self._merge()
            self._write()

    def refresh(self) -> None:
        """Take in the per-mailbox results other processes recorded meanwhile."""
        with self.lock, self._file_lock():
            self._merge()

    def _file_lock(self) -> Any:
        """Held while move.json is read, merged and rewritten: queue workers on other hosts
        (`jobs submit move-run`) record their mailboxes' results into the same file."""
        from mailctl.util.atomic import locked

        return locked(self.root / ".state.lock", timeout=120)

    def _merge(self, everything: bool = False) -> None:
        """Per-mailbox results another process recorded since we read the file: per
        mailbox and step, the newer entry wins (one mailbox's step runs in one place at a
        time: its sync state's lock, or the job's per-account lock). `everything`: the
        rest as well (phases, events), as the file has it: a worker that records one
        mailbox does not know the phases the process advancing the move wrote since."""
        try:
            disk = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(disk, dict):
            return
        if everything:
            self.data.update({k: v for k, v in disk.items() if k != "mailboxes"})
        boxes = disk.get("mailboxes")
        for address, steps in (boxes or {}).items():
            mine = self.data["mailboxes"].setdefault(address, {})
            for step, entry in (steps or {}).items():
                have = mine.get(step)
                if isinstance(entry, dict) and (not isinstance(have, dict) or float(
                        entry.get("at", 0)) > float(have.get("at", 0))):
                    mine[step] = entry

    def _write(self) -> None:
        from mailctl.util.atomic import atomic_write

        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        atomic_write(self.state_path, text, 0o600)

    # -- phases --------------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return str(self.data["domain"])

    @property
    def addresses(self) -> list[str]:
        return list(self.data["addresses"])

    def done(self, phase: str) -> bool:
        return phase in self.data["done"]

    @property
    def ended(self) -> str | None:
        end = self.data.get("ended")
        return str(end) if end else None

    @property
    def phase(self) -> str:
        """The last phase completed ("" before any), or how the move ended."""
        if self.ended:
            return self.ended
        last = ""
        for p in PHASES:
            if self.done(p):
                last = p
        return last

    @property
    def next_phase(self) -> str | None:
        if self.ended:
            return None
        return next((p for p in PHASES if not self.done(p)), None)

    def mark(self, phase: str, **detail: Any) -> None:
        with self.lock:
            self.data["done"][phase] = {"at": time.time(), **detail}
            self.event(f"{phase} done")

    def event(self, text: str) -> None:
        """A line of the move's history (kept short: the last 200), saved at once."""
        with self.lock:
            self.data["events"] = [*self.data["events"][-199:], [time.time(), text]]
            self.save()

    def box(self, address: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.data["mailboxes"].setdefault(address, {}))

    def record(self, address: str, step: str, result: dict[str, Any]) -> None:
        """One mailbox's result of a step, saved at once (the next run skips nothing,
        but `status` shows how far each mailbox got)."""
        with self.lock, self._file_lock():
            self._merge(everything=True)
            entry = self.data["mailboxes"].setdefault(address, {})
            prev = entry.get(step) or {}
            copied = int(prev.get("copied_total", 0)) + int(result.get("copied", 0))
            entry[step] = {**result, "at": time.time(), "copied_total": copied}
            self._write()


def status(project: Project) -> dict[str, Any]:
    """What `move status` shows: phase, what is next, what blocks, per mailbox, ETA."""
    d = project.data
    nxt = project.next_phase
    boxes = []
    for address in project.addresses:
        entry = d["mailboxes"].get(address, {})
        last = max((v for v in entry.values() if isinstance(v, dict)),
                   key=lambda v: v.get("at", 0), default={})
        ver = entry.get("verify")
        boxes.append({
            "address": address,
            "presync": (entry.get("presync") or {}).get("copied_total"),
            "delta": (entry.get("delta") or {}).get("copied_total"),
            "verified": None if ver is None else bool(ver.get("ok")),
            "verify": ver,
            "error": last.get("error") if last and not last.get("ok", True) else None})
    eta = None
    step = {"presync": "presync", "cutover": "catchup", "delta": "delta",
            "verify": "verify"}.get(nxt or "")
    if step:
        started = max((float(v["at"]) for p, v in d["done"].items() if p in PHASES),
                      default=float(d["created_at"]))
        times = [float(e[step]["at"]) for e in d["mailboxes"].values()
                 if e.get(step) and float(e[step]["at"]) >= started]
        if times and len(times) < len(project.addresses):
            eta = (max(times) - started) / len(times) * (len(project.addresses) - len(times))
    keep = d["done"].get("keep")
    return {"version": 1, "domain": d["domain"], "source": d["source"],
            "target": d["target"], "project": str(project.root), "phase": project.phase,
            "next": nxt, "next_does": DOES.get(nxt or ""), "blocked": d.get("blocked"),
            "ended": project.ended, "eta_seconds": None if eta is None else round(eta, 1),
            "keep_until": keep.get("until") if keep else None,
            "not_moved": d.get("losses", []), "phases": {p: d["done"].get(p) for p in PHASES},
            "arrived_at_target": d.get("arrived_at_target"), "mailboxes": boxes}
