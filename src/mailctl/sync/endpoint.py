"""`imap[s]://user@host[:port]` and `maildir:PATH`, and where their passwords come from.

Passwords never come from the command line (they would sit in `ps` and shell
history): a file (`--password-file`, first line) or a secret reference
(`${env:X}`, `${file:P}`) read through mailctl.config.refs.
"""

from __future__ import annotations

import os

from mailctl.secret import Secret
from mailctl.sync.model import SyncError


class Endpoint:
    __slots__ = ("host", "kind", "path", "port", "tls", "user")

    def __init__(self, kind: str, host: str = "", port: int = 0, user: str = "",
                 tls: bool = False, path: str | None = None) -> None:
        self.kind = kind  # "imap" | "maildir"
        self.host, self.port, self.user, self.tls, self.path = host, port, user, tls, path

    @property
    def label(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}"


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


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("maildir:"):
        path = text[len("maildir:"):]
        if not path:
            raise SyncError("maildir: needs a path, e.g. maildir:/srv/backup/alice")
        return Endpoint("maildir", path=norm_path(os.path.expanduser(path)))
    for scheme, tls, port in (("imaps://", True, 993), ("imap://", False, 143)):
        if text.startswith(scheme):
            rest = text[len(scheme):].rstrip("/")
            user, at, hostport = rest.rpartition("@")
            if not at or not user or not hostport:
                raise SyncError(f"{text!r}: expected {scheme}user@host[:port]")
            host, _, port_s = hostport.partition(":")
            if ":" in user and "@" not in user.split(":", 1)[1]:
                raise SyncError("put the password in a file (--password-file), not in the URL")
            try:
                port = int(port_s) if port_s else port
            except ValueError:
                raise SyncError(f"{text!r}: bad port {port_s!r}") from None
            return Endpoint("imap", host=host, port=port, user=_unquote(user), tls=tls)
    raise SyncError(f"{text!r}: expected imap://user@host[:port], imaps://... or maildir:PATH")


def norm_path(p: str) -> str:
    """What `str(pathlib.Path(p))` gives (no pathlib on the lean path): repeated and
    trailing slashes and `.` parts dropped, `..` kept. The label of a Maildir endpoint,
    which a state file is bound to, must not change with how the path was typed."""
    lead = "//" if p.startswith("//") and not p.startswith("///") else (
        "/" if p.startswith("/") else "")
    return (lead + "/".join(x for x in p.split("/") if x and x != ".")) or "."


def read_password(file: str | os.PathLike[str] | None, ref: str | None, what: str) -> Secret:
    """The password from a file (first line) or a `${env:..}`/`${file:..}` reference."""
    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                text = fh.read().splitlines()
        except OSError as exc:
            raise SyncError(f"cannot read the password file for {what}: {exc.strerror}") from None
        if not text or not text[0]:
            raise SyncError(f"the password file for {what} is empty")
        return Secret(text[0], source=os.fspath(file))
    if ref:
        from pathlib import Path

        from mailctl.config.refs import RefError, Resolver

        try:
            return Resolver(Path.cwd()).resolve(ref)
        except RefError as exc:
            raise SyncError(f"{what}: {exc}") from None
    raise SyncError(f"{what} needs a password: --password-file FILE or --password-ref "
                    "'${env:NAME}'")
