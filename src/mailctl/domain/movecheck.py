"""What a move checks per mailbox once users may work at the target.

Plain verify would call every message a user moved or deleted at the target
"missing". Here the sync state's record of what was copied tells a message a
user removed after the copy from one that never arrived, and a message found
in another folder or with other flags is reported, not a failure. Functions of
store openers, so that a job worker (jobs/moverun.py) checks the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailctl.errors import MailctlError

Opener = Callable[[], Any]
Maps = Callable[[Any, Any], list[tuple[str, str]]]


def verify_mailbox(open_src: Opener, open_dst: Opener, maps: Maps,
                   state_path: Path) -> dict[str, Any]:
    """The sync engine's verify, folder by folder (counts, flags, internal dates, content
    hashes; the target may hold more). A source message whose content is nowhere in the
    target mailbox and was never copied and then removed there is missing, as is one with
    another date."""
    from mailctl.sync.engine import Options
    from mailctl.sync.imapwire import ImapError
    from mailctl.sync.model import SyncError
    from mailctl.sync.verify import _digest, verify

    def hashes(store: Any) -> Counter[str]:
        out: Counter[str] = Counter()
        for folder in store.folders():
            out.update(h for h, _, _ in _digest(store, folder).elements())
        return out

    try:
        src = open_src()
        dst = open_dst()
        try:
            rep = verify(src, dst, Options(maps=maps(src, dst)), allow_extra=True)
            moved = sum(f.missing for f in rep.folders)
            gone = hashes(src) - hashes(dst) if moved else Counter()
            lost = sum((gone - copied_hashes(state_path)).values()) if gone else 0
        finally:
            src.close()
            dst.close()
        errors = [f"{f.src}: {f.error}" for f in rep.folders
                  if f.error and f.error != "missing at the target"]
        dates = sum(f.date_mismatch for f in rep.folders)
        return {"ok": not lost and not dates and not errors,
                "messages": sum(f.src_count for f in rep.folders), "missing": lost,
                "removed_at_target": sum(gone.values()) - lost,
                "elsewhere": moved - sum(gone.values()),
                "flag_mismatch": sum(f.flag_mismatch for f in rep.folders),
                "date_mismatch": dates, "extra": sum(f.extra for f in rep.folders),
                "errors": errors}
    except (MailctlError, SyncError, ImapError, OSError) as exc:
        from mailctl.secret import scrub

        return {"ok": False, "error": scrub(str(exc))[:500]}


def copied_hashes(state_path: Path) -> Counter[str]:
    """Content hashes of the messages the sync state says were copied (or found) at
    the target: one that is not there any more was removed there after the copy."""
    from mailctl.sync.state import State

    out: Counter[str] = Counter()
    if not state_path.exists():
        return out
    state = State(str(state_path), dry_run=True)  # a read-only copy: nothing written
    try:
        for name in state.folders():
            out.update(p.hash for p in state.pairs(name).values())
    finally:
        state.close()
    return out


def arrived_at_target(open_src: Opener, open_dst: Opener, maps: Maps) -> dict[str, Any]:
    """Messages at the target the source does not have, per folder (mail delivered to
    the target after the cutover, or that users put there)."""
    from mailctl.sync.engine import Options
    from mailctl.sync.imapwire import ImapError
    from mailctl.sync.model import SyncError
    from mailctl.sync.verify import verify

    try:
        dst = open_dst()
        src = open_src()
        try:
            reverse = [(b, a) for a, b in maps(src, dst)]
            rep = verify(dst, src, Options(maps=reverse), allow_extra=True)
        finally:
            src.close()
            dst.close()
    except (MailctlError, SyncError, ImapError, OSError) as exc:
        from mailctl.secret import scrub

        return {"error": scrub(str(exc))[:300]}
    return {f.src: f.missing for f in rep.folders if f.missing}
