"""validate / plan / apply / status / import."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mailctl.cli.common import (
    CHANGES,
    OK,
    PROVIDER,
    REFUSED,
    ConfigOpt,
    JsonOpt,
    check_output_file,
    err,
    fail,
    json_error,
    json_errors,
    json_errors_on,
    load,
    provider_failure,
    require_domains,
    usage,
)

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.prune import PruneBackup
    from mailctl.providers.base import Provider
    from mailctl.provision.changes import Change
    from mailctl.provision.plan import Plan

DomainOpt = Annotated[
    list[str] | None,
    typer.Option("--domain", "-d", help="only this domain (repeatable)", show_default=False),
]
ReconcileOpt = Annotated[
    bool, typer.Option("--reconcile", help="also update fields that drifted")
]
PruneOpt = Annotated[
    bool, typer.Option("--prune", help="also delete what the YAML does not declare")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="go past the safety limits on updates and deletes")
]


def _domains(config: Config, names: list[str] | None) -> list[str] | None:
    if not names:
        return None
    from mailctl.model import AddressError, normalise_domain

    out = []
    for n in names:
        try:
            d = normalise_domain(n)
        except AddressError as exc:
            usage(f"--domain {n!r}: {exc}", "a domain name")
        if d not in config.desired.domains:
            usage(f"--domain {d} is not declared in {config.path}",
                  "one of " + ", ".join(sorted(config.desired.domains)))
        out.append(d)
    return out


def _plan(config: Config, reconcile: bool, prune: bool, domains: list[str] | None) -> Plan:
    from mailctl.providers.base import ProviderError
    from mailctl.provision.engine import make_plan

    try:
        return make_plan(config, reconcile=reconcile, prune=prune,
                         domains=_domains(config, domains))
    except ProviderError as exc:
        provider_failure(exc)


def _print_plan(plan: Plan, fmt: str) -> None:
    from mailctl.provision import render

    out = sys.stdout
    if fmt == "json":
        out.write(json.dumps(plan.as_dict(), indent=2) + "\n")
    elif fmt == "markdown":
        out.write(render.markdown(plan))
    else:
        render.text(plan, out)


def _working(message: str, quiet: bool) -> AbstractContextManager[object]:
    """A spinner on stderr while a long batch runs, only for a person at a terminal."""
    if quiet or not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(plan)
    app.command()(apply)
    app.command()(status)
    app.command("import")(import_)


def validate(file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check the config: schema, references, provider features. Changes nothing."""
    json_errors(as_json)
    config = load(file, as_json)
    n = sum(s.count() for s in config.desired.domains.values())
    warnings = [] if config.desired.domains else [
        "no domains are declared: plan, apply and status have nothing to compare"]
    if as_json:
        print(json.dumps({"ok": True, "domains": len(config.desired.domains), "objects": n,
                          "warnings": warnings}))
    else:
        d = len(config.desired.domains)
        print(f"{config.path}: ok ({d} domain{'' if d == 1 else 's'}, "
              f"{n} object{'' if n == 1 else 's'})")
    for w in warnings:
        err(f"warning: {config.path}: {w}")


def plan(
    file: ConfigOpt = None,
    reconcile: ReconcileOpt = False,
    prune: PruneOpt = False,
    domain: DomainOpt = None,
    as_json: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="a Markdown table")] = False,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode",
                           help="exit 2 when the provider differs from the config: changes "
                           "to apply, or drift these options leave out")
    ] = False,
) -> None:
    """Show what apply would change. Create-only unless --reconcile / --prune."""
    if as_json and markdown:
        usage("--json and --markdown together", "one output format")
    json_errors(as_json)
    config = load(file)
    require_domains(config)
    p = _plan(config, reconcile, prune, domain)
    _print_plan(p, "json" if as_json else "markdown" if markdown else "text")
    s = config.file.safety
    for v in p.safety_violations(s.max_update_share, s.max_delete_share, s.min_existing):
        err(f"warning: apply would refuse without --force: {v}")
    # Drift that is only "not included" is still drift: a CI gate must see it.
    if detailed_exitcode and not p.in_sync:
        raise typer.Exit(CHANGES)


def apply(
    file: ConfigOpt = None,
    reconcile: ReconcileOpt = False,
    prune: PruneOpt = False,
    domain: DomainOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask before deleting")] = False,
    force: ForceOpt = False,
    secrets_out: Annotated[
        Path | None,
        typer.Option("--secrets-out", help="write generated passwords to this file (mode 0600) "
                     "instead of stderr", show_default=False),
    ] = None,
    no_backup: Annotated[bool, typer.Option(
        "--no-backup", help="with --prune: delete mailboxes without backing up their mail "
        "first [default: back up into domains.D.backup or "
        "$XDG_STATE_HOME/mailctl/backups/D]")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make the provider match the YAML. Create-only by default.

    A mailbox --prune deletes is backed up first (docs/cli.md), unless --no-backup."""
    from mailctl.provision import render
    from mailctl.provision.changes import Action, Status
    from mailctl.provision.engine import execute

    json_errors(as_json)
    if secrets_out is not None:  # before anything is read, asked or changed
        check_output_file(secrets_out, "--secrets-out")
    config = load(file)
    require_domains(config)
    p = _plan(config, reconcile, prune, domain)
    if p.empty:
        if as_json:
            print(json.dumps({"ok": True, "changed": False, "in_sync": p.in_sync,
                              "outcomes": [], "held": p.counts(p.held)}))
        else:
            render.no_changes(p, sys.stdout)
        raise typer.Exit(OK)
    s = config.file.safety
    violations = p.safety_violations(s.max_update_share, s.max_delete_share, s.min_existing)
    if violations and not force:
        refused = [ch for ch in p.changes if ch.action is not Action.CREATE]
        _refuse("; ".join(violations), refused, violations,
                "Nothing was changed. Re-run with --force if this is intended.")
    deletes = [ch for ch in p.changes if ch.action is Action.DELETE]
    if not as_json:
        render.text(p, sys.stdout)
    if deletes and not yes:
        if not sys.stdin.isatty():
            _refuse(f"{len(deletes)} objects would be deleted; pass --yes to confirm "
                    "(no terminal to ask on)", deletes, [], "Nothing was changed.")
        answer = typer.prompt(f"Delete {len(deletes)} objects? Type 'yes' to continue",
                              default="")
        if answer.strip().lower() != "yes":
            _refuse("the deletes were not confirmed", deletes, [], "Nothing was changed.")

    backups = [] if no_backup else _backup_mailboxes(config, p, as_json)
    with _working(f"applying {len(p.changes)} changes", quiet=as_json):
        result = execute(config, p, secrets_out=secrets_out)
    if as_json:
        print(json.dumps({**render.apply_dict(result),
                          "backups": [b.as_dict() for b in backups]}, indent=2))
    else:
        render.apply_text(result, sys.stdout)
    if result.generated and secrets_out is None:
        err("Generated passwords (shown once, not stored anywhere else):")
        for addr, secret in sorted(result.generated.items()):
            err(f"  {addr}  {secret.reveal()}")
    elif result.generated and secrets_out is not None:
        err(f"{len(result.generated)} generated passwords written to {secrets_out}")
    if result.count(Status.DONE) != len(result.outcomes):
        raise typer.Exit(PROVIDER)


def _backup_mailboxes(config: Config, plan: Plan, as_json: bool) -> list[PruneBackup]:
    """The mail of every mailbox the plan deletes, into a domain backup, before any
    change; if one cannot be backed up nothing is changed (exit 3)."""
    from mailctl.domain.prune import PruneBackupError, backup_before_prune, prune_backups

    todo = prune_backups(config, plan)
    if not todo:
        return []
    for pb in todo:
        err(f"backing up {len(pb.mailboxes)} mailbox(es) at {pb.provider} before deleting "
            f"them, into {pb.directory}")
    from mailctl.cli.domain import progress_bar

    try:
        with progress_bar("backup before delete", not as_json) as prog:
            done = backup_before_prune(config, plan, progress=prog)
    except PruneBackupError as exc:
        fail(f"{exc}; nothing was changed", PROVIDER, kind="backup",
             hint="fix the sign-in (mail_access in the config), or pass --no-backup to "
             "delete without a backup")
    for pb in done:
        err(f"backed up {', '.join(pb.mailboxes)} into {pb.directory} (restore with: "
            f"mailctl domain restore {pb.directory} --mailbox ADDRESS)")
    return done


def _refuse(reason: str, changes: list[Change], violations: list[str], tail: str) -> NoReturn:
    """Exit 4, naming every change that was refused (on stderr, and in the JSON error)."""
    from mailctl.provision.plan import change_dict

    err(f"refused: {reason}")
    err(f"The refused changes ({len(changes)}):")
    for ch in changes:
        err(f"  {ch.action.symbol} {ch.kind.value:<8} {ch.key}")
    err(tail)
    if json_errors_on():
        json_error("refused", reason, REFUSED, violations=violations,
                   refused_changes=[change_dict(ch) for ch in changes])
    raise typer.Exit(REFUSED)


def status(
    file: ConfigOpt = None, domain: DomainOpt = None, as_json: JsonOpt = False
) -> None:
    """Declared vs present, per domain."""
    from mailctl.providers.base import ProviderError
    from mailctl.provision import render
    from mailctl.provision.engine import status as get_status

    json_errors(as_json)
    config = load(file)
    require_domains(config)
    try:
        rows = get_status(config, _domains(config, domain))
    except ProviderError as exc:
        provider_failure(exc)
    if as_json:
        print(json.dumps({"ok": True, "domains": rows,
                          "in_sync": all(r["in_sync"] for r in rows)}, indent=2))
    else:
        render.status_table(rows)
    if not all(r["in_sync"] for r in rows):
        raise typer.Exit(CHANGES)


def import_(
    provider: Annotated[str, typer.Option("--provider", "-p", help="provider name in the "
                                          "config, or a provider type with --setting")],
    domain: DomainOpt = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--setting", "-s", metavar="KEY=VALUE",
                     help="provider setting, when --provider is a type not in the config "
                     "(e.g. -p dms -s path=./config); repeatable"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write the YAML to this file instead of stdout; "
                     "folder paths in it are made relative to the file's folder",
                     show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --output if it exists")]
    = False,
    file: ConfigOpt = None,
) -> None:
    """Print the provider's existing state as mailctl YAML (adoption in one command).

    A docker-mailserver `path` is written so that it works from where the YAML
    lives: relative to --output's folder, or absolute on stdout."""
    import yaml

    from mailctl.model import AddressError, normalise_domain
    from mailctl.providers.base import ProviderError
    from mailctl.provision.export import export_config, relocate_paths

    if output is not None:
        check_output_file(output, "--output")
        if output.exists() and not force:
            usage(f"--output {output} exists", "a new file, or --force to overwrite it")
    prov, block = _import_provider(provider, setting or [], file)
    try:
        names = [normalise_domain(d) for d in domain] if domain else prov.list_domains()
        states = [prov.without_defaults(s) for s in prov.read(names).values()]
    except AddressError as exc:
        usage(f"--domain: {exc}", "a domain name")
    except ProviderError as exc:
        provider_failure(exc)
    missing = [s.name for s in states if not s.exists]
    if missing:
        fail(f"provider {provider!r} holds no domain {', '.join(missing)}")
    block = relocate_paths(block, prov.base_dir,
                           output.resolve().parent if output is not None else None)
    data, warnings = export_config(provider, block, states)
    text = (f"# mailctl config imported from provider {provider!r}\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    if output is None:
        sys.stdout.write(text)
    else:
        from mailctl.util.atomic import atomic_write

        # References only, never a secret: readable like any file kept in git.
        atomic_write(output, text, 0o644)
        err(f"wrote {output}")
    for w in warnings:
        err(f"warning: {w} (the YAML will not validate until this is fixed)")


def _import_provider(
    name: str, settings: list[str], file: Path | None
) -> tuple[Provider, dict[str, object]]:
    from mailctl.config.load import default_path
    from mailctl.providers import provider_class, provider_types

    path = file or default_path()
    if not settings and path.exists():
        config = load(path)
        if name in config.providers:
            return config.provider(name), dict(config.providers[name].raw)
        if name not in provider_types():
            usage(f"--provider {name!r}: no such provider in {path}",
                  "one of " + ", ".join(sorted(config.providers) or ["(none)"])
                  + ", or a provider type with --setting")
    if name not in provider_types():
        usage(f"--provider {name!r} is not a provider type",
              "one of " + ", ".join(provider_types()))
    raw: dict[str, object] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage(f"--setting {item!r}", "KEY=VALUE")
        raw[key.strip()] = value
    cls = provider_class(name)
    from pydantic import ValidationError

    try:
        parsed = cls.settings_model.model_validate(raw)
    except ValidationError as exc:
        usage("--setting: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                        for e in exc.errors()),
              f"the settings of a {name} provider (docs/providers.md)")
    return cls(name, parsed, Path.cwd()), {"type": name, **raw}
