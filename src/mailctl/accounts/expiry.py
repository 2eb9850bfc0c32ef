"""Expiry codes (`1h`, `7d`, `2w`, `1y`, `never`) and dates.

mailadm accepted any string and failed with an HTML 500 on the first scan;
here a code is checked when it is typed. `m` is refused as ambiguous
(minutes or months?): write `30min` or `1mo`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

NEVER = "never"
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
          "mo": 30 * 86400, "y": 365 * 86400}
_CODE = re.compile(r"^(\d{1,6})(s|min|h|d|w|mo|y)$")


class ExpiryError(ValueError):
    pass


def parse_expiry(code: str) -> int | None:
    """Seconds an account made with this code lives; None for `never`."""
    text = code.strip().lower()
    if text == NEVER:
        return None
    m = _CODE.match(text)
    if not m:
        hint = " (ambiguous: write 30min or 1mo)" if text.endswith("m") else ""
        raise ExpiryError(
            f"invalid expiry {code!r}{hint}: expected a number and a unit "
            "(s, min, h, d, w, mo, y), e.g. 1h, 7d, 2w, 1y, or 'never'")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ExpiryError(f"invalid expiry {code!r}: must be more than zero")
    return seconds


def normalise_expiry(code: str) -> str:
    parse_expiry(code)
    return code.strip().lower()


def parse_date(text: str) -> int:
    """`2025-12-31` (end of that day, UTC) or an ISO timestamp -> unix seconds."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = datetime.fromisoformat(raw).replace(tzinfo=UTC)
            return int(day.timestamp()) + 86400 - 1
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ExpiryError(f"invalid date {text!r}: expected YYYY-MM-DD or an ISO 8601 time"
                          ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def parse_until(text: str, now: float) -> int:
    """An end date for a token: parse_date, and in the future (a past one would make a
    token that is dead on arrival; `tokens disable` is the way to stop one now)."""
    try:
        when = parse_date(text)
    except (OverflowError, OSError):
        raise ExpiryError(f"invalid date {text!r}: expected YYYY-MM-DD or an ISO 8601 time"
                          ) from None
    if when <= now:
        raise ExpiryError(f"{text!r} is in the past ({iso(when)}): expected a future date, "
                          "YYYY-MM-DD or an ISO 8601 time")
    return when


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
