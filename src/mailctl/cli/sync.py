"""`mailctl sync|backup|restore|verify|migrate|fetch`: thin typer wrappers.

The work lives in mailctl.sync.runner (shared with the lean argparse entry
mailctl.sync.fastcli, which skips typer for fast incremental runs); nothing
heavy is imported until a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailctl.cli.common import JsonOpt

P1File = Annotated[Path | None, typer.Option("--password1-file", help="source password file")]
P2File = Annotated[Path | None, typer.Option("--password2-file", help="target password file")]
P1Ref = Annotated[str | None, typer.Option("--password1-ref", help="e.g. '${env:SRC_PW}'")]
P2Ref = Annotated[str | None, typer.Option("--password2-ref", help="e.g. '${env:DST_PW}'")]
PFile = Annotated[Path | None, typer.Option("--password-file", help="first line = password")]
PRef = Annotated[str | None, typer.Option("--password-ref", help="'${env:X}' or '${file:P}'")]
Folders = Annotated[list[str] | None, typer.Option("--folders", help="only these (glob)")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="skip these (glob)")]
Maps = Annotated[list[str] | None, typer.Option("--map", help="rename OLD=NEW (and below)")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="report what would change, change nothing")]
NoFsync = Annotated[bool, typer.Option("--no-fsync", help="faster, not crash-safe")]
StateOpt = Annotated[Path | None, typer.Option("--state", help="sync state file")]
CaFile = Annotated[str | None, typer.Option("--ca-file", help="CA bundle for imaps")]
Jobs = Annotated[int, typer.Option("--jobs", help="folders copied at once (a session each)")]


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync_cmd(
        src: Annotated[str, typer.Argument(help="imap://, imaps://user@host:port or maildir:PATH")],
        dst: Annotated[str, typer.Argument(help="imap://, imaps://user@host:port or maildir:PATH")],
        password1_file: P1File = None, password2_file: P2File = None,
        password1_ref: P1Ref = None, password2_ref: P2Ref = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        delete: Annotated[bool, typer.Option("--delete", help="mirror deletions")] = False,
        force: Annotated[bool, typer.Option("--force", help="delete beyond the safety share")]
        = False,
        max_delete_share: Annotated[float, typer.Option(help="safety share for --delete")] = 0.2,
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
        src: Annotated[str, typer.Argument(help="imap:// or imaps://user@host:port")],
        directory: Annotated[Path, typer.Argument(help="Maildir tree (+ .mailctl-sync.db)")],
        password_file: PFile = None, password_ref: PRef = None,
        folders: Folders = None, exclude: Exclude = None,
        dry_run: DryRun = False, no_fsync: NoFsync = False, ca_file: CaFile = None,
        json: JsonOpt = False, jobs: Jobs = 2,
    ) -> None:
        """Incremental backup of an IMAP account into a plain Maildir tree."""
        from mailctl.sync.runner import Args, cmd_sync

        raise typer.Exit(cmd_sync(Args(
            src, f"maildir:{directory}", password_file, None, password_ref, None,
            folders or [], exclude or [], dry_run=dry_run, fsync=not no_fsync,
            ca_file=ca_file, json=json, jobs=jobs)))

    @app.command("restore")
    def restore_cmd(
        directory: Annotated[Path, typer.Argument(help="Maildir tree written by backup")],
        dst: Annotated[str, typer.Argument(help="imap:// or imaps://user@host:port")],
        password_file: PFile = None, password_ref: PRef = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        dry_run: DryRun = False, state: StateOpt = None, ca_file: CaFile = None,
        json: JsonOpt = False, jobs: Jobs = 2,
    ) -> None:
        """Upload a backup; messages already in the mailbox are recognised, not duplicated."""
        from mailctl.sync.runner import Args, cmd_sync

        raise typer.Exit(cmd_sync(Args(
            f"maildir:{directory}", dst, None, password_file, None, password_ref,
            folders or [], exclude or [], maps or [], dry_run=dry_run, state=state,
            ca_file=ca_file, json=json, jobs=jobs)))

    @app.command("verify")
    def verify_cmd(
        src: Annotated[str, typer.Argument(help="imap://, imaps://user@host:port or maildir:PATH")],
        dst: Annotated[str, typer.Argument(help="imap://, imaps://user@host:port or maildir:PATH")],
        password1_file: P1File = None, password2_file: P2File = None,
        password1_ref: P1Ref = None, password2_ref: P2Ref = None,
        folders: Folders = None, exclude: Exclude = None, maps: Maps = None,
        allow_extra: Annotated[bool, typer.Option(help="target may hold more")] = False,
        ca_file: CaFile = None, json: JsonOpt = False,
    ) -> None:
        """Compare folder by folder: counts, content hashes, flags, dates. Exit 0 iff equal."""
        from mailctl.sync.runner import Args, cmd_verify

        raise typer.Exit(cmd_verify(Args(
            src, dst, password1_file, password2_file, password1_ref, password2_ref,
            folders or [], exclude or [], maps or [], ca_file=ca_file, json=json,
            allow_extra=allow_extra)))

    @app.command("migrate")
    def migrate_cmd(
        accounts: Annotated[Path, typer.Option("--accounts", help="CSV or YAML of pairs")],
        jobs: Annotated[int, typer.Option("--jobs", "-j", help="accounts in parallel")] = 2,
        dry_run: DryRun = False, ca_file: CaFile = None, json: JsonOpt = False,
    ) -> None:
        """Many account pairs in parallel, each resumable, with a per-account report."""
        from mailctl.sync.migrate import cmd_migrate

        raise typer.Exit(cmd_migrate(accounts, jobs, dry_run=dry_run, ca_file=ca_file,
                                     as_json=json))

    @app.command("fetch")
    def fetch_cmd(
        file: Annotated[Path, typer.Option("--file", "-f", help="fetch.yaml")],
        once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
        json: JsonOpt = False,
    ) -> None:
        """Daemon: pull remote IMAP accounts, deliver by LMTP/SMTP exactly once."""
        from mailctl.sync.fetchd import cmd_fetch

        raise typer.Exit(cmd_fetch(file, once=once, as_json=json))
