"""IMAP response parsing and the small encoders, without any I/O (sans-IO).

Split from imapwire.py (the socket, pipelining and IDLE) along the seam the
research notes ask for: the parser can be used from asyncio or threads, and
tested on bytes alone. Speed notes: a response's literals are sliced out by
their `{n}` length before anything here sees them, so bodies are never
scanned; the two FETCH shapes a sync reads most are matched whole by one
regular expression each (7x faster than the tokenizer, which was the largest
share of client CPU in a migration).
"""

from __future__ import annotations

import re

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"\[]+(?:\[[^\]]*\][^\s()]*)?))')
# The two answers a sync reads most, in the order Dovecot (and most servers) send them,
# matched whole: the tokenizer was the largest share of client CPU in a migration, and
# the client shares the machine's cores with both servers. Other shapes: parse_sexp.
_BODY_SHAPE = re.compile(rb'\* (\d+) FETCH \(UID (\d+) FLAGS \(([^()"]*)\) '
                         rb'INTERNALDATE "([^"\\]*)" BODY\[\] \x00LIT(?: MODSEQ \(\d+\))?\)\Z')
_LIST_SHAPE = re.compile(rb'\* (\d+) FETCH \(UID (\d+) FLAGS \(([^()"]*)\) '
                         rb'RFC822\.SIZE (\d+)(?: MODSEQ \(\d+\))?\)\Z')

class Literal(bytes):
    """A value that came as a literal, so parsers can tell it from an atom."""


class Response:
    """One untagged or tagged response: its line text (literals replaced) and literals."""

    __slots__ = ("line", "literals")

    def __init__(self, line: bytes, literals: list[bytes]) -> None:
        self.line = line
        self.literals = literals

    def parse(self) -> list[Any]:
        """The response as nested lists of bytes; literals come back as `Literal`."""
        return parse_sexp(self.line, self.literals)


def parse_sexp(line: bytes, literals: list[bytes], raw: bool = False) -> list[Any]:
    """`raw`: put literals in as they are (no `Literal` copy) - for message bodies."""
    stack: list[list[Any]] = [[]]
    lit_iter = iter(literals)
    pos, end = 0, len(line)
    while pos < end:
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            stack.append([])
        elif m.group(2):
            done = stack.pop()
            stack[-1].append(done)
        elif m.group(3) is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", m.group(3)))
        else:
            tok = m.group(4)
            if tok == b"\x00LIT":
                lit = next(lit_iter)
                stack[-1].append(lit if raw else Literal(lit))
            else:
                stack[-1].append(tok)
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]


def quote(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'



def uid_set(uids: list[int]) -> bytes:
    """Compact `1:5,7,9:12` form of sorted UIDs (the wire cost of a set stays small)."""
    out: list[bytes] = []
    start = prev = -2
    for u in uids:
        if u == prev + 1:
            prev = u
            continue
        if start >= 0:
            out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    if start >= 0:
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)


def parse_uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        if b":" in part:
            a, b = (int(x) for x in part.split(b":"))
            uids.extend(range(min(a, b), max(a, b) + 1))
        elif part:
            uids.append(int(part))
    return uids


def fetch_items(resp: Response, raw: bool = False) -> tuple[int, dict[bytes, Any]] | None:
    """`* n FETCH (K V ...)` as (n, {K: V}); None for any other response. `raw`: literals
    (bodies) are the received objects themselves, not copies."""
    line = resp.line
    if not line.startswith(b"* ") or b" FETCH " not in line[:24]:
        return None
    lits = resp.literals
    m = _BODY_SHAPE.match(line) if len(lits) == 1 else _LIST_SHAPE.match(line)
    if m is not None and len(lits) < 2:
        seq, uid, flags, value = m.groups()
        if not lits:
            return int(seq), {b"UID": uid, b"FLAGS": flags.split(), b"RFC822.SIZE": value}
        return int(seq), {b"UID": uid, b"FLAGS": flags.split(), b"INTERNALDATE": value,
                          b"BODY[]": lits[0] if raw else Literal(lits[0])}
    seq_s, _, rest = line[2:].partition(b" FETCH ")
    parsed = parse_sexp(rest, resp.literals, raw)
    if not parsed or not isinstance(parsed[0], list):
        return None
    items = parsed[0]
    return int(seq_s), {bytes(items[i]).upper(): items[i + 1] for i in range(0, len(items) - 1, 2)}
