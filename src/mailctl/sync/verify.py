"""Prove a copy: folder by folder, the multiset of (content hash, flags, date) must match.

Counts alone miss a truncated or swapped body, and Message-IDs are neither
unique nor always present; hashing the bytes (line endings aside) is what a
user means by "nothing was lost". Bodies are streamed and only hashes kept,
so memory stays flat in mailbox size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from mailctl.sync.engine import Options, map_folder, selected
from mailctl.sync.model import Store, SyncError, content_hash, imap_date_to_epoch


@dataclass
class FolderCheck:
    src: str
    dst: str
    src_count: int = 0
    dst_count: int = 0
    missing: int = 0  # in the source, not in the target
    extra: int = 0  # in the target only
    flag_mismatch: int = 0
    date_mismatch: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.flag_mismatch or self.date_mismatch or self.error)


@dataclass
class VerifyReport:
    src: str
    dst: str
    folders: list[FolderCheck] = field(default_factory=list)
    allow_extra: bool = False

    @property
    def ok(self) -> bool:
        return all(f.ok and (self.allow_extra or not f.extra) for f in self.folders)

    def as_dict(self) -> dict[str, object]:
        return {"src": self.src, "dst": self.dst, "ok": self.ok,
                "folders": [asdict(f) | {"ok": f.ok} for f in self.folders]}


def _digest(store: Store, folder: str) -> Counter[tuple[str, str, int]]:
    scan = store.scan(folder)
    sizes = {k: v[1] for k, v in scan.info.items()}
    keys = sorted(scan.keys, key=lambda k: (int(k), "") if k.isdigit() else (0, k))
    return Counter((content_hash(m.body), m.flags, int(imap_date_to_epoch(m.date)) if m.date
                    else 0) for m in store.fetch(folder, keys, sizes))


def verify(src: Store, dst: Store, opts: Options, allow_extra: bool = False) -> VerifyReport:
    report = VerifyReport(src.label, dst.label, allow_extra=allow_extra)
    for name in sorted(src.folders(), key=lambda n: (n != "INBOX", n)):
        if not selected(name, opts):
            continue
        fc = FolderCheck(name, map_folder(name, opts.maps))
        report.folders.append(fc)
        try:
            a = _digest(src, name)
            if dst.status(fc.dst) is None:
                fc.src_count, fc.missing = sum(a.values()), sum(a.values())
                if a:
                    fc.error = "missing at the target"
                continue
            b = _digest(dst, fc.dst)
        except SyncError as exc:
            fc.error = str(exc)
            continue
        fc.src_count, fc.dst_count = sum(a.values()), sum(b.values())
        by_hash_a = Counter(h for h, _, _ in a.elements())
        by_hash_b = Counter(h for h, _, _ in b.elements())
        fc.missing = sum((by_hash_a - by_hash_b).values())
        fc.extra = sum((by_hash_b - by_hash_a).values())
        with_flags_a = Counter((h, f) for h, f, _ in a.elements())
        with_flags_b = Counter((h, f) for h, f, _ in b.elements())
        fc.flag_mismatch = sum((with_flags_a - with_flags_b).values()) - fc.missing
        dates_a = Counter((h, d) for h, _, d in a.elements())
        dates_b = Counter((h, d) for h, _, d in b.elements())
        fc.date_mismatch = sum((dates_a - dates_b).values()) - fc.missing
    return report
