"""docker-mailserver's config files, parsed and re-rendered byte for byte.

Untouched lines (comments, entries of other domains, forms mailctl does not
manage) are written back exactly as read; changed and new entries use the
format `setup email add`, `setup alias add` and `setup quota set` write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailctl.model import AddressError, normalise_address
from mailctl.util.sizes import format_size

ACCOUNTS = "postfix-accounts.cf"
VIRTUAL = "postfix-virtual.cf"
QUOTAS = "dovecot-quotas.cf"
FILES = (ACCOUNTS, VIRTUAL, QUOTAS)

_WS = re.compile(r"\s+")
_TARGET_SPLIT = re.compile(r"[,\s]+")
_DMS_SIZE = re.compile(r"^([0-9]+)(B|k|M|G|T)$")
_MULT = {"B": 1, "k": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_dms_size(text: str) -> int | None:
    text = text.strip()
    if text == "0":
        return 0
    m = _DMS_SIZE.match(text)
    return int(m.group(1)) * _MULT[m.group(2)] if m else None


format_dms_size = format_size  # docker-mailserver writes the short binary form


def _norm(key: str) -> str | None:
    try:
        return normalise_address(key)
    except AddressError:
        return None


@dataclass(slots=True)
class Line:
    raw: str
    key: str | None = None  # normalised key, None for comments/unmanaged lines
    value: str = ""  # hash / targets / size, as parsed
    extra: str = ""  # accounts: Dovecot extra fields (3rd column), kept as is


@dataclass
class CfFile:
    """An ordered set of lines with an index by key; deletions are tombstones."""

    name: str
    lines: list[Line | None] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    changed: bool = False
    trailing_newline: bool = True

    def get(self, key: str) -> Line | None:
        i = self.index.get(key)
        return self.lines[i] if i is not None else None

    def addresses(self) -> list[str]:
        return list(self.index)

    def put(self, line: Line) -> None:
        assert line.key is not None
        i = self.index.get(line.key)
        if i is None:
            self.index[line.key] = len(self.lines)
            self.lines.append(line)
        else:
            self.lines[i] = line
        self.changed = True

    def delete(self, key: str) -> bool:
        i = self.index.pop(key, None)
        if i is None:
            return False
        self.lines[i] = None
        self.changed = True
        return True

    def render(self, last_first: bool = False) -> str:
        kept = [ln for ln in self.lines if ln is not None]
        if last_first:
            # Catch-alls after the specific entries: docker-mailserver's docs ask for it,
            # and a human reading the file sees the precedence Postfix applies.
            kept = [ln for ln in kept if not (ln.key or "").startswith("@")] + [
                ln for ln in kept if (ln.key or "").startswith("@")
            ]
        if not kept:
            return ""
        return "\n".join(ln.raw for ln in kept) + "\n"


def _read(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return text.replace("\r\n", "\n").split("\n")[:-1] if text else []


def _skip(raw: str) -> bool:
    s = raw.strip()
    return not s or s.startswith("#")


def _parse(path: Path, name: str, entry: Callable[[str], Line | None]) -> CfFile:
    """Every line is kept; those `entry` understands are also indexed by key.

    A key seen twice keeps its first line indexed (the one Postfix and Dovecot
    use) and the second verbatim, so nothing the user wrote is lost."""
    f = CfFile(name)
    for raw in _read(path):
        line = None if _skip(raw) else entry(raw)
        if line is None or line.key is None or line.key in f.index:
            f.lines.append(Line(raw))
            continue
        f.index[line.key] = len(f.lines)
        f.lines.append(line)
    return f


def _account(raw: str) -> Line | None:
    parts = raw.strip().split("|", 2)
    key = _norm(parts[0]) if len(parts) >= 2 else None
    if not key or key.startswith("@"):
        return None
    return Line(raw, key, parts[1], parts[2] if len(parts) == 3 else "")


def _virtual(raw: str) -> Line | None:
    parts = _WS.split(raw.strip(), maxsplit=1)
    # Bare keys (`user`, valid in every domain) are kept but not managed.
    key = _norm(parts[0]) if len(parts) == 2 and "@" in parts[0] else None
    if not key:
        return None
    targets = [_norm(t) or t for t in _TARGET_SPLIT.split(parts[1]) if t]
    return Line(raw, key, ",".join(targets))


def _quota(raw: str) -> Line | None:
    addr, sep, size = raw.strip().partition(":")
    key = _norm(addr) if sep else None
    if not key or parse_dms_size(size) is None:
        return None
    return Line(raw, key, size.strip())


def parse_accounts(path: Path) -> CfFile:
    return _parse(path, ACCOUNTS, _account)


def parse_virtual(path: Path) -> CfFile:
    return _parse(path, VIRTUAL, _virtual)


def parse_quotas(path: Path) -> CfFile:
    return _parse(path, QUOTAS, _quota)


def account_line(address: str, hashed: str, extra: str = "") -> Line:
    raw = f"{address}|{hashed}" + (f"|{extra}" if extra else "")
    return Line(raw, address, hashed, extra)


def virtual_line(address: str, targets: list[str]) -> Line:
    value = ",".join(targets)
    return Line(f"{address} {value}", address, value)


def quota_line(address: str, size: int) -> Line:
    text = format_dms_size(size)
    return Line(f"{address}:{text}", address, text)
