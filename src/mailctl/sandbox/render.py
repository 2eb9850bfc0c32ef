"""Turn docker-mailserver (dms) config files into the maps the sandbox daemons read.

The sandbox is a stand-in for a dms container, so this mirrors what dms's
start-up scripts generate (`helpers/accounts.sh`, `helpers/postfix.sh`,
Dovecot 2.3 era) rather than inventing nicer semantics: a test that passes
here should mean the same files work in dms.

One deliberate dms fact worth knowing: a catch-all `@domain` key wins over a
real account that has no `user@domain` key of its own (Postfix looks up
`user@domain`, then `@domain`, and virtual aliases are resolved before
mailbox delivery). `implicit_self_aliases=True` renders a self-entry for
every account of a catch-all domain instead, for callers who want that.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNTS_FILE = "postfix-accounts.cf"
VIRTUAL_FILE = "postfix-virtual.cf"
QUOTAS_FILE = "dovecot-quotas.cf"
RELAYMAP_FILE = "postfix-relaymap.cf"  # @domain [host]:port (setup relay add-domain)
RELAY_SASL_FILE = "postfix-sasl-password.cf"  # @domain user:password (setup relay add-auth)
# dms copies `dovecot.cf` to /etc/dovecot/local.conf at start, which Debian's
# dovecot.conf includes last (setup.d/dovecot.sh); files it names under the config
# folder (/tmp/docker-mailserver in the container) are read by Dovecot in place,
# such as mailctl's app-password passdb (providers/dms/selfservice.py).
DOVECOT_CF = "dovecot.cf"
APP_PASSWORDS_FILE = "dovecot-app-passwords.cf"
# `setup dovecot-master add NAME`: admin logins as `user@domain*NAME` (dms
# target/scripts/helpers/accounts.sh `_create_masters`, and its auth-master.inc).
MASTERS_FILE = "dovecot-masters.cf"
DMS_FILES = (ACCOUNTS_FILE, VIRTUAL_FILE, QUOTAS_FILE, RELAYMAP_FILE, RELAY_SASL_FILE,
             DOVECOT_CF, APP_PASSWORDS_FILE, MASTERS_FILE)
CONTAINER_DIR = "/tmp/docker-mailserver"

# What the daemons read, relative to the maps directory.
DOVECOT_USERS = "dovecot-users"
DOVECOT_MASTERS = "dovecot-masters"
DOVECOT_LOCAL = "dovecot-local.conf"  # dovecot.cf, its container paths mapped
APP_PASSWORDS_SEEN = "app-passwords.sha256"  # only to know when Dovecot must re-read
POSTFIX_DOMAINS = "postfix-vhost"
POSTFIX_MAILBOXES = "postfix-vmailbox"
POSTFIX_VIRTUAL = "postfix-virtual"
# The sender-dependent relay, as dms sets it up: per sender domain a transport,
# a permission to relay (restriction class), and SASL credentials (0640 postfix).
POSTFIX_RELAY_TRANSPORT = "postfix-relaytransport"
POSTFIX_RELAY_SENDERS = "postfix-relaysenders"
POSTFIX_RELAY_SASL = "postfix-relaysasl"

_QUOTA_RE = re.compile(r"^([0-9]+(B|k|M|G|T)|0)$")
_MASTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Postfix re-reads a table whose mtime is within ~1 s of "now" until it cools
# down (util/dict.c dict_load_file_xt, 300 ms steps): backdate its maps.
_POSTFIX_BACKDATE_S = 60


class RenderError(ValueError):
    """A dms file the sandbox (and dms) cannot make sense of."""


@dataclass(frozen=True, slots=True)
class Account:
    address: str
    password_hash: str
    extra: str = ""


@dataclass(slots=True)
class DmsConfig:
    """Parsed dms files; addresses are lower-cased like dms and Postfix do."""

    accounts: list[Account] = field(default_factory=list)
    # key -> targets, in file order (Postfix keeps the first of duplicate keys)
    virtual: dict[str, list[str]] = field(default_factory=dict)
    quotas: dict[str, str] = field(default_factory=dict)
    # Master users (name, hash): they log in as any account, `user@domain*name`.
    masters: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def domains(self) -> list[str]:
        """Every domain dms puts in `vhost`: of accounts and of virtual keys with an `@`."""
        found = {a.address.split("@", 1)[1] for a in self.accounts}
        found.update(k.split("@", 1)[1] for k in self.virtual if "@" in k)
        return sorted(d for d in found if d)


@dataclass(frozen=True, slots=True)
class RenderResult:
    digest: str  # of the dms inputs: equal digests mean nothing to reload
    changed: tuple[str, ...]  # map files that were rewritten
    accounts: int
    domains: tuple[str, ...]
    warnings: tuple[str, ...]


def read_dms(dms_dir: Path) -> dict[str, bytes | None]:
    """The raw files, read once, so the digest and the parse see the same bytes."""
    out: dict[str, bytes | None] = {}
    for name in DMS_FILES:
        try:
            out[name] = (dms_dir / name).read_bytes()
        except FileNotFoundError:
            out[name] = None
    return out


def dms_digest(raw: dict[str, bytes | None]) -> str:
    h = hashlib.sha256()
    for name in DMS_FILES:
        data = raw.get(name)
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(data).digest() if data is not None else b"-")
    return h.hexdigest()


def _lines(name: str, data: bytes | None) -> Iterable[tuple[int, str]]:
    if data is None:
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RenderError(f"{name}: not UTF-8 ({exc.reason})") from None
    for number, raw in enumerate(text.splitlines(), start=1):  # CRLF tolerated
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _check_address(where: str, address: str) -> str:
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise RenderError(f"{where}: {address!r} is not a user@domain address")
    if any(c in address for c in ":| \t"):
        raise RenderError(f"{where}: {address!r} contains a character dms cannot store")
    return address.lower()


def parse_dms(raw: dict[str, bytes | None]) -> DmsConfig:
    cfg = DmsConfig()
    seen: set[str] = set()
    for number, line in _lines(ACCOUNTS_FILE, raw.get(ACCOUNTS_FILE)):
        where = f"{ACCOUNTS_FILE}:{number}"
        parts = line.split("|", 2)
        if len(parts) < 2 or not parts[1].strip():
            raise RenderError(f"{where}: expected user@domain|{{SCHEME}}hash[|extra fields]")
        address = _check_address(where, parts[0].strip())
        password = parts[1].strip()
        extra = parts[2].strip() if len(parts) == 3 else ""
        if ":" in password or "\n" in extra:
            raise RenderError(f"{where}: the password hash must not contain ':'")
        if address in seen:
            cfg.warnings.append(f"{where}: duplicate account {address} ignored (dms skips it too)")
            continue
        seen.add(address)
        cfg.accounts.append(Account(address, password, extra))

    for number, line in _lines(VIRTUAL_FILE, raw.get(VIRTUAL_FILE)):
        where = f"{VIRTUAL_FILE}:{number}"
        key, _, rest = line.replace("\t", " ").partition(" ")
        targets = [t.strip() for t in rest.split(",")]
        targets = [t for t in targets if t]
        if not targets:
            raise RenderError(f"{where}: expected 'alias@domain target[,target...]'")
        if any(" " in t for t in targets):
            raise RenderError(f"{where}: targets must be separated by commas, not spaces")
        key = key.strip().lower()
        if key in cfg.virtual:
            cfg.warnings.append(f"{where}: duplicate key {key}; Postfix uses the first one")
            continue
        cfg.virtual[key] = targets

    for number, line in _lines(QUOTAS_FILE, raw.get(QUOTAS_FILE)):
        where = f"{QUOTAS_FILE}:{number}"
        address, sep, size = line.rpartition(":")
        size = size.strip()
        if not sep or not _QUOTA_RE.match(size):
            raise RenderError(f"{where}: expected user@domain:SIZE with SIZE like 0, 500M or 5G")
        address = _check_address(where, address.strip())
        if address not in seen:
            cfg.warnings.append(f"{where}: quota for {address}, which is not an account; ignored")
            continue
        cfg.quotas[address] = size

    names: set[str] = set()
    for number, line in _lines(MASTERS_FILE, raw.get(MASTERS_FILE)):
        where = f"{MASTERS_FILE}:{number}"
        name, sep, password = (part.strip() for part in line.partition("|"))
        if not sep or not password or not _MASTER_RE.match(name):
            raise RenderError(f"{where}: expected NAME|{{SCHEME}}hash, NAME without @domain "
                              "(letters, digits, '.', '_', '-')")
        if ":" in password or "|" in password:
            raise RenderError(f"{where}: the password hash must not contain ':' or '|'")
        if name in names:
            cfg.warnings.append(f"{where}: duplicate master user {name} ignored")
            continue
        names.add(name)
        cfg.masters.append((name, password))
    return cfg



def relay_maps(raw: dict[str, bytes | None]) -> dict[str, str]:
    """The Postfix maps for dms's relay files (lines dms would also accept, others refused)."""
    hops: dict[str, str] = {}
    for number, line in _lines(RELAYMAP_FILE, raw.get(RELAYMAP_FILE)):
        parts = line.split()
        if not parts[0].startswith("@") or len(parts) > 2:
            raise RenderError(f"{RELAYMAP_FILE}:{number}: expected '@domain [host]:port'")
        if len(parts) == 2:  # "@domain" alone: excluded from the default relay
            hops[parts[0].lower()] = parts[1]
    sasl: dict[str, str] = {}
    for number, line in _lines(RELAY_SASL_FILE, raw.get(RELAY_SASL_FILE)):
        parts = line.split(None, 1)
        if len(parts) != 2 or ":" not in parts[1]:
            # never echo the line: it holds a password
            raise RenderError(f"{RELAY_SASL_FILE}:{number}: expected '@domain user:password'")
        sasl[parts[0].lower()] = parts[1].strip()
    return {
        POSTFIX_RELAY_TRANSPORT: "".join(f"{k} smtp:{v}\n" for k, v in hops.items()),
        # access(5) tables key a domain without the "@" (the others take "@domain")
        POSTFIX_RELAY_SENDERS: "".join(f"{k[1:]} mailctl_relay\n" for k in hops),
        POSTFIX_RELAY_SASL: "".join(f"{k} {v}\n" for k, v in sasl.items() if k in hops),
    }


def dovecot_users(cfg: DmsConfig) -> str:
    """passwd-file lines; uid, gid and home come from the userdb's default_fields."""
    out = []
    for acct in cfg.accounts:
        extra = acct.extra
        size = cfg.quotas.get(acct.address, "0")
        if size != "0":  # same attribute dms writes for Dovecot 2.3
            extra = f"{extra} userdb_quota_rule=*:bytes={size}".strip()
        out.append(f"{acct.address}:{acct.password_hash}::::::{extra}\n")
    return "".join(out)


def dovecot_masters(cfg: DmsConfig) -> str:
    """The masterdb dms makes from dovecot-masters.cf: `NAME:HASH` lines."""
    return "".join(f"{name}:{password}\n" for name, password in cfg.masters)


def dovecot_local(data: bytes | None, dms_dir: Path) -> str:
    """dms's `dovecot.cf` as its container would load it, with the config folder's
    container path mapped to where the sandbox finds it."""
    if data is None:
        return "# no dovecot.cf in the dms config folder\n"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RenderError(f"{DOVECOT_CF}: not UTF-8 ({exc.reason})") from None
    return text.replace(CONTAINER_DIR + "/", f"{Path(dms_dir).absolute()}/")


def postfix_maps(cfg: DmsConfig, implicit_self_aliases: bool = False) -> dict[str, str]:
    accounts = [a.address for a in cfg.accounts]
    virtual = dict(cfg.virtual)
    if implicit_self_aliases:
        catch_all = {k[1:] for k in virtual if k.startswith("@")}
        for address in accounts:
            if address.split("@", 1)[1] in catch_all and address not in virtual:
                virtual[address] = [address]
    mailboxes = "".join(
        f"{a} {a.split('@', 1)[1]}/{a.split('@', 1)[0]}/\n" for a in accounts
    )
    return {
        POSTFIX_DOMAINS: "".join(f"{d} OK\n" for d in cfg.domains()),
        POSTFIX_MAILBOXES: mailboxes,
        POSTFIX_VIRTUAL: "".join(f"{k} {','.join(v)}\n" for k, v in virtual.items()),
    }


def write_atomic(
    path: Path, data: str, mode: int = 0o644, mtime: float | None = None, gid: int = -1
) -> bool:
    """Replace `path` so a daemon never reads a half-written file; False if unchanged.

    `mtime` lets callers backdate (Postfix) or force a visible change (Dovecot).
    """
    raw = data.encode("utf-8")
    try:
        if path.read_bytes() == raw:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if gid != -1:
            os.chown(tmp, -1, gid)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def _dovecot_mtime(path: Path) -> float:
    """An mtime whose whole seconds differ from the old file's.

    Dovecot's passwd-file notices a change only through st_mtime seconds or
    st_size (db-passwd-file.c passwd_file_sync), and a new password hash has
    the same length as the old one.
    """
    now = time.time()
    try:
        old = int(path.stat().st_mtime)
    except FileNotFoundError:
        return now
    return float(old + 1) if old >= int(now) else now


def render(
    dms_dir: Path,
    maps_dir: Path,
    *,
    implicit_self_aliases: bool = False,
    users_gid: int = -1,
    postfix_gid: int = -1,
) -> RenderResult:
    """Render all maps from `dms_dir` into `maps_dir`; only changed files are replaced."""
    raw = read_dms(dms_dir)
    cfg = parse_dms(raw)
    maps_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    users = dovecot_users(cfg)
    users_path = maps_dir / DOVECOT_USERS
    mode = 0o640 if users_gid != -1 else 0o600
    mtime = _dovecot_mtime(users_path)
    if write_atomic(users_path, users, mode=mode, mtime=mtime, gid=users_gid):
        changed.append(DOVECOT_USERS)
    masters_path = maps_dir / DOVECOT_MASTERS
    if write_atomic(masters_path, dovecot_masters(cfg), mode=mode,
                    mtime=_dovecot_mtime(masters_path), gid=users_gid):
        changed.append(DOVECOT_MASTERS)
    local = dovecot_local(raw.get(DOVECOT_CF), dms_dir)
    if write_atomic(maps_dir / DOVECOT_LOCAL, local, mode=0o644):
        changed.append(DOVECOT_LOCAL)
    seen = hashlib.sha256(raw.get(APP_PASSWORDS_FILE) or b"").hexdigest() + "\n"
    if write_atomic(maps_dir / APP_PASSWORDS_SEEN, seen, mode=0o600):
        changed.append(APP_PASSWORDS_SEEN)
    backdated = time.time() - _POSTFIX_BACKDATE_S
    relay = relay_maps(raw)
    for name, text in {**postfix_maps(cfg, implicit_self_aliases), **relay}.items():
        secret = name == POSTFIX_RELAY_SASL  # passwords: readable by Postfix's smtp only
        if write_atomic(maps_dir / name, text, mtime=backdated,
                        mode=(0o640 if postfix_gid != -1 else 0o600) if secret else 0o644,
                        gid=postfix_gid if secret else -1):
            changed.append(name)
    return RenderResult(
        digest=dms_digest(raw),
        changed=tuple(changed),
        accounts=len(cfg.accounts),
        domains=tuple(cfg.domains()),
        warnings=tuple(cfg.warnings),
    )
