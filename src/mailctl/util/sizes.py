"""Sizes in bytes, written the way mail servers write them (binary units).

One place for it: the config reads `2G`/`2GiB`/`500M`, docker-mailserver writes
`2G`/`512M`/`1536k`, and plans show quotas in the same short form.
"""

from __future__ import annotations

import re
from typing import Any

_CONFIG_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: Any) -> int:
    """`2G`, `2GiB`, `500M`, `0` (unlimited) or an integer of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 2G, 500M or 0")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        m = _CONFIG_RE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError(f"expected a size like 2G, 500M or 0, got {value!r}")


def format_size(size: int) -> str:
    """The shortest exact form: 2G, 1536M, 100k, 123B; 0 stays 0 (unlimited)."""
    if size == 0:
        return "0"
    for unit in ("T", "G", "M"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    if size % _UNITS["K"] == 0:
        return f"{size // _UNITS['K']}k"
    return f"{size}B"


def approx_size(size: int) -> str:
    """Three significant figures in the largest binary unit: for people, never parsed."""
    for unit, power in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20),
                        ("KiB", 10)):
        if size >= 1 << power:
            return f"{size / (1 << power):.3g} {unit}"
    return f"{size} bytes"
