"""plan / apply / status / import over any provider: the library the CLI calls."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailctl.config.load import Config
from mailctl.model import DomainState, Kind, Mailbox
from mailctl.providers.base import ProviderError
from mailctl.provision.changes import Action, Change, Outcome, Status
from mailctl.provision.plan import Plan, diff_domain
from mailctl.secret import Secret, generate_password, scrub

log = logging.getLogger(__name__)


def read_actual(config: Config, domains: Sequence[str] | None = None) -> dict[str, DomainState]:
    """One read per provider, covering all of its declared domains."""
    wanted = set(domains) if domains else set(config.desired.domains)
    actual: dict[str, DomainState] = {}
    for pname in sorted(config.providers):
        names = [d for d in config.domains_of(pname) if d in wanted]
        if names:
            actual.update(config.provider(pname).read(names))
    return actual


def mirror_desired(state: DomainState) -> DomainState:
    """What a domain's mirror (the local store of a domain another provider receives for,
    docs/domain.md) must hold: its mailboxes, with their declared passwords and quotas.
    Aliases and forwards act where mail arrives, so they live at the provider only."""
    out = DomainState(state.name)
    for addr, mb in state.mailboxes.items():
        out.mailboxes[addr] = Mailbox(addr, quota=mb.quota, password=mb.password,
                                      password_hash=mb.password_hash)
    return out


def read_mirrors(config: Config, domains: Sequence[str]) -> dict[str, DomainState]:
    """The mirrors' actual state of `domains` that have one; one read per provider."""
    out: dict[str, DomainState] = {}
    by_mirror: dict[str, list[str]] = {}
    for name in domains:
        mirror = config.desired.mirror_of.get(name)
        if mirror:
            by_mirror.setdefault(mirror, []).append(name)
    for mirror, names in sorted(by_mirror.items()):
        out.update(config.provider(mirror).read(names))
    return out


def make_plan(
    config: Config,
    *,
    reconcile: bool = False,
    prune: bool = False,
    domains: Sequence[str] | None = None,
) -> Plan:
    actual = read_actual(config, domains)
    diffs = []
    for name in sorted(actual):
        pname = config.desired.provider_of[name]
        explicit = config.providers[pname].cls.capabilities.domains
        cur = actual[name]
        changes = diff_domain(config.desired.domains[name], cur, pname, explicit,
                              config.desired.unmanaged.get(name, ()))
        diffs.append((name, pname, cur.count(), changes))
    mirrors = read_mirrors(config, sorted(actual))
    for name in sorted(mirrors):
        mname = config.desired.mirror_of[name]
        cur = mirrors[name]
        changes = diff_domain(mirror_desired(config.desired.domains[name]), cur, mname,
                              config.providers[mname].cls.capabilities.domains,
                              config.desired.unmanaged.get(name, ()))
        diffs.append((name, mname, cur.count(), changes))
    return Plan.build(diffs, reconcile=reconcile, prune=prune)


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    generated: dict[str, Secret] = field(default_factory=dict)  # only for created mailboxes

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def ok(self) -> bool:
        return all(o.status is Status.DONE for o in self.outcomes)


def _prepare_passwords(config: Config, changes: list[Change]) -> dict[str, Secret]:
    """A generated password per new mailbox without one; a mailbox created at a domain's
    provider and at its mirror in one plan gets the same one (users read mail at the
    mirror with the password they send with)."""
    generated: dict[str, Secret] = {}
    for i, ch in enumerate(changes):
        mb = ch.desired
        if (
            ch.action is Action.CREATE
            and isinstance(mb, Mailbox)
            and mb.password is None
            and mb.password_hash is None
            and not mb.invite  # the provider mails an invitation instead
        ):
            mb = copy.copy(mb)  # the config's desired model stays as declared
            mb.password = generated.get(mb.address) or generate_password(
                config.desired.password_length.get(mb.address, 32))
            generated[mb.address] = mb.password
            changes[i] = copy.copy(ch)
            changes[i].desired = mb
    return generated


def write_secrets(path: Path, secrets: dict[str, Secret]) -> None:
    """Append `address<TAB>password` lines to a 0600 file, durably, before the apply.

    Written first so a crash after the provider commits can never lose a password;
    the entries of creations that then fail are removed again afterwards."""
    if not secrets:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        data = "".join(f"{a}\t{s.reveal()}\n" for a, s in secrets.items())
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_secrets(path: Path, secrets: dict[str, Secret], failed: set[str]) -> None:
    from mailctl.util.atomic import atomic_write

    lines = path.read_text().splitlines(keepends=True)
    gone = {f"{a}\t{s.reveal()}\n" for a, s in secrets.items() if a in failed}
    atomic_write(path, "".join(ln for ln in lines if ln not in gone), 0o600)


def execute(
    config: Config,
    plan: Plan,
    *,
    secrets_out: Path | None = None,
    on_outcomes: Callable[[list[Outcome]], None] | None = None,
) -> ApplyResult:
    result = ApplyResult()
    changes = list(plan.changes)
    generated = _prepare_passwords(config, changes)
    if secrets_out is not None:
        write_secrets(secrets_out, generated)
    by_provider: dict[str, list[Change]] = {}
    for ch in changes:
        by_provider.setdefault(ch.provider, []).append(ch)
    for pname in sorted(by_provider):
        batch = by_provider[pname]
        log.info("provider %s: applying %d changes", pname, len(batch))
        try:
            outcomes = config.provider(pname).apply(batch)
        except ProviderError as exc:  # e.g. the dms folder does not exist
            outcomes = [Outcome(ch, Status.NOT_ATTEMPTED, scrub(str(exc)), kind=exc.kind.value)
                        for ch in batch]
        except Exception as exc:  # a provider bug must not hide what was already done
            msg = scrub(f"{type(exc).__name__}: {exc}")
            outcomes = [Outcome(ch, Status.NOT_ATTEMPTED, msg) for ch in batch]
        result.outcomes.extend(outcomes)
        if on_outcomes:
            on_outcomes(outcomes)
    done = {o.change.key for o in result.outcomes
            if o.status is Status.DONE and o.change.kind is Kind.MAILBOX
            and o.change.action is Action.CREATE and not o.adopted}
    result.generated = {a: s for a, s in generated.items() if a in done}
    failed = set(generated) - set(result.generated)
    if secrets_out is not None and failed and generated:
        _drop_secrets(secrets_out, generated, failed)
    return result


# -- status ---------------------------------------------------------------------------


def status(config: Config, domains: Sequence[str] | None = None) -> list[dict[str, Any]]:
    actual = read_actual(config, domains)
    rows = []
    for name in sorted(actual):
        desired = config.desired.domains[name]
        cur = actual[name]
        changes = diff_domain(desired, cur, config.desired.provider_of[name],
                              unmanaged=config.desired.unmanaged.get(name, ()))
        row: dict[str, Any] = {
            "domain": name,
            "provider": config.desired.provider_of[name],
            "exists": cur.exists,
        }
        for kind, plural in ((Kind.MAILBOX, "mailboxes"), (Kind.ALIAS, "aliases"),
                             (Kind.FORWARD, "forwards"), (Kind.IDENTITY, "identities"),
                             (Kind.REWRITE, "rewrites")):
            mine = [c for c in changes if c.kind is kind]
            row[plural] = {
                "declared": len(desired.objects(kind)),
                "present": len(cur.objects(kind)),
                "missing": sorted(c.key for c in mine if c.action is Action.CREATE),
                "drifted": sorted(c.key for c in mine if c.action is Action.UPDATE),
                "undeclared": sorted(c.key for c in mine if c.action is Action.DELETE),
            }
        row["pending"] = sorted(cur.pending)  # e.g. unconfirmed forwards: not drift
        row["in_sync"] = not changes
        rows.append(row)
    mirrors = read_mirrors(config, sorted(actual))
    for name in sorted(mirrors):
        mname = config.desired.mirror_of[name]
        cur = mirrors[name]
        want = mirror_desired(config.desired.domains[name])
        changes = [c for c in diff_domain(want, cur, mname,
                                          unmanaged=config.desired.unmanaged.get(name, ()))
                   if c.kind is Kind.MAILBOX]
        empty = {"declared": 0, "present": 0, "missing": [], "drifted": [], "undeclared": []}
        rows.append({
            "domain": name, "provider": f"{mname} (mirror)", "mirror": True,
            "exists": cur.exists,
            "mailboxes": {
                "declared": len(want.mailboxes), "present": len(cur.mailboxes),
                "missing": sorted(c.key for c in changes if c.action is Action.CREATE),
                "drifted": sorted(c.key for c in changes if c.action is Action.UPDATE),
                "undeclared": sorted(c.key for c in changes if c.action is Action.DELETE)},
            **{k: dict(empty) for k in ("aliases", "forwards", "identities", "rewrites")},
            "pending": [], "in_sync": not changes})
    return rows
