"""`mailctl domain backup|restore`: a whole domain's mailboxes and declared state."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from mailctl.cli.common import (
    FAILED,
    OK,
    PROVIDER,
    ConfigOpt,
    JsonOpt,
    check_output_file,
    err,
    fail,
    json_errors,
    load,
    usage,
)

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.domain.access import Overrides
    from mailctl.domain.mailsync import Progress

app = typer.Typer(no_args_is_help=True, help="Back up and restore a whole mail domain.")
T = TypeVar("T")

JOBS_MAX = 32
AuthOpt = Annotated[str | None, typer.Option(
    "--auth", metavar="KIND", help="how to sign in to each mailbox: master, passwords or "
    "oauth2 [default: the provider's mail_access]", show_default=False)]
ImapOpt = Annotated[str | None, typer.Option(
    "--imap", metavar="URL", help="the provider's IMAP server, imap[s]://host[:port] "
    "[default: mail_access]", show_default=False)]
MasterUserOpt = Annotated[str | None, typer.Option(
    "--master-user", metavar="NAME", help="master user name (with --auth master)",
    show_default=False)]
MasterFileOpt = Annotated[Path | None, typer.Option(
    "--master-password-file", metavar="FILE", help="master password: first line of FILE",
    show_default=False)]
MasterRefOpt = Annotated[str | None, typer.Option(
    "--master-password-ref", metavar="REF", help="master password from '${env:NAME}' or "
    "'${file:PATH}'", show_default=False)]
PasswordsOpt = Annotated[Path | None, typer.Option(
    "--passwords", metavar="FILE", help="users' passwords: the `apply --secrets-out` file "
    "or a CSV address,password", show_default=False)]
CaOpt = Annotated[str | None, typer.Option(
    "--ca-file", metavar="PEM", help="CA bundle for imaps:// [default: the system's]",
    show_default=False)]
MailboxOpt = Annotated[list[str] | None, typer.Option(
    "--mailbox", "-m", metavar="ADDRESS", help="only this mailbox (repeatable; a local part "
    "is completed with the domain)", show_default=False)]
JobsOpt = Annotated[int, typer.Option(
    "--jobs", "-j", min=1, max=JOBS_MAX, help="mailboxes copied at once")]


def overrides(auth: str | None, imap: str | None, master_user: str | None,
              master_file: Path | None, master_ref: str | None, passwords: Path | None,
              ca_file: str | None) -> Overrides:
    """The sign-in options, checked before anything else happens (exit 64)."""
    from mailctl.domain.access import Overrides
    from mailctl.sync.endpoint import read_password
    from mailctl.sync.model import UsageError

    if auth is not None and auth not in ("master", "passwords", "oauth2"):
        usage(f"--auth {auth!r}", "master, passwords or oauth2")
    pw = None
    if master_file is not None or master_ref is not None:
        if master_file is not None and master_ref is not None:
            usage("--master-password-file and --master-password-ref together", "one of them")
        try:
            pw = read_password(master_file, master_ref, "the master user")
        except UsageError as exc:
            usage(*_split(str(exc)))
    for path, opt in ((passwords, "--passwords"), (Path(ca_file) if ca_file else None,
                                                    "--ca-file")):
        if path is not None and not path.is_file():
            usage(f"{opt} {path} is not a readable file", "an existing file")
    return Overrides(auth=auth, imap=imap, master_user=master_user, master_password=pw,
                     passwords=passwords, ca_file=ca_file)


def _split(message: str) -> tuple[str, str]:
    """`what (expected X)` -> (what, X) for usage()."""
    what, sep, rest = message.rpartition(" (expected ")
    return (what, rest.rstrip(")")) if sep else (message, "a valid value")


def run_library(fn: Callable[[], T]) -> T:
    """Call into the library; every failure becomes one `error:` line and its exit code."""
    from mailctl.config.errors import ConfigError
    from mailctl.domain.access import MailAccessError, SignInError
    from mailctl.errors import MailctlError
    from mailctl.providers.base import ProviderError
    from mailctl.secret import scrub

    try:
        return fn()
    except MailAccessError as exc:
        if exc.usage:
            usage(*_split(str(exc)))
        fail(scrub(str(exc)), FAILED, kind="config")
    except SignInError as exc:
        for address, why in list(exc.failures.items())[:20]:
            err(f"  {address}: {why}")
        fail(scrub(str(exc)), PROVIDER, kind="auth")
    except ConfigError as exc:
        for issue in exc.issues:
            err(issue.format())
        fail("the target provider cannot take this domain as declared (the problems are "
             "listed above); nothing was changed", FAILED, kind="config")
    except ProviderError as exc:
        fail(scrub(str(exc)), PROVIDER, kind=exc.kind.value)
    except TimeoutError:
        fail("another mailctl run is working on this directory", FAILED)
    except MailctlError as exc:
        fail(scrub(str(exc)), FAILED)


def domain_name(config: Config, domain: str) -> str:
    from mailctl.model import AddressError, normalise_domain

    try:
        name = normalise_domain(domain)
    except AddressError as exc:
        usage(f"DOMAIN {domain!r}: {exc}", "a domain name")
    if name not in config.desired.domains:
        usage(f"{name} is not declared in {config.path}",
              "one of " + (", ".join(sorted(config.desired.domains)) or "(none)"))
    return name


def addresses(domain: str, given: list[str] | None) -> list[str] | None:
    from mailctl.model import AddressError, normalise_address

    if not given:
        return None
    out = []
    for m in given:
        try:
            out.append(normalise_address(m, domain))
        except AddressError as exc:
            usage(f"--mailbox {m!r}: {exc}", "an address or a local part")
    return out


@contextmanager
def progress_bar(what: str, enabled: bool) -> Iterator[Progress]:
    """An overall bar on stderr (messages copied, ETA) for a person at a terminal."""
    from mailctl.domain.mailsync import Progress

    prog = Progress()
    if not enabled or not sys.stderr.isatty():
        yield prog
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn(what), BarColumn(), TextColumn("{task.completed} messages"),
             TextColumn("{task.fields[active]}"), TimeRemainingColumn(),
             console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None, active="")

        def show(p: Progress) -> None:
            act = ", ".join(sorted(p.active)[:2]) + (" ..." if len(p.active) > 2 else "")
            bar.update(task, completed=p.done, total=p.total or None, active=act)

        prog.listeners.append(show)
        yield prog


def _table(rows: list[list[str]], header: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(*header)
    for r in rows:
        t.add_row(*r)
    Console().print(t)


def size(n: int) -> str:
    from mailctl.util.sizes import approx_size

    return approx_size(n)


@app.command("backup")
def backup(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="a domain declared in the "
                                          "config", show_default=False)],
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="the backup directory (created 0700 if missing; its parent must "
        "exist); run again to add what is new", show_default=False)],
    file: ConfigOpt = None, mailbox: MailboxOpt = None, auth: AuthOpt = None,
    imap: ImapOpt = None, master_user: MasterUserOpt = None,
    master_password_file: MasterFileOpt = None, master_password_ref: MasterRefOpt = None,
    passwords: PasswordsOpt = None, ca_file: CaOpt = None, jobs: JobsOpt = 4,
    as_json: JsonOpt = False,
) -> None:
    """Every mailbox of DOMAIN into Maildir trees, beside its declared state and a manifest."""
    from mailctl.domain.access import access_for
    from mailctl.domain.backup import backup_domain, check_dir
    from mailctl.errors import MailctlError

    json_errors(as_json)
    ov = overrides(auth, imap, master_user, master_password_file, master_password_ref,
                   passwords, ca_file)
    try:
        check_dir(directory)  # the output path, before any side effect
    except MailctlError as exc:
        usage(*_split(str(exc)))
    config = load(file)
    name = domain_name(config, domain)
    boxes = addresses(name, mailbox)
    provider = config.desired.provider_of[name]
    access = run_library(lambda: access_for(config, provider, ov))
    with progress_bar(f"backup {name}", not as_json) as prog:
        result = run_library(lambda: backup_domain(config, name, directory, access,
                                                   mailboxes=boxes, jobs=jobs,
                                                   progress=prog))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _table([[a, str(r.copied), str(r.adopted), size(r.bytes), "ok" if r.ok else
                 (r.error or "failed")] for a, r in result.mailboxes.items()],
               ["mailbox", "copied", "present", "bytes", "state"])
        total = sum(r.copied for r in result.mailboxes.values())
        print(f"backed up {len(result.mailboxes)} mailboxes of {name} ({total} new messages"
              f"{', ' + str(len(result.keys)) + ' DKIM key files' if result.keys else ''}) "
              f"into {directory} in {result.seconds:.1f} s")
    raise typer.Exit(OK if result.ok else FAILED)


@app.command("restore")
def restore(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="a directory written by `mailctl domain backup`",
        show_default=False)],
    file: ConfigOpt = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="PROVIDER", help="restore into this provider of the config "
        "[default: the one the backup was taken from]", show_default=False)] = None,
    mailbox: MailboxOpt = None, auth: AuthOpt = None, imap: ImapOpt = None,
    master_user: MasterUserOpt = None, master_password_file: MasterFileOpt = None,
    master_password_ref: MasterRefOpt = None, passwords: PasswordsOpt = None,
    ca_file: CaOpt = None,
    secrets_out: Annotated[Path | None, typer.Option(
        "--secrets-out", metavar="FILE", help="write the passwords of re-created accounts "
        "to this file (0600) instead of stderr", show_default=False)] = None,
    jobs: JobsOpt = 4, as_json: JsonOpt = False,
) -> None:
    """Re-create what is missing from the backup's declared state, then upload the mail."""
    from mailctl.domain.restore import restore_domain

    json_errors(as_json)
    if not directory.is_dir():
        usage(f"DIR {directory} is not a directory", "a directory written by domain backup")
    if secrets_out is not None:
        check_output_file(secrets_out, "--secrets-out")
    ov = overrides(auth, imap, master_user, master_password_file, master_password_ref,
                   passwords, ca_file)
    config = load(file)
    if to is not None and to not in config.providers:
        usage(f"--to {to!r} is not a provider in {config.path}",
              "one of " + (", ".join(sorted(config.providers)) or "(none)"))
    with progress_bar("restore", not as_json) as prog:
        result = run_library(lambda: restore_domain(
            config, directory, to=to, mailboxes=mailbox, overrides=ov,
            secrets_out=secrets_out, jobs=jobs, progress=prog))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        for what in result.created:
            print(f"created {what}")
        for what in result.failed:
            err(f"not created: {what}")
        rows = []
        for a, r in result.mailboxes.items():
            v = result.verified.get(a) or {}
            state = "verified" if v.get("ok") else (r.error or v.get("error") or
                                                    f"{v.get('missing', '?')} missing, "
                                                    f"{v.get('flag_mismatch', '?')} flags, "
                                                    f"{v.get('date_mismatch', '?')} dates")
            rows.append([a, str(r.copied), str(r.adopted), size(r.bytes), state])
        _table(rows, ["mailbox", "uploaded", "already there", "bytes", "state"])
        print(f"restored {len(result.mailboxes)} mailboxes of {result.domain} into provider "
              f"{result.provider} in {result.seconds:.1f} s")
    for a in result.undeclared:
        err(f"warning: {a} is not declared in {config.path}: `apply --prune` would delete it "
            "again (add it; `mailctl import` shows the entry)")
    if result.generated and secrets_out is None:
        err("Passwords of the re-created accounts (shown once, not stored anywhere else):")
        for addr, secret in sorted(result.generated.items()):
            err(f"  {addr}  {secret.reveal()}")
    elif result.generated:
        err(f"{len(result.generated)} passwords of re-created accounts written to "
            f"{secrets_out}")
    raise typer.Exit(OK if result.ok else FAILED)
