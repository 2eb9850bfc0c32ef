"""`imap[s]://user@host[:port]`, `maildir:PATH`, `mbox:PATH`, and where passwords come from.

Passwords never come from the command line (they would sit in `ps` and shell
history): a file (`--password-file`, first line) or a secret reference
(`${env:X}`, `${file:P}`) read through mailctl.config.refs.
"""

from __future__ import annotations

import os

from mailctl.secret import Secret
from mailctl.sync.model import UsageError


class Endpoint:
    __slots__ = ("host", "kind", "mode", "path", "port", "tls", "user")

    def __init__(self, kind: str, host: str = "", port: int = 0, user: str = "",
                 tls: bool = False, path: str | None = None, mode: str = "") -> None:
        self.kind = kind  # "imap" | "maildir" | "mbox" (a source only)
        self.host, self.port, self.user, self.tls, self.path = host, port, user, tls, path
        self.mode = mode  # mbox: how labels map to folders ("folders" or "keywords")

    @property
    def label(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        if self.kind == "mbox":
            return f"mbox:{self.path}" + ("" if self.mode == "folders" else
                                         f"?labels={self.mode}")
        scheme = "imaps" if self.tls else "imap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.user}@{host}:{self.port}"


def _unquote(s: str) -> str:
    """%40 -> @ (urllib.parse costs more to import than this whole function)."""
    if "%" not in s:
        return s
    out, i = bytearray(), 0
    raw = s.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"%" and i + 2 < len(raw) + 1:
            try:
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")


_FORMS = "imap://user@host[:port], imaps://user@host[:port], maildir:PATH or mbox:PATH"


def shown(text: str) -> str:
    """The URL as it may be printed: a password someone put in it is masked."""
    scheme, sep, rest = text.partition("://")
    user, at, host = rest.rpartition("@")
    if sep and at and ":" in user:
        return f"{scheme}://{user.split(':', 1)[0]}:********@{host}"
    return text


def parse_endpoint(text: str) -> Endpoint:
    """Every malformed form is a UsageError naming what was expected (exit 64), so a
    typo never reaches the network and reads as "cannot connect"."""
    if "\x00" in text:
        raise UsageError(f"{shown(text)!r} holds a NUL byte (expected {_FORMS})")
    if text.startswith("maildir:"):
        path = text[len("maildir:"):]
        if not path:
            raise UsageError("'maildir:' has no path (expected maildir:PATH, e.g. "
                             "maildir:/srv/backup/alice)")
        return Endpoint("maildir", path=norm_path(os.path.expanduser(path)))
    if text.startswith("mbox:"):
        path, q, query = text[len("mbox:"):].partition("?labels=")
        if not path:
            raise UsageError("'mbox:' has no path (expected mbox:FILE.mbox or mbox:DIR, e.g. "
                             "a Google Takeout export)")
        mode = query if q else "folders"
        if mode not in ("folders", "keywords"):
            raise UsageError(f"{text!r}: labels={mode!r} (expected mbox:PATH?labels=folders "
                             "or ?labels=keywords)")
        return Endpoint("mbox", path=norm_path(os.path.expanduser(path)), mode=mode)
    for scheme, tls, default in (("imaps://", True, 993), ("imap://", False, 143)):
        if text.startswith(scheme):
            form = f"{scheme}user@host[:port]"
            rest = text[len(scheme):]
            rest = rest[:-1] if rest.endswith("/") else rest
            user, at, hostport = rest.rpartition("@")
            if ":" in user and "@" not in user.split(":", 1)[1]:
                raise UsageError(f"{shown(text)!r}: a password in the URL (expected "
                                 "--password-file or --password-ref)")
            if not at or not user or not hostport:
                raise UsageError(f"{shown(text)!r}: no user or host (expected {form})")
            if hostport.startswith("["):  # [IPv6]:port
                host, close, port_s = hostport[1:].partition("]")
                if not close or (port_s and not port_s.startswith(":")):
                    raise UsageError(f"{text!r}: bad IPv6 address (expected {scheme}"
                                     "user@[address][:port])")
                port_s = port_s[1:]
            else:
                host, colon, port_s = hostport.partition(":")
                if colon and not port_s:
                    raise UsageError(f"{text!r}: empty port (expected {form})")
            if not host or not all(c.isalnum() or c in ".-_:" for c in host):
                raise UsageError(f"{text!r}: bad host name {host!r} (expected {form})")
            if not port_s:
                port = default
            elif not port_s.isascii() or not port_s.isdigit():
                raise UsageError(f"{text!r}: port {port_s!r} is not a number (expected "
                                 "1-65535)")
            else:
                port = int(port_s)
                if not 1 <= port <= 65535:
                    raise UsageError(f"{text!r}: port {port} is out of range (expected "
                                     "1-65535)")
            return Endpoint("imap", host=host, port=port, user=_unquote(user), tls=tls)
    raise UsageError(f"{shown(text)!r}: unknown form (expected {_FORMS})")


def norm_path(p: str) -> str:
    """What `str(pathlib.Path(p))` gives (no pathlib on the lean path): repeated and
    trailing slashes and `.` parts dropped, `..` kept. The label of a Maildir endpoint,
    which a state file is bound to, must not change with how the path was typed."""
    lead = "//" if p.startswith("//") and not p.startswith("///") else (
        "/" if p.startswith("/") else "")
    return (lead + "/".join(x for x in p.split("/") if x and x != ".")) or "."


def read_password(file: str | os.PathLike[str] | None, ref: str | None, what: str) -> Secret:
    """The password from a file (first line) or a `${env:..}`/`${file:..}` reference.
    Everything wrong with either is a UsageError (exit 64) that never shows the value."""
    if file is not None:
        from mailctl.sync.files import read_text

        lines = read_text(file, f"the password file for {what}", limit=64 << 10).splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"the password file {os.fspath(file)} for {what} is empty "
                             "(expected the password on its first line)")
        return Secret(lines[0], source=os.fspath(file))
    if ref:
        from pathlib import Path

        from mailctl.config.refs import RefError, Resolver

        try:
            return Resolver(Path.cwd()).resolve(ref)
        except (RefError, ValueError, OSError) as exc:
            raise UsageError(f"{what}: {exc} (expected a resolvable secret reference)") \
                from None
    raise UsageError(f"{what} needs a password (expected --password-file FILE or "
                     "--password-ref '${env:NAME}')")
