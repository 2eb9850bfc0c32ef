"""DKIM private keys, backed up and restored where a provider keeps them as files.

Only docker-mailserver (and the sandbox, which serves its folder) exposes them:
OpenDKIM keys in `opendkim/keys/<domain>/` (`setup config dkim`) and Rspamd
keys in `rspamd/dkim/` (file names carry the domain). Hosted providers
(Migadu, mailcow, Mailu, Stalwart) sign with keys they do not hand out over
their APIs; for them the backup records none, and the DNS records of the new
provider carry its own key after a move. A restored key goes back only where
the target folder has no file of that name: an existing key is never replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailctl.config.load import Config


def _dms_dir(config: Config, provider: str) -> Path | None:
    inst = config.providers.get(provider)
    if inst is None or inst.type_name != "dms":
        return None
    d: Path = config.provider(provider).directory  # type: ignore[attr-defined]
    return d if d.is_dir() else None


def _key_files(root: Path, domain: str) -> list[Path]:
    found = []
    odk = root / "opendkim" / "keys" / domain
    if odk.is_dir():
        found += sorted(p for p in odk.iterdir() if p.is_file())
    rsp = root / "rspamd" / "dkim"
    if rsp.is_dir():
        found += sorted(p for p in rsp.iterdir() if p.is_file() and domain in p.name)
    return found


def export_keys(config: Config, provider: str, domain: str, dest: Path) -> list[str]:
    """Copy the domain's key files into `dest` (0600); their paths relative to dest's
    parent, for the manifest."""
    from mailctl.util.atomic import atomic_write
    from mailctl.util.private import private_dir

    root = _dms_dir(config, provider)
    if root is None:
        return []
    out = []
    for f in _key_files(root, domain):
        rel = f.relative_to(root)
        target = dest / rel
        private_dir(str(target.parent))
        atomic_write(target, f.read_bytes(), 0o600)
        out.append(str(target.relative_to(dest.parent)))
    return out


def import_keys(config: Config, provider: str, src: Path) -> list[str]:
    """Put backed-up key files into the target dms folder where it has none by that name."""
    root = _dms_dir(config, provider)
    if root is None or not src.is_dir():
        return []
    placed = []
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        target = root / f.relative_to(src)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        target.chmod(0o600)
        placed.append(str(target))
    return placed
