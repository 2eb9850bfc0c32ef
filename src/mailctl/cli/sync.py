"""`mailctl sync|backup|restore|verify|migrate|fetch`: thin typer wrappers.

The work lives in mailctl.sync.runner (shared with the lean argparse entry
mailctl.sync.fastcli, which skips typer for fast incremental runs and takes the
same options); nothing heavy is imported until a command runs. Ranges are
declared here for --help and checked again in the runner, so both entries
refuse the same values with exit 64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailctl.cli.common import JsonOpt

JOBS_MAX = 32  # mailctl.sync.runner.JOBS_MAX (not imported: keeps --help light)
MIGRATE_JOBS_MAX = 64  # mailctl.sync.migrate.JOBS_MAX

URL_HELP = "imap://user@host[:port], imaps://user@host[:port] or maildir:PATH"
P1File = Annotated[Path | None, typer.Option(
    "--password1-file", metavar="FILE", help="source password: first line of FILE")]
P2File = Annotated[Path | None, typer.Option(
    "--password2-file", metavar="FILE", help="target password: first line of FILE")]
P1Ref = Annotated[str | None, typer.Option(
    "--password1-ref", metavar="REF", help="source password from '${env:NAME}' or "
    "'${file:PATH}'")]
P2Ref = Annotated[str | None, typer.Option(
    "--password2-ref", metavar="REF", help="target password from '${env:NAME}' or "
    "'${file:PATH}'")]
PFile = Annotated[Path | None, typer.Option(
    "--password-file", metavar="FILE", help="the IMAP password: first line of FILE")]
PRef = Annotated[str | None, typer.Option(
    "--password-ref", metavar="REF", help="the IMAP password from '${env:NAME}' or "
    "'${file:PATH}'")]
Folders = Annotated[list[str] | None, typer.Option(
    "--folders", metavar="GLOB", help="only folders matching GLOB ('/'-separated names); "
    "repeatable")]
Exclude = Annotated[list[str] | None, typer.Option(
    "--exclude", metavar="GLOB", help="skip folders matching GLOB; repeatable")]
Maps = Annotated[list[str] | None, typer.Option(
    "--map", metavar="OLD=NEW", help="rename folder OLD (and below) to NEW at the target; "
    "repeatable")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="report what would change; change and create nothing")]
NoFsync = Annotated[bool, typer.Option(
    "--no-fsync", help="faster, but a power cut may lose the last batches")]
StateOpt = Annotated[Path | None, typer.Option(
    "--state", metavar="FILE", help="sync state file (its directory must exist) "
    "(default: DIR/.mailctl-sync.db for a Maildir target, else one file per pair under "
    "$XDG_STATE_HOME/mailctl/sync)",
    show_default=False)]
CaFile = Annotated[str | None, typer.Option(
    "--ca-file", metavar="PEM", help="CA bundle to verify imaps:// servers "
    "(default: the system's)", show_default=False)]
Jobs = Annotated[int, typer.Option(
    "--jobs", min=1, max=JOBS_MAX, help="folders copied at once, each on its own session "
    "per side")]
Src = Annotated[str, typer.Argument(metavar="SRC", help=URL_HELP, show_default=False)]
Dst = Annotated[str, typer.Argument(metavar="DST", help=URL_HELP, show_default=False)]
ImapUrl = "imap://user@host[:port] or imaps://user@host[:port]"


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync_cmd(
        src: Src, dst: Dst,
        password1_file: P1File = None, password2_file: P2File = None,
        password1_ref: P1Ref = None, password2_ref: P2Ref = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        delete: Annotated[bool, typer.Option(
            "--delete", help="mirror deletions: delete at the target what the source lost")]
        = False,
        force: Annotated[bool, typer.Option(
            "--force", help="with --delete: delete beyond --max-delete-share")] = False,
        max_delete_share: Annotated[float, typer.Option(
            "--max-delete-share", min=0.0, max=1.0,
            help="with --delete: refuse (exit 4) to delete more than this share of a "
            "folder")] = 0.2,
        dry_run: DryRun = False, no_fsync: NoFsync = False, state: StateOpt = None,
        ca_file: CaFile = None, json: JsonOpt = False, jobs: Jobs = 2,
    ) -> None:
        """Copy new messages and flag changes one way, incrementally; resumable."""
        from mailctl.sync.runner import Args, cmd_sync

        raise typer.Exit(cmd_sync(Args(
            src, dst, password1_file, password2_file, password1_ref, password2_ref,
            folders or [], exclude or [], maps or [], delete, force, max_delete_share, dry_run,
            not no_fsync, state, ca_file, json, jobs=jobs)))

    @app.command("backup")
    def backup_cmd(
        src: Annotated[str, typer.Argument(metavar="SRC", help=ImapUrl, show_default=False)],
        directory: Annotated[Path, typer.Argument(
            metavar="DIR", help="Maildir tree (created 0700 if missing; its parent must "
            "exist), with its state in DIR/.mailctl-sync.db", show_default=False)],
        password_file: PFile = None, password_ref: PRef = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        dry_run: DryRun = False, no_fsync: NoFsync = False, state: StateOpt = None,
        ca_file: CaFile = None, json: JsonOpt = False, jobs: Jobs = 2,
    ) -> None:
        """Incremental backup of an IMAP account into a plain Maildir tree."""
        from mailctl.sync.runner import Args, cmd_sync

        raise typer.Exit(cmd_sync(Args(
            src, f"maildir:{directory}", password_file, None, password_ref, None,
            folders or [], exclude or [], maps or [], dry_run=dry_run, fsync=not no_fsync,
            state=state, ca_file=ca_file, json=json, jobs=jobs)))

    @app.command("restore")
    def restore_cmd(
        directory: Annotated[Path, typer.Argument(
            metavar="DIR", help="Maildir tree written by backup", show_default=False)],
        dst: Annotated[str, typer.Argument(metavar="DST", help=ImapUrl, show_default=False)],
        password_file: PFile = None, password_ref: PRef = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        dry_run: DryRun = False, no_fsync: NoFsync = False, state: StateOpt = None,
        ca_file: CaFile = None, json: JsonOpt = False, jobs: Jobs = 2,
    ) -> None:
        """Upload a backup; messages already in the mailbox are recognised, not duplicated."""
        from mailctl.sync.runner import Args, cmd_sync

        raise typer.Exit(cmd_sync(Args(
            f"maildir:{directory}", dst, None, password_file, None, password_ref,
            folders or [], exclude or [], maps or [], dry_run=dry_run, fsync=not no_fsync,
            state=state, ca_file=ca_file, json=json, jobs=jobs)))

    @app.command("verify")
    def verify_cmd(
        src: Src, dst: Dst,
        password1_file: P1File = None, password2_file: P2File = None,
        password1_ref: P1Ref = None, password2_ref: P2Ref = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        allow_extra: Annotated[bool, typer.Option(
            "--allow-extra", help="the target may hold messages the source does not")]
        = False,
        delivered: Annotated[bool, typer.Option(
            "--delivered", help="the target got the mail by delivery (fetch): ignore the "
            "trace headers it added, do not compare flags and dates")] = False,
        ca_file: CaFile = None, json: JsonOpt = False,
    ) -> None:
        """Compare folder by folder: counts, content hashes, flags, dates. Exit 0 iff equal."""
        from mailctl.sync.runner import Args, cmd_verify

        raise typer.Exit(cmd_verify(Args(
            src, dst, password1_file, password2_file, password1_ref, password2_ref,
            folders or [], exclude or [], maps or [], ca_file=ca_file, json=json,
            allow_extra=allow_extra, delivered=delivered)))

    @app.command("migrate")
    def migrate_cmd(
        accounts: Annotated[Path, typer.Option(
            "--accounts", metavar="FILE", help="CSV (with a header) or YAML list of account "
            "pairs: src, dst, password1_file|password1_ref, password2_file|password2_ref, "
            "folders, exclude, map, state", show_default=False)],
        jobs: Annotated[int, typer.Option(
            "--jobs", "-j", min=1, max=MIGRATE_JOBS_MAX,
            help="account pairs migrated at once, each in its own process")] = 2,
        dry_run: DryRun = False, ca_file: CaFile = None, json: JsonOpt = False,
    ) -> None:
        """Many account pairs in parallel, each resumable, with a per-account report."""
        from mailctl.sync.migrate import cmd_migrate

        raise typer.Exit(cmd_migrate(accounts, jobs, dry_run=dry_run, ca_file=ca_file,
                                     as_json=json))

    @app.command("fetch")
    def fetch_cmd(
        file: Annotated[Path | None, typer.Option(
            "--file", "-f", metavar="FILE", help="fetch.yaml: deliver, accounts, mode, "
            "poll_interval, state (docs/sync.md)", show_default=False)] = None,
        domain: Annotated[list[str] | None, typer.Option(
            "--domain", "-d", metavar="DOMAIN", help="instead of --file: the accounts of "
            "this domain's mailboxes, from mailctl.yaml (its provider and mirror, "
            "docs/howto-inbound-mirror.md); repeatable", show_default=False)] = None,
        mirrors: Annotated[bool, typer.Option(
            "--mirrors", help="instead of --file: every domain of mailctl.yaml that has a "
            "mirror")] = False,
        config: Annotated[Path | None, typer.Option(
            "--config", "-c", metavar="FILE", help="with --domain/--mirrors: mailctl.yaml "
            "[default: $MAILCTL_CONFIG or ./mailctl.yaml]", show_default=False)] = None,
        folder: Annotated[list[str] | None, typer.Option(
            "--folder", metavar="NAME", help="with --domain/--mirrors: fetch this folder "
            "(repeatable) [default: INBOX]", show_default=False)] = None,
        state: Annotated[Path | None, typer.Option(
            "--state", metavar="FILE", help="with --domain/--mirrors: the delivery journal "
            "(its directory is created 0700) [default: "
            "$XDG_STATE_HOME/mailctl/fetch/domains.db]", show_default=False)] = None,
        once: Annotated[bool, typer.Option(
            "--once", help="one pass over every account, then exit (else: a daemon until "
            "SIGTERM)")] = False,
        json: JsonOpt = False,
    ) -> None:
        """Pull remote IMAP accounts, deliver by LMTP/SMTP exactly once (a daemon)."""
        from mailctl.cli.common import json_errors, usage

        json_errors(json)
        from_yaml = bool(domain) or mirrors
        if file is not None and from_yaml:
            usage("--file with --domain/--mirrors", "the accounts from one of them")
        if file is None and not from_yaml:
            usage("no accounts", "--file fetch.yaml, --domain DOMAIN or --mirrors")
        if not from_yaml:
            for opt, given in (("--config", config), ("--folder", folder), ("--state", state)):
                if given:
                    usage(f"{opt} with --file", "it only with --domain or --mirrors")
            from mailctl.sync.fetchd import cmd_fetch

            assert file is not None
            raise typer.Exit(cmd_fetch(file, once=once, as_json=json))
        raise typer.Exit(_fetch_domains(config, domain or [], folder, state, once, json))


def _fetch_domains(config_path: Path | None, domains: list[str], folders: list[str] | None,
                   state: Path | None, once: bool, as_json: bool) -> int:
    """`fetch --domain`: the accounts from mailctl.yaml (domain/inbound.py)."""
    from mailctl.cli.common import check_output_file, load, usage
    from mailctl.cli.domain import domain_name, run_library
    from mailctl.domain.inbound import default_state, fetch_config
    from mailctl.sync.fetchd import run_fetch

    if state is not None:
        check_output_file(state, "--state")
    for f in folders or []:
        if not f.strip():
            usage("--folder ''", "a folder name")
    config = load(config_path, as_json)
    names = [domain_name(config, d) for d in domains] or None
    cfg = run_library(lambda: fetch_config(config, names, folders=folders))
    return run_fetch(cfg, config.base_dir, state or default_state(), once=once,
                     as_json=as_json)
