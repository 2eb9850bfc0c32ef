"""`mailctl domain restore DIR [--to PROVIDER] [--mailbox ADDRESS]...`.

Two steps, each through the library that owns it: the declared state saved in
the backup (domain.yaml) is planned against the target provider and only its
*creates* are applied (what is missing comes back; nothing present is updated
or deleted), then every selected mailbox's Maildir goes back through the sync
engine, which recognises messages already there by content, so a restore into
a partly filled mailbox, or a second run after an interruption, duplicates
nothing. Each restored mailbox is then verified against its backup: every
message byte for byte, with its flags and internal date.

Re-created accounts get generated passwords (written to `secrets_out` before
the provider is asked, as `apply --secrets-out` does); mail is uploaded with
them, or as the provider's master user when `mail_access` has one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.domain.backup import DECLARED, mail_dir, read_manifest
from mailctl.domain.mailsync import MailboxResult, Progress, run_all, safe_name, sync_one
from mailctl.errors import MailctlError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.access import Overrides
    from mailctl.provision.engine import ApplyResult
    from mailctl.secret import Secret


@dataclass
class RestoreResult:
    domain: str
    provider: str
    created: list[str] = field(default_factory=list)  # "mailbox alice@..." etc.
    failed: list[str] = field(default_factory=list)  # provisioning failures
    generated: dict[str, Secret] = field(default_factory=dict)
    mailboxes: dict[str, MailboxResult] = field(default_factory=dict)
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)  # restored, not in mailctl.yaml
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.failed and all(r.ok for r in self.mailboxes.values())
                and all(v["ok"] for v in self.verified.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"version": 1, "ok": self.ok, "domain": self.domain, "provider": self.provider,
                "created": self.created, "failed": self.failed,
                "generated_passwords_for": sorted(self.generated),
                "dkim_files": self.keys, "undeclared": self.undeclared,
                "seconds": round(self.seconds, 3),
                "mailboxes": [r.as_dict() | {"verify": self.verified.get(a)}
                              for a, r in self.mailboxes.items()]}


def _declared(root: Path) -> tuple[str, dict[str, Any]]:
    """(domain, its block) from the backup's domain.yaml."""
    import yaml

    try:
        doc = yaml.safe_load((root / DECLARED).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MailctlError(f"{root / DECLARED}: unreadable ({exc})") from None
    domains = doc.get("domains") if isinstance(doc, dict) else None
    if not isinstance(domains, dict) or len(domains) != 1:
        raise MailctlError(f"{root / DECLARED}: expected exactly one domain")
    ((name, block),) = domains.items()
    return str(name), dict(block or {})


def target_config(config: Config, root: Path, provider: str,
                  mailboxes: list[str] | None) -> Config:
    """The backup's declared state as a config for `provider`, validated against what
    that provider can store (a ConfigError lists what it cannot)."""
    import yaml

    from mailctl.config.load import load_config
    from mailctl.model import normalise_address

    domain, block = _declared(root)
    block["provider"] = provider
    if mailboxes:
        want = set(mailboxes)
        block["mailboxes"] = [m for m in block.get("mailboxes") or []
                              if normalise_address(str(m["local_part"]), domain) in want]
        for key in ("aliases", "catch_all", "rewrites"):
            block.pop(key, None)
    doc = {"providers": {provider: dict(config.providers[provider].raw)},
           "domains": {domain: block}}
    return load_config(config.path, text=yaml.safe_dump(doc, sort_keys=False,
                                                        allow_unicode=True))


def check_backup(root: Path, manifest: dict[str, Any], addresses: list[str]) -> None:
    """Every folder holds at least the messages the manifest counted (a Maildir that lost
    files is a damaged backup: restoring it would pass for complete)."""
    from mailctl.sync.maildir import MaildirStore

    for address in addresses:
        entry = manifest["mailboxes"].get(address)
        if entry is None:
            raise MailctlError(f"{address} is not in the backup {root}")
        store = MaildirStore(str(root / entry["path"]))
        have = store.folders()
        for folder, info in entry.get("folders", {}).items():
            got = have[folder].messages if folder in have else 0
            if got < info["messages"]:
                raise MailctlError(f"{root / entry['path']}: folder {folder} holds {got} "
                                   f"messages, the manifest says {info['messages']}: the "
                                   "backup is damaged")


def restore_domain(config: Config, root: Path, *, to: str | None = None,
                   mailboxes: list[str] | None = None, overrides: Overrides | None = None,
                   secrets_out: Path | None = None, jobs: int = 4,
                   progress: Progress | None = None) -> RestoreResult:
    from mailctl.domain.access import access_for
    from mailctl.domain.keys import import_keys
    from mailctl.model import AddressError, Kind, normalise_address
    from mailctl.provision.changes import Action, Status
    from mailctl.provision.engine import execute, make_plan
    from mailctl.sync.engine import Options
    from mailctl.sync.maildir import MaildirStore
    from mailctl.sync.roles import role_maps, roles

    t0 = time.monotonic()
    manifest = read_manifest(root)
    domain = str(manifest["domain"])
    provider = to or str(manifest["provider"])
    if provider not in config.providers:
        raise MailctlError(f"provider {provider!r} is not declared in {config.path} "
                           f"(expected one of {', '.join(sorted(config.providers)) or 'none'})")
    selected = sorted(manifest["mailboxes"])
    if mailboxes:
        try:
            want = {normalise_address(m, domain) for m in mailboxes}
        except AddressError as exc:
            raise MailctlError(f"--mailbox: {exc}") from None
        unknown = sorted(want - set(selected))
        if unknown:
            raise MailctlError(f"not in the backup: {', '.join(unknown)} (it holds "
                               f"{', '.join(selected) or 'no mailbox'})")
        selected = sorted(want)
    check_backup(root, manifest, selected)
    access = access_for(config, provider, overrides)  # checked before anything changes
    cfg2 = target_config(config, root, provider, selected if mailboxes else None)
    plan = make_plan(cfg2, domains=[domain])
    creates = {ch.key for ch in plan.changes
               if ch.kind is Kind.MAILBOX and ch.action is Action.CREATE}
    lacking = access.missing([a for a in selected if a not in creates])
    if lacking:
        raise MailctlError(f"no way to sign in to {', '.join(lacking)} at provider "
                           f"{provider!r} ({access.describe()}): give its password "
                           "(--passwords FILE) or configure a master user")
    failures = access.check([a for a in selected if a not in creates], jobs * 2)
    if failures:
        from mailctl.domain.access import SignInError

        raise SignInError(provider, failures)
    result = RestoreResult(domain, provider)
    declared = config.desired.domains.get(domain)
    result.undeclared = sorted(a for a in selected
                               if declared is None or a not in declared.mailboxes)
    if plan.changes:
        applied: ApplyResult = execute(cfg2, plan, secrets_out=secrets_out)
        for o in applied.outcomes:
            what = f"{o.change.kind.value} {o.change.key}"
            if o.status is Status.DONE:
                result.created.append(what)
            else:
                result.failed.append(f"{what}: {o.error}")
        result.generated = dict(applied.generated)
        access.known.update(applied.generated)
    if not mailboxes:
        result.keys = import_keys(config, provider, root / "dkim")
    restore_states = root / ".restore" / provider

    def one(address: str) -> MailboxResult:
        md = mail_dir(root, address)
        state = restore_states / (safe_name(address) + ".db")
        return sync_one(
            address, lambda: MaildirStore(str(md)), lambda: access.store(address),
            str(state), Options(jobs=2), (f"maildir:{address}", f"{provider}:{address}"),
            progress, maps=lambda s, d: role_maps(roles(s), roles(d)))

    failed_creates = {f.split(" ", 2)[1].rstrip(":") for f in result.failed}
    todo = [a for a in selected if a not in failed_creates]
    result.mailboxes = run_all(todo, one, jobs)
    for address in todo:
        if result.mailboxes[address].ok:
            result.verified[address] = verify_mailbox(
                lambda a=address: MaildirStore(str(mail_dir(root, a))),
                lambda a=address: access.store(a, readonly=True))
    result.seconds = time.monotonic() - t0
    return result


def verify_mailbox(open_src: Any, open_dst: Any) -> dict[str, Any]:
    """The source's every message at the target with its flags and date (the target may
    hold more); a summary of sync.verify's report."""
    from mailctl.sync.engine import Options
    from mailctl.sync.model import SyncError
    from mailctl.sync.roles import role_maps, roles
    from mailctl.sync.verify import verify

    src, dst = open_src(), open_dst()
    try:
        opts = Options(maps=role_maps(roles(src), roles(dst)))
        rep = verify(src, dst, opts, allow_extra=True)
    except SyncError as exc:
        return {"ok": False, "error": str(exc)}
    finally:
        src.close()
        dst.close()
    return {"ok": rep.ok,
            "messages": sum(f.src_count for f in rep.folders),
            "missing": sum(f.missing for f in rep.folders),
            "flag_mismatch": sum(f.flag_mismatch for f in rep.folders),
            "date_mismatch": sum(f.date_mismatch for f in rep.folders),
            "extra": sum(f.extra for f in rep.folders),
            "errors": [f"{f.src}: {f.error}" for f in rep.folders if f.error]}
