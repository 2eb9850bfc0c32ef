"""Prove a copy: folder by folder, the multiset of (content hash, flags, date) must match.

Counts alone miss a truncated or swapped body, and Message-IDs are neither
unique nor always present; hashing the bytes (line endings aside) is what a
user means by "nothing was lost". Bodies are streamed and only hashes kept,
so memory stays flat in mailbox size.

`delivered`: the target got the messages by delivery (`mailctl fetch`), so the
delivering server prepended trace header fields (Return-Path, Delivered-To,
Received...) and chose flags and date itself. A target message then matches a
source message whose bytes it ends with, after up to TRACE_MAX whole header
fields from its top; flags and dates are not compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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
    delivered: bool = False

    @property
    def ok(self) -> bool:
        return all(f.ok and (self.allow_extra or not f.extra) for f in self.folders)

    def as_dict(self) -> dict[str, object]:
        return {"src": self.src, "dst": self.dst, "ok": self.ok, "delivered": self.delivered,
                "folders": [asdict(f) | {"ok": f.ok} for f in self.folders]}


def _digest(store: Store, folder: str) -> Counter[tuple[str, str, int]]:
    scan = store.scan(folder)
    sizes = {k: v[1] for k, v in scan.info.items()}
    keys = sorted(scan.keys, key=lambda k: (int(k), "") if k.isdigit() else (0, k))
    return Counter((content_hash(m.body), m.flags, int(imap_date_to_epoch(m.date)) if m.date
                    else 0) for m in store.fetch(folder, keys, sizes))


TRACE_MAX = 20  # header fields a delivery may have prepended


def _trace_stripped(body: bytes) -> Iterator[bytes]:
    """`body`, then `body` without its first header field, its first two, ..."""
    yield body
    rest = body
    for _ in range(TRACE_MAX):
        if rest[:1] in (b"\r", b"\n", b""):  # the blank line: no header fields left
            return
        i = rest.find(b"\n")
        while i >= 0 and rest[i + 1:i + 2] in (b" ", b"\t"):  # folded continuation
            i = rest.find(b"\n", i + 1)
        if i < 0:
            return
        rest = rest[i + 1:]
        yield rest


def _delivered(store: Store, folder: str, want: Counter[tuple[str, str, int]]
               ) -> Counter[tuple[str, str, int]]:
    """The target's messages keyed like `want`'s (hash, "", 0): each by the first
    trace-stripped form whose hash the source still has unmatched copies of."""
    left = Counter(h for h, _, _ in want.elements())
    scan = store.scan(folder)
    sizes = {k: v[1] for k, v in scan.info.items()}
    got: Counter[tuple[str, str, int]] = Counter()
    for m in store.fetch(folder, sorted(scan.keys), sizes):
        key = content_hash(m.body)
        for form in _trace_stripped(m.body):
            h = content_hash(form)
            if left[h] > 0:
                left[h] -= 1
                key = h
                break
        got[(key, "", 0)] += 1
    return got


def verify(src: Store, dst: Store, opts: Options, allow_extra: bool = False,
           delivered: bool = False) -> VerifyReport:
    report = VerifyReport(src.label, dst.label, allow_extra=allow_extra, delivered=delivered)
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
            if delivered:
                a = Counter((h, "", 0) for h, _, _ in a.elements())
                b = _delivered(dst, fc.dst, a)
            else:
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
