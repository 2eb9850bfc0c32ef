"""docker-mailserver's outbound relay files: `postfix-relaymap.cf` and `postfix-sasl-password.cf`.

The format is the one `setup relay add-domain` / `setup relay add-auth` write:

    postfix-relaymap.cf        @example.org  [smtp-relay.brevo.com]:587
    postfix-sasl-password.cf   @example.org  user:password

mailctl owns the `@domain` lines of the domains it is told about and nothing
else: other lines (comments, other domains, `[host]:port` keys) are written
back byte for byte. The SASL file holds a password, so it is written 0600,
atomically, and never echoed: plans show the secret *reference* only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mailctl.secret import Secret
from mailctl.util.atomic import atomic_write

RELAYMAP = "postfix-relaymap.cf"
SASL = "postfix-sasl-password.cf"


@dataclass(frozen=True)
class RelayEntry:
    host: str
    port: int
    username: str | None = None
    password: Secret | None = None

    @property
    def nexthop(self) -> str:
        return f"[{self.host}]:{self.port}"


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _key(line: str) -> str | None:
    parts = line.split()
    if not parts or line.lstrip().startswith("#") or not parts[0].startswith("@"):
        return None
    return parts[0][1:].lower()


def current(directory: Path) -> dict[str, tuple[str | None, str | None, str | None]]:
    """domain -> (nexthop, username, password) as the files hold them now."""
    out: dict[str, tuple[str | None, str | None, str | None]] = {}
    for line in _read(directory / RELAYMAP):
        domain = _key(line)
        if domain is not None:
            parts = line.split()
            out[domain] = (parts[1] if len(parts) > 1 else None, None, None)
    for line in _read(directory / SASL):
        domain = _key(line)
        if domain is not None:
            value = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            user, _, password = value.strip().partition(":")
            hop = out.get(domain, (None, None, None))[0]
            out[domain] = (hop, user or None, password or None)
    return out


def check_entry(entry: RelayEntry) -> str | None:
    """Why `entry` cannot be written (whitespace would split a line), or None."""
    for what, value in (("host", entry.host), ("username", entry.username or "")):
        if any(c.isspace() for c in value):
            return f"the relay {what} contains whitespace"
    if entry.password is not None and any(c.isspace() for c in entry.password.reveal()):
        return "the relay password contains whitespace, which the SASL file cannot hold"
    return None


def differs(directory: Path, domain: str, entry: RelayEntry | None) -> tuple[bool, bool]:
    """(relay host differs, credentials differ) between the files and `entry`."""
    hop, user, password = current(directory).get(domain, (None, None, None))
    if entry is None:
        return hop is not None, user is not None
    want_pw = entry.password.reveal() if entry.password is not None else None
    return hop != entry.nexthop, (user, password) != (entry.username, want_pw)


def _relaymap_line(domain: str, entry: RelayEntry) -> str | None:
    return f"@{domain} {entry.nexthop}"


def _sasl_line(domain: str, entry: RelayEntry) -> str | None:
    if entry.username and entry.password is not None:
        return f"@{domain} {entry.username}:{entry.password.reveal()}"
    return None


def write(directory: Path, wanted: dict[str, RelayEntry | None]) -> bool:
    """Set the relay of each domain in `wanted` (None: no relay); True if a file changed."""
    changed = False
    for name, render, mode in ((RELAYMAP, _relaymap_line, 0o644), (SASL, _sasl_line, 0o600)):
        path = directory / name
        lines = _read(path)
        out: list[str] = []
        for line in lines:
            domain = _key(line)
            if domain in wanted:
                continue  # rewritten below
            out.append(line)
        for domain in sorted(wanted):
            entry = wanted[domain]
            text = render(domain, entry) if entry is not None else None
            if text:
                out.append(text)
        data = "".join(f"{line}\n" for line in out)
        if data == "".join(f"{line}\n" for line in lines) and (path.exists() or not data):
            if path.exists() and mode == 0o600 and (os.stat(path).st_mode & 0o777) != 0o600:
                os.chmod(path, 0o600)
            continue
        atomic_write(path, data, mode=mode)
        changed = True
    return changed
