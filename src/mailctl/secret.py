"""A value that must never be printed by accident.

Every credential in mailctl (passwords, API keys, tokens) travels as a
`Secret`: its `str`/`repr`/format are masked, and it refuses to be pickled or
JSON-encoded implicitly. The only ways out are `reveal()` at the edge that
really needs the value (hashing, an HTTP header, the one-time stderr notice,
a 0600 secrets file). Revealed values are also registered so that the logging
filter can scrub them if a bug ever routes one into a log line.
"""

from __future__ import annotations

import string

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import NoReturn

# `logging`, `secrets` and `typing` are imported where used: they cost ~20-40 ms of start-up,
# and every command imports this module (a no-change `mailctl backup` has ~0.1 s).

MASK = "********"
_known: set[str] = set()

# URL-safe and unambiguous in every config format mailctl writes (no `|`, `:`, `,`).
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_"


class Secret:
    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self._source = source  # e.g. "${env:ALICE_PW}" — safe to show
        if len(value) >= 6:
            _known.add(value)

    def reveal(self) -> str:
        return self._value

    @property
    def source(self) -> str:
        return self._source or "literal"

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("secret", len(self._value)))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __len__(self) -> int:
        return len(self._value)


def generate_password(length: int = 32) -> Secret:
    """A fresh password from `secrets` (≥ 32 URL-safe characters ≈ 190 bits)."""
    import secrets

    length = max(length, 32)
    value = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
    return Secret(value, source="generated")


def scrub(text: str) -> str:
    """Replace any known secret value in `text` by the mask."""
    for value in _known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class ScrubFilter:
    """Defence in depth: rewrite a log record that contains a known secret.

    A plain class with `filter()` (what `Handler.addFilter` accepts), not a
    `logging.Filter` subclass, so that importing this module does not import logging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            msg = record.getMessage()
            clean = scrub(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return True
