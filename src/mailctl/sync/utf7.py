"""IMAP's modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).

A server that has not been sent `ENABLE UTF8=ACCEPT` names folders in this form
(`Caf&AOk-` is "Café"), and refuses or mangles raw UTF-8 in a CREATE. Google
Takeout labels and folders at most providers outside English are non-ASCII, so
every name crosses this boundary. Hand-written because the standard library has
no such codec (its "utf-7" differs in the shift character, the base64 alphabet
and what is escaped) and IMAPClient's 60-line module is not worth a dependency
on the lean start-up path.
"""

from __future__ import annotations

import base64


def _b64(chunk: str) -> str:
    raw = base64.b64encode(chunk.encode("utf-16-be")).decode().rstrip("=")
    return "&" + raw.replace("/", ",") + "-"


def encode(name: str) -> str:
    """"Café & Co" -> "Caf&AOk- &- Co" (printable ASCII stays, `&` becomes `&-`)."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if " " <= ch <= "~":
            if run:
                out.append(_b64("".join(run)))
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_b64("".join(run)))
    return "".join(out)


def decode(name: str) -> str:
    """The inverse of `encode`; a malformed shift sequence is kept as it is."""
    if "&" not in name:
        return name
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        end = name.find("-", i + 1) if ch == "&" else -1
        if ch != "&" or end < 0:
            out.append(ch)
            i += 1
            continue
        body = name[i + 1:end]
        if not body:
            out.append("&")
        else:
            data = body.replace(",", "/")
            try:
                out.append(base64.b64decode(data + "=" * (-len(data) % 4))
                           .decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(name[i:end + 1])
        i = end + 1
    return "".join(out)
