"""Organisational domains (RFC 7489 §3.2) from the Public Suffix List.

DMARC needs to know which organisation a name belongs to: a sub-domain without
its own `_dmarc` record is governed by its organisational domain's record, and
report destinations inside the same organisation need no authorisation. Only the
Public Suffix List can tell that `a.example.co.uk` belongs to `example.co.uk`
while `a.github.io` belongs to itself. The list comes bundled with the
`publicsuffixlist` package (refreshed with its releases), so nothing is fetched
at run time; parsing it costs about 0.1 s, so it is loaded on first use only.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _list() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def organisational_domain(name: str) -> str:
    """The registrable domain of `name` (`name` itself when it is one, or a public suffix).

    Unknown top-level labels (`.test`, `.internal`) count as public suffixes, so
    `a.example.test` belongs to `example.test`, as it would under a real TLD.
    """
    name = name.lower().rstrip(".")
    org = _list().privatesuffix(name)
    return str(org) if org else name


def same_organisation(a: str, b: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b:
        return True
    return organisational_domain(a) == organisational_domain(b)
