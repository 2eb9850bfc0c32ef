"""One-way sync of every selected folder from a source store to a target store.

The order of effects is what makes kill -9 safe: a message is written to the
target and made durable (Maildir fsync, or the server's tagged OK to APPEND)
before its pair is committed to the state, and the folder's "done" status is
saved only after the whole folder went through. A run that died therefore
re-examines the folder; target messages it does not know are identified by
content hash and adopted instead of copied again. The same path handles a
first run into a non-empty target, a restore into a partly filled mailbox and
a UIDVALIDITY change, so none of them duplicates.

One case content hashes alone do not cover: a server completes a command it had
received whole even after the client died, possibly after the next run has
looked at the target, which then copies the same messages again (issue 10: a
restore killed 20 times ended with 439 extra messages). So uploads to such a
target are journalled as pending before they are sent (pipeline.py); a run that
finds a dead run's pending uploads first waits until those target folders stop
changing (`settle`), and a late copy that still appears next to the message's
recorded copy is recognised by its hash and removed, by this run or a later one.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable

from mailctl.sync.model import HASH_TAG, FolderStatus, Store, SyncError, content_hash
from mailctl.sync.state import FolderState, Pair, State

Progress = Callable[[str, int, int], None]  # folder, done, total

# A dead run's uploads sent less than SETTLE_AFTER s ago may still be committed by the
# server: wait until their target folders have not changed for SETTLE_QUIET s (at most
# SETTLE_MAX s). Measured on Dovecot: late commits within ~50 ms of the kill. Their
# journal is kept SUSPECT_TTL s, so that a later run still removes a copy that landed
# even later than that.
SETTLE_AFTER, SETTLE_QUIET, SETTLE_MAX, SUSPECT_TTL = 60.0, 1.0, 20.0, 3600.0


class Options:
    """What to sync and how carefully (plain classes here: see model.py on import cost)."""

    def __init__(self, folders: list[str] | None = None, exclude: list[str] | None = None,
                 maps: list[tuple[str, str]] | None = None, delete: bool = False,
                 force: bool = False, max_delete_share: float = 0.2, dry_run: bool = False,
                 batch_bytes: int = 2 << 20, batch_count: int | None = None,
                 jobs: int | None = None, add_only: bool = False) -> None:
        self.folders, self.exclude, self.maps = folders or [], exclude or [], maps or []
        self.delete, self.force, self.max_delete_share = delete, force, max_delete_share
        # Once users work on the target (a move after its cutover): only messages new at
        # the source are copied. Flags, deletions and moves made at the target are never
        # undone: no flag or delete is propagated, a copied message the target no longer
        # has is not copied again, a folder it no longer has is re-created only for new
        # messages. (imapsync re-copies what users moved away, its users' old complaint.)
        self.add_only = add_only
        self.dry_run, self.batch_bytes = dry_run, batch_bytes
        # MAILCTL_SYNC_BATCH: small batches let tests kill a run between two commits.
        self.batch_count = batch_count or int(os.environ.get("MAILCTL_SYNC_BATCH", "500"))
        # Folders copied at once, each on its own pair of connections (see pipeline).
        self.jobs = jobs or int(os.environ.get("MAILCTL_SYNC_JOBS", "2"))


COUNTERS = ("copied", "adopted", "flags", "deleted", "refused_deletes", "late_duplicates",
            "bytes")


class FolderReport:
    """`adopted`: already at the target (same content), recorded instead of copied.
    `late_duplicates`: copies a killed run's server committed after it died, removed."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = src, dst
        self.unchanged = False
        self.copied = self.adopted = self.flags = self.deleted = 0
        self.refused_deletes = self.late_duplicates = self.bytes = 0
        self.error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"src": self.src, "dst": self.dst, "unchanged": self.unchanged,
                **{k: getattr(self, k) for k in COUNTERS}, "error": self.error}


class Report:
    def __init__(self, src: str, dst: str, dry_run: bool) -> None:
        self.src, self.dst, self.dry_run = src, dst, dry_run
        self.folders: list[FolderReport] = []
        self.seconds = 0.0

    def total(self, attr: str) -> int:
        return sum(int(getattr(f, attr)) for f in self.folders)

    @property
    def ok(self) -> bool:
        return not any(f.error for f in self.folders)

    def as_dict(self) -> dict[str, object]:
        return {"src": self.src, "dst": self.dst, "dry_run": self.dry_run, "ok": self.ok,
                "seconds": round(self.seconds, 3),
                "totals": {k: self.total(k) for k in COUNTERS},
                "folders": [f.as_dict() for f in self.folders]}


def map_folder(name: str, maps: list[tuple[str, str]]) -> str:
    for old, new in maps:
        if name == old or name.startswith(old + "/"):
            return new + name[len(old):]
    return name


def selected(name: str, opts: Options) -> bool:
    if opts.folders and not any(fnmatch.fnmatchcase(name, p) for p in opts.folders):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in opts.exclude)


def unchanged(fs: FolderState | None, st: FolderStatus, dst: str) -> bool:
    """Skip without opening: same UIDVALIDITY, UIDNEXT, count and MODSEQ as last time.
    Only for stores whose status covers flag changes (modseq > 0: CONDSTORE, Maildir)."""
    return (fs is not None and st.modseq > 0 and fs.dst == dst and fs.src_uv == st.uidvalidity
            and fs.src_next == st.uidnext and fs.src_count == st.messages
            and fs.src_modseq == st.modseq)


def run(src: Store, dst: Store, state: State, opts: Options,
        progress: Progress | None = None) -> Report:
    t0 = time.monotonic()
    report = Report(src.label, dst.label, opts.dry_run)
    statuses = src.folders()
    known = state.folders()
    dead = state.pending_folders()  # a killed run's uploads: never skip those folders
    work: list[tuple[str, str, FolderReport]] = []
    for name in sorted(statuses, key=lambda n: (n != "INBOX", n)):
        if not selected(name, opts):
            continue
        dname = map_folder(name, opts.maps)
        fr = FolderReport(name, dname)
        report.folders.append(fr)
        if name not in dead and unchanged(known.get(name), statuses[name], dname):
            fr.unchanged = True
            continue
        work.append((name, dname, fr))
    recent = state.pending_folders(since=time.time() - SETTLE_AFTER)
    if recent:
        settle(dst, [d for n, d, _ in work if n in recent])

    def one(s: Store, d: Store, item: tuple[str, str, FolderReport]) -> None:
        name, dname, fr = item
        try:
            sync_folder(s, d, state, opts, name, dname, statuses[name], known.get(name), fr,
                        progress)
        except SyncError as exc:
            fr.error = str(exc)

    if opts.jobs > 1 and len(work) > 1 and hasattr(src, "clone") and hasattr(dst, "clone"):
        from mailctl.sync.pipeline import run_folders

        work.sort(key=lambda w: -statuses[w[0]].messages)  # largest first: even finish
        run_folders(src, dst, work, min(opts.jobs, len(work)), one)
    else:
        for item in work:
            one(src, dst, item)
    report.seconds = time.monotonic() - t0
    return report


def sync_folder(src: Store, dst: Store, state: State, opts: Options, name: str, dname: str,
                st: FolderStatus, fs: FolderState | None, fr: FolderReport,
                progress: Progress | None) -> None:
    """The source listing is streamed window by window (scan_chunks) and each window's
    new messages are copied before the next is listed, so a first backup of a large
    mailbox holds one window of metadata, not the whole folder's."""
    dry = opts.dry_run
    add_only = opts.add_only
    pairs = state.pairs(name)
    dst_st = dst.status(dname)
    missing = dst_st is None  # add_only with pairs: created only when something is new
    if dst_st is None:
        if not dry and not (add_only and pairs):
            dst.create(dname)
            missing = False
        dst_st = dst.status(dname) or FolderStatus(0, 0, 0)
    old: dict[str, Pair] = {}
    suspects = state.pending(name)  # a killed run's unconfirmed uploads (state.py)
    if add_only:
        pass  # keys the target renumbered or lost are the users' doing: left alone
    elif fs is not None and (fs.dst != dname or fs.dst_uv != dst_st.uidvalidity):
        pairs, suspects = {}, []  # the target folder was replaced: its old keys mean nothing
        if not dry:
            state.drop_pairs(name)
            state.drop_pending(name)
    if fs is not None and fs.src_uv != st.uidvalidity:
        old, pairs = pairs, {}  # source keys renumbered; target messages still known by hash
    valid = fs is not None and fs.src_uv == st.uidvalidity and bool(pairs)

    # Target messages the state does not know: identified by content, adopted not copied.
    loose: set[str] = set()
    dsizes: dict[str, int] = {}
    dflags: dict[str, str] = {}
    maybe_new = not valid or fs is None or (fs.src_next, fs.src_count) != (st.uidnext,
                                                                           st.messages)
    if dst_st.messages and (old or dst_st.messages != len(pairs) or maybe_new or suspects):
        dscan = dst.scan(dname)
        dflags = {k: v[0] for k, v in dscan.info.items()}
        dsizes = {k: v[1] for k, v in dscan.info.items()}
        stale = [] if add_only else [k for k, p in pairs.items()
                                     if p.dkey and p.dkey not in dscan.keys]
        for k in stale:  # gone from the target behind our back: copied again when listed
            del pairs[k]
        if stale and not dry:
            state.drop_pairs(name, stale)
        loose = dscan.keys - {p.dkey for p in pairs.values()}
        del dscan

    built: list[tuple[dict[str, list[str]], dict[str, str]]] = []

    def index() -> tuple[dict[str, list[str]], dict[str, str]]:
        """Built on the first new message only (hashing loose target bodies costs)."""
        if built:
            return built[0]
        by_hash: dict[str, list[str]] = {}
        built.append((by_hash, dflags))
        if add_only:  # copied before the renumbering: done, wherever users put it
            for p in old.values():
                if p.hash.startswith(HASH_TAG) and p.dkey not in loose:
                    by_hash.setdefault(p.hash, []).append(p.dkey)
        if loose:
            known_hash = {p.dkey: p.hash for p in old.values()
                          if p.dkey in loose and p.hash.startswith(HASH_TAG)}
            for k, h in known_hash.items():
                by_hash.setdefault(h, []).append(k)
            rest = sorted(loose - set(known_hash), key=_order)
            for m in dst.fetch(dname, rest, dsizes):
                by_hash.setdefault(content_hash(m.body), []).append(m.key)
        return built[0]

    if suspects and loose:
        _remove_late_copies(dst, dname, index()[0], suspects, pairs, fr, dry)

    from mailctl.sync.pipeline import Copier  # threading, queue: not for no-change runs

    copier = Copier(src, dst, state, name, dname, fr, dry_run=dry,
                    batch_bytes=opts.batch_bytes, batch_count=opts.batch_count, index=index,
                    progress=progress, total=max(st.messages - len(pairs), 0),
                    reflag=not add_only)
    unseen = set(pairs)  # what is left after the listing was deleted at the source
    changes: dict[str, str] = {}
    max_uid = 0
    try:
        for chunk in src.scan_chunks(name, fs.max_uid if valid and fs else 0,
                                     fs.src_modseq if valid and fs else 0):
            unseen.difference_update(chunk.keys)
            max_uid = max(max_uid, max((int(k) for k in chunk.keys if k.isdigit()), default=0))
            if not add_only:
                for k, info in chunk.info.items():
                    p = pairs.get(k)
                    if p is not None and p.flags != info[0]:
                        changes[k] = info[0]
            new = sorted((k for k in chunk.keys if k not in pairs), key=_order)
            if new and missing and not dry:
                dst.create(dname)
                missing = False
            copier.copy(new, {k: chunk.info[k][1] for k in new if k in chunk.info})
    finally:
        copier.close()
    gone = list(unseen)

    if changes:
        fr.flags = len(changes)
        if not dry:
            dst.set_flags(dname, {pairs[k].dkey: f for k, f in changes.items() if pairs[k].dkey})
            state.set_flags(name, changes)

    if gone and opts.delete and not add_only:
        share = len(gone) / max(len(pairs), 1)
        if share > opts.max_delete_share and not opts.force:
            fr.refused_deletes = len(gone)
            fr.error = (f"refusing to delete {len(gone)} of {len(pairs)} messages "
                        f"({share:.0%} > {opts.max_delete_share:.0%}) in {dname}; "
                        "use --force if that is intended")
        else:
            fr.deleted = len(gone)
            if not dry:
                dst.delete(dname, [pairs[k].dkey for k in gone if pairs[k].dkey])
                state.drop_pairs(name, gone)

    if not dry and fr.error is None:
        if suspects:
            state.drop_pending(name, before=time.time() - SUSPECT_TTL)
        dst_after = (dst.status(dname) if not missing else None) or dst_st
        state.save_folder(FolderState(name, dname, st.uidvalidity, dst_after.uidvalidity,
                                      st.uidnext, st.modseq, st.messages,
                                      max(max_uid, fs.max_uid if valid and fs else 0)))


def _remove_late_copies(dst: Store, dname: str, by_hash: dict[str, list[str]],
                        suspects: list[tuple[str, str, float]], pairs: dict[str, Pair],
                        fr: FolderReport, dry: bool) -> None:
    """A target message the state does not know, whose content is that of a dead run's
    upload which is recorded by now (re-sent, or adopted): the server committed the
    dead run's command after all, so this copy is one too many. Each pending upload
    accounts for at most one such copy; the rest stay candidates for adoption. Only
    where the recorded copy's target key is known (APPENDUID): otherwise the recorded copy
    itself looks unknown, and would be taken for its own twin."""
    late = []
    for skey, h, _ in suspects:
        p = pairs.get(skey)
        twins = by_hash.get(h) if p is not None and p.dkey else None
        if twins:
            late.append(twins.pop())
    if not late:
        return
    fr.late_duplicates = len(late)
    if dry:
        return
    if not getattr(dst, "exact_delete", True):
        fr.error = (f"{len(late)} messages in {dname} are duplicates a killed run's upload "
                    "left behind; the server has no UID EXPUNGE (UIDPLUS), so they were "
                    "not removed")
        return
    dst.delete(dname, late)


def settle(dst: Store, folders: list[str]) -> None:
    """Wait until these target folders have not changed for SETTLE_QUIET s (at most
    SETTLE_MAX s): what the server still had of a killed run is committed by then, and
    the target is looked at only afterwards. Costs ~1 s, only on the run after a crash."""
    last: list[tuple[int, int] | None] | None = None
    start = changed = time.monotonic()
    while folders:
        now = [(st.messages, st.uidnext) if (st := dst.status(f)) else None for f in folders]
        t = time.monotonic()
        if now != last:
            last, changed = now, t
        elif t - changed >= SETTLE_QUIET or t - start >= SETTLE_MAX:
            return
        time.sleep(0.1)


def _order(k: str) -> tuple[int, str]:
    return (int(k), "") if k.isdigit() else (0, k)
