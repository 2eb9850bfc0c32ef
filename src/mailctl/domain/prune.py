"""`apply --prune` makes deleting a mailbox reversible: its mail is backed up first.

Hosted providers' own retention (Migadu keeps deleted mail about 30 days) is not
something to rely on, so before a plan deletes a mailbox its mail goes into a
domain backup (backup.py's layout, restorable with `domain restore DIR
--mailbox X`). One backup directory per domain and provider, because a domain
with a mirror has the mailbox at two providers:

    <domains.D.backup, relative to the config>/<provider>/
    [default: $XDG_STATE_HOME/mailctl/backups/<domain>/<provider>/]

Every backup runs before the first change; if one fails (the server is
unreachable, the sign-in is refused, no `mail_access` says how to sign in),
`backup_before_prune` raises and the caller changes nothing: nothing is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.errors import MailctlError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.backup import BackupResult
    from mailctl.domain.mailsync import Progress
    from mailctl.provision.plan import Plan


class PruneBackupError(MailctlError):
    """A mailbox's mail could not be backed up: none of the plan may be applied."""


@dataclass
class PruneBackup:
    domain: str
    provider: str
    directory: Path
    mailboxes: list[str]
    result: BackupResult | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {"domain": self.domain, "provider": self.provider,
                "directory": str(self.directory), "mailboxes": self.mailboxes,
                "messages": sum(m.copied + m.adopted for m in r.mailboxes.values()) if r
                else 0}


def backup_root(config: Config, domain: str) -> Path:
    """The domain's prune backups: `domains.D.backup` (relative to the config) or the
    default under the state directory."""
    raw = config.desired.raw_domain.get(domain, domain)
    dc = config.file.domains.get(raw)
    if dc is not None and dc.backup:
        return (config.base_dir / dc.backup).absolute()
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base).absolute() / "mailctl" / "backups" / domain


def planned(plan: Plan) -> list[tuple[str, str, list[str]]]:
    """(domain, provider, mailboxes) the plan deletes, in a stable order."""
    from mailctl.model import Kind
    from mailctl.provision.changes import Action

    groups: dict[tuple[str, str], list[str]] = {}
    for ch in plan.changes:
        if ch.action is Action.DELETE and ch.kind is Kind.MAILBOX:
            groups.setdefault((ch.domain, ch.provider), []).append(ch.key)
    return [(d, p, sorted(boxes)) for (d, p), boxes in sorted(groups.items())]


def prune_backups(config: Config, plan: Plan) -> list[PruneBackup]:
    """Where each mailbox the plan deletes would be backed up (nothing is touched)."""
    return [PruneBackup(d, p, backup_root(config, d) / p, boxes)
            for d, p, boxes in planned(plan)]


def backup_before_prune(config: Config, plan: Plan, *, jobs: int = 4,
                        progress: Progress | None = None) -> list[PruneBackup]:
    """Back up every mailbox `plan` deletes; raise PruneBackupError (naming the mailbox
    and why) at the first that cannot be backed up whole."""
    from mailctl.domain.access import SignInError, access_for
    from mailctl.domain.backup import backup_domain
    from mailctl.providers.base import ProviderError
    from mailctl.secret import scrub

    out = prune_backups(config, plan)
    for pb in out:
        what = (f"cannot back up {', '.join(pb.mailboxes)} at provider {pb.provider!r} "
                f"before deleting")
        try:
            access = access_for(config, pb.provider)
            pb.result = backup_domain(config, pb.domain, pb.directory, access,
                                      mailboxes=pb.mailboxes, jobs=jobs, progress=progress,
                                      provider=pb.provider)
        except SignInError as exc:
            raise PruneBackupError(f"{what}: {scrub(str(exc))}") from None
        except (MailctlError, ProviderError, OSError, TimeoutError) as exc:
            why = "another run is using the backup directory" if isinstance(
                exc, TimeoutError) else scrub(str(exc))
            raise PruneBackupError(f"{what}: {why}") from None
        bad = {a: r.error or "failed" for a, r in pb.result.mailboxes.items() if not r.ok}
        if bad:
            first = next(iter(bad.items()))
            raise PruneBackupError(f"{what}: {first[0]}: {first[1]}")
    return out
