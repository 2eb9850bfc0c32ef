"""docker-mailserver: password changes, and app passwords through a Dovecot override.

dms has no app passwords of its own. Its config folder takes a `dovecot.cf`,
which dms copies to /etc/dovecot/local.conf when the container starts (Debian's
dovecot.conf includes that file last; dms v15, `setup.d/dovecot.sh`). mailctl
keeps one marked block there: a second passdb, tried after dms's own (which
checks the mailbox password in /etc/dovecot/userdb), reading
`dovecot-app-passwords.cf` from the config folder in place:

    passdb {
      driver = passwd-file
      mechanisms = plain login
      args = scheme=SHA512-CRYPT username_format=%Lu/%{sha256:password}
             /tmp/docker-mailserver/dovecot-app-passwords.cf   (one line)
    }

A passwd-file holds one entry per user name, so each app password's entry is
keyed `address/SHA-256(app password)`: Dovecot computes the key from the
password the client sent and then checks that entry's SHA512-CRYPT hash. The
unsalted SHA-256 in the key is safe only because mailctl generates every app
password (32 characters, 192 bits): it cannot be guessed from its hash. The
5th (gecos) field, which Dovecot ignores, holds the id, creation time and name.

Written for dms v15 (Dovecot 2.3, verified against Dovecot 2.3.19 by the
sandbox, which loads dovecot.cf the same way). dms after v15 moves to Dovecot
2.4, whose config syntax differs: this block does not load there.

The file is mode 0644, not 0600 like postfix-accounts.cf: Dovecot's auth
process (user `dovecot` in the container, whose gid mailctl cannot know) reads
it in place. It holds only verifiers of generated 192-bit secrets, which no
offline attack can turn back into a password, unlike a hash of a password a
person chose.

After mailctl first writes the block, restart the container once (dms reads
dovecot.cf only at start); app passwords added or revoked later take effect
without a restart, within a second (Dovecot re-reads a changed passwd-file).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path
from urllib.parse import quote, unquote

from mailctl.providers.base import AppPassword
from mailctl.providers.dms import files as F
from mailctl.providers.dms.hashing import DEFAULT_ROUNDS, FAST_ROUNDS, sha512_crypt
from mailctl.secret import Secret, generate_password
from mailctl.util.atomic import atomic_write

log = logging.getLogger(__name__)

DOVECOT_CF = "dovecot.cf"
APP_PASSWORDS = "dovecot-app-passwords.cf"
CONTAINER_DIR = "/tmp/docker-mailserver"
BEGIN = "# BEGIN mailctl app passwords (managed by mailctl: edits here are replaced)"
END = "# END mailctl app passwords"
_ARGS = (f"scheme=SHA512-CRYPT username_format=%Lu/%{{sha256:password}} "
         f"{CONTAINER_DIR}/{APP_PASSWORDS}")
BLOCK = f"""{BEGIN}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = {_ARGS}
}}
{END}
"""


class NoSuchMailbox(LookupError):
    pass


def ensure_override(directory: Path) -> bool:
    """Put the passdb block into dovecot.cf (kept: everything else in it); True if written."""
    path = directory / DOVECOT_CF
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if BEGIN in text and END in text:
        start = text.index(BEGIN)
        end = text.index(END, start) + len(END)
        new = text[:start] + BLOCK.rstrip("\n") + text[end:]
    else:
        new = text + ("\n" if text and not text.endswith("\n") else "") + BLOCK
    if new == text:
        return False
    atomic_write(path, new, None if path.exists() else 0o644)
    log.warning("wrote the app-password passdb into %s: restart docker-mailserver once so "
                "that it loads dovecot.cf (the sandbox reloads by itself)", path)
    return True


def set_password(directory: Path, address: str, password: Secret) -> None:
    """A new hash for an existing account line (its extra fields kept)."""
    accounts = F.parse_accounts(directory / F.ACCOUNTS)
    line = accounts.get(address)
    if line is None:
        raise NoSuchMailbox(address)
    rounds = FAST_ROUNDS if password.source == "generated" else DEFAULT_ROUNDS
    accounts.put(F.account_line(address, sha512_crypt(password.reveal(), rounds), line.extra))
    atomic_write(directory / F.ACCOUNTS, accounts.render(), None)


def _entries(directory: Path) -> tuple[list[str], list[tuple[str, str, AppPassword]]]:
    """(every raw line, [(address, raw line, entry)]) of the app-password file."""
    try:
        raw = (directory / APP_PASSWORDS).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], []
    out = []
    for line in raw:
        fields = line.split(":")
        if line.startswith("#") or len(fields) < 5 or "/" not in fields[0]:
            continue
        address = fields[0].rpartition("/")[0]
        ident, _, rest = fields[4].partition(";")
        created, _, name = rest.partition(";")
        try:
            when = float(created) if created else None
        except ValueError:
            when = None
        out.append((address, line, AppPassword(ident, unquote(name), when, None,
                                               ("imap", "smtp", "pop3", "sieve"))))
    return raw, out


def list_app_passwords(directory: Path, address: str) -> list[AppPassword]:
    return [e for a, _, e in _entries(directory)[1] if a == address]


def add_app_password(directory: Path, address: str, name: str) -> tuple[AppPassword, Secret]:
    if F.parse_accounts(directory / F.ACCOUNTS).get(address) is None:
        raise NoSuchMailbox(address)
    ensure_override(directory)
    raw, entries = _entries(directory)
    taken = {e.id for a, _, e in entries if a == address}
    ident = secrets.token_hex(4)
    while ident in taken:
        ident = secrets.token_hex(4)
    secret = generate_password(32)
    digest = hashlib.sha256(secret.reveal().encode()).hexdigest()
    entry = AppPassword(ident, name, float(int(time.time())), None,
                        ("imap", "smtp", "pop3", "sieve"))
    gecos = f"{ident};{int(entry.created or 0)};{quote(name, safe='')}"
    raw.append(f"{address}/{digest}:{sha512_crypt(secret.reveal(), FAST_ROUNDS)}:::"
               f"{gecos}:::")
    _write(directory, raw)
    return entry, secret


def revoke_app_password(directory: Path, address: str, app_id: str) -> bool:
    raw, entries = _entries(directory)
    gone = {line for a, line, e in entries if a == address and e.id == app_id}
    if not gone:
        return False
    _write(directory, [line for line in raw if line not in gone])
    return True


def _write(directory: Path, lines: list[str]) -> None:
    path = directory / APP_PASSWORDS
    atomic_write(path, "".join(f"{line}\n" for line in lines), 0o644)
