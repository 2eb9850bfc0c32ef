"""`mailctl domain backup DOMAIN DIR`: every mailbox and the domain's declared state.

A backup is a sync into a file target (STYLE 2.4): the declared state is what
`mailctl import` writes, the mail goes through the sync engine into one Maildir
tree per mailbox, incrementally (run it again and only what is new is copied).
Layout, all private (files 0600, directories 0700):

    DIR/manifest.json     what is in the backup: counts and content hashes
    DIR/domain.yaml       the provider's state of the domain, as `import` writes it
    DIR/dkim/...          DKIM private keys, where the provider keeps them as files
    DIR/mail/<address>/   a Maildir++ tree per mailbox, with its sync state

The manifest is written last, atomically: a backup that was interrupted keeps
the previous manifest (and the mail copied so far, which the next run does not
copy again). Per folder it holds the message count, the bytes and a SHA-256
over the sorted content hashes of its messages, so a restore can tell a
complete backup from a damaged one, and a restored mailbox can be compared
with what was backed up.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.domain.mailsync import MailboxResult, Progress, run_all, safe_name, sync_one
from mailctl.errors import MailctlError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.access import Access
    from mailctl.model import DomainState

MANIFEST = "manifest.json"
DECLARED = "domain.yaml"
FORMAT = 1
STATE_NAME = ".mailctl-sync.db"


@dataclass
class BackupResult:
    directory: Path
    domain: str
    provider: str
    mailboxes: dict[str, MailboxResult] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # DKIM files saved
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.mailboxes.values())

    def as_dict(self) -> dict[str, Any]:
        return {"version": 1, "ok": self.ok, "domain": self.domain, "provider": self.provider,
                "directory": str(self.directory), "dkim_files": self.keys,
                "seconds": round(self.seconds, 3),
                "mailboxes": [r.as_dict() for r in self.mailboxes.values()]}


def mail_dir(root: Path, address: str) -> Path:
    return root / "mail" / safe_name(address)


def check_dir(path: Path, what: str = "the backup directory") -> None:
    """Before any side effect: DIR is a writable directory, or can be made in its parent."""
    from mailctl.sync.files import check_output_dir
    from mailctl.sync.model import UsageError

    try:
        check_output_dir(str(path), what)
    except UsageError as exc:
        raise MailctlError(str(exc)) from None


def declared_yaml(config: Config, provider: str, state: DomainState) -> str:
    """The domain as `mailctl import` writes it, with folder paths made absolute (a backup
    outlives the directory it was taken from)."""
    import yaml

    from mailctl.provision.export import export_config, relocate_paths

    prov = config.provider(provider)
    block = relocate_paths(dict(config.providers[provider].raw), config.base_dir, None)
    data, _ = export_config(provider, block, [prov.without_defaults(state)])
    return (f"# mailctl domain backup of {state.name} from provider {provider!r}\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def folder_manifest(state_path: Path, maildir: Path) -> dict[str, dict[str, Any]]:
    """Per folder: messages, bytes and the hash over its messages' content hashes, from
    the sync state (the engine hashed every message it copied) and the Maildir's sizes."""
    from mailctl.sync.maildir import MaildirStore
    from mailctl.sync.state import State

    out: dict[str, dict[str, Any]] = {}
    state = State(str(state_path), dry_run=True)  # read-only copy: nothing written
    store = MaildirStore(str(maildir))
    try:
        for name, fs in sorted(state.folders().items()):
            pairs = state.pairs(name)
            scan = store.scan(fs.dst)
            hashes = sorted(p.hash for p in pairs.values() if p.dkey in scan.keys)
            out[fs.dst] = {"messages": len(hashes),
                           "bytes": sum(scan.info[p.dkey][1] for p in pairs.values()
                                        if p.dkey in scan.info),
                           "sha256": hashlib.sha256("\n".join(hashes).encode()).hexdigest()}
    finally:
        state.close()
    return out


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest, checked: format, the files it lists present with their hashes."""
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise MailctlError(f"{root} is not a domain backup: no {MANIFEST} (expected a "
                           "directory written by `mailctl domain backup`)") from None
    except (OSError, ValueError) as exc:
        raise MailctlError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MailctlError(f"{path}: not a backup manifest of format {FORMAT}")
    for name, digest in (data.get("files") or {}).items():
        f = root / name
        if not f.is_file() or _file_hash(f) != digest:
            raise MailctlError(f"{f}: missing or changed since the backup (its hash does not "
                               "match the manifest)")
    return data


def chosen_mailboxes(state: Any, provider: str, mailboxes: list[str] | None) -> list[str]:
    """The domain's mailboxes at the provider, sorted, or those of `mailboxes` (--mailbox),
    each of which must be there: a typo must not back up, copy or move nothing."""
    addresses = sorted(state.mailboxes)
    if not mailboxes:
        return addresses
    unknown = sorted(set(mailboxes) - set(addresses))
    if unknown:
        raise MailctlError(f"no such mailbox at provider {provider!r}: {', '.join(unknown)}")
    return [a for a in addresses if a in set(mailboxes)]


def backup_domain(config: Config, domain: str, dest: Path, access: Access, *,
                  mailboxes: list[str] | None = None, jobs: int = 4,
                  progress: Progress | None = None, provider: str | None = None
                  ) -> BackupResult:
    """Back up `domain` from its provider (or `provider`: a domain's mirror) into `dest`
    (see the module docstring)."""
    from mailctl.domain.keys import export_keys
    from mailctl.providers.base import ProviderError
    from mailctl.sync.engine import Options
    from mailctl.sync.maildir import MaildirStore
    from mailctl.util.atomic import atomic_write, locked
    from mailctl.util.private import private_dir

    t0 = time.monotonic()
    provider = provider or config.desired.provider_of[domain]
    try:
        state = config.provider(provider).read([domain])[domain]
    except ProviderError as exc:
        raise exc from None
    if not state.exists:
        raise MailctlError(f"provider {provider!r} holds no domain {domain}")
    addresses = chosen_mailboxes(state, provider, mailboxes)
    lacking = access.missing(addresses)
    if lacking:
        raise MailctlError(f"no way to sign in to {len(lacking)} mailboxes at {provider!r} "
                           f"({access.describe()}): {', '.join(lacking[:10])}"
                           + (" ..." if len(lacking) > 10 else ""))
    failures = access.check(addresses, jobs * 2)
    if failures:
        from mailctl.domain.access import SignInError

        raise SignInError(provider, failures)
    private_dir(str(dest))
    result = BackupResult(dest, domain, provider)
    with locked(dest / ".lock", timeout=0):
        atomic_write(dest / DECLARED, declared_yaml(config, provider, state), 0o600)
        result.keys = export_keys(config, provider, domain, dest / "dkim")

        def one(address: str) -> MailboxResult:
            md = mail_dir(dest, address)
            return sync_one(
                address, lambda: access.store(address, readonly=True),
                lambda: MaildirStore(str(md)), str(md / STATE_NAME),
                Options(), (f"mailbox:{address}", "maildir:."), progress)

        result.mailboxes = run_all(addresses, one, jobs)
        write_manifest(dest, domain, provider, list(state.mailboxes), result)
    result.seconds = time.monotonic() - t0
    return result


def write_manifest(dest: Path, domain: str, provider: str, all_mailboxes: list[str],
                   result: BackupResult) -> None:
    """Merged with the previous manifest: a backup of some mailboxes keeps the others."""
    from mailctl.util.atomic import atomic_write

    old: dict[str, Any] = {}
    if (dest / MANIFEST).exists():
        try:
            old = json.loads((dest / MANIFEST).read_text())
        except (OSError, ValueError):
            old = {}
    boxes: dict[str, Any] = dict(old.get("mailboxes") or {})
    for address, r in result.mailboxes.items():
        md = mail_dir(dest, address)
        folders = folder_manifest(md / STATE_NAME, md) if (md / STATE_NAME).exists() else {}
        boxes[address] = {
            "path": str(md.relative_to(dest)), "complete": r.ok, "error": r.error,
            "taken_at": time.time(),
            "messages": sum(f["messages"] for f in folders.values()),
            "bytes": sum(f["bytes"] for f in folders.values()), "folders": folders}
    files = {DECLARED: _file_hash(dest / DECLARED)}
    for name in result.keys:
        files[name] = _file_hash(dest / name)
    manifest = {"format": FORMAT, "domain": domain, "provider": provider,
                "taken_at": time.time(), "mailboxes": dict(sorted(boxes.items())),
                "files": files, "gone_at_provider": sorted(set(boxes) - set(all_mailboxes))}
    atomic_write(dest / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", 0o600)
    os.chmod(dest, 0o700)
