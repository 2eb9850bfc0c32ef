"""What `mailctl reports` prints and draws: fetch lines and progress, pictures, --since.

Apart from the commands (cli/reports.py) so that module stays a list of commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mailctl.cli.common import fail


def parse_since(text: str, now: float) -> int:
    """`7d`, `36h`, `2w`, `90m` before now, or a date `YYYY-MM-DD` (UTC midnight)."""
    import datetime as dt
    import re

    m = re.fullmatch(r"\s*(\d{1,5})\s*([mhdw])\s*", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return int(now - n * {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[unit])
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a duration like 7d, 36h, 2w or a date "
                         "YYYY-MM-DD") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def write_pictures(text: str, svg: Path | None, png: Path | None) -> None:
    import subprocess
    import tempfile

    from mailctl.util.atomic import atomic_write

    if svg is not None:
        atomic_write(svg, text, 0o644)
    if png is not None:
        with tempfile.TemporaryDirectory(prefix="mailctl-") as tmp:
            src = Path(tmp) / "days.svg"
            src.write_text(text)
            out = Path(tmp) / "days.png"
            proc = subprocess.run(["rsvg-convert", "-f", "png", "-o", str(out), str(src)],
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                fail(f"rsvg-convert failed: {proc.stderr.strip()[:300]}")
            atomic_write(png, out.read_bytes(), 0o644)


def console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False, no_color="NO_COLOR" in os.environ,
                   width=None if os.isatty(1) else 120)


def fetch_line(res: Any) -> str:
    where = f"{res.mailbox}/{res.folder}" if res.folder else res.mailbox
    if res.errors:
        return f"{where}: FAILED: {'; '.join(res.errors)}"
    text = (f"{where}: {res.stored} stored, {res.duplicates} already stored, "
            f"{res.rejected} rejected, {res.ignored} not reports, {res.moved} moved")
    if res.expired:
        text += f", {res.expired} expired"
    return text + "".join(f"\n  rejected: {r}" for r in res.reasons[:20])


class FetchProgress:
    """One stderr line per folder, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = False

    def update(self, where: str, done: int, total: int) -> None:
        if self.tty:
            sys.stderr.write(f"\r{where}: {done}/{total} mails read")
            sys.stderr.flush()
            self.shown = True
        elif done == total or done % 500 == 0:
            sys.stderr.write(f"{where}: {done}/{total} mails read\n")

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
