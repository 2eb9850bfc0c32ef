"""`mailctl move start|status|run|finish|rollback`: a whole domain to another provider."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mailctl.cli.common import (
    FAILED,
    OK,
    PROVIDER,
    REFUSED,
    ConfigOpt,
    JsonOpt,
    err,
    fail,
    json_errors,
    load,
    usage,
)

if TYPE_CHECKING:
    from mailctl.domain.move import Move
    from mailctl.domain.moveproject import Project

app = typer.Typer(no_args_is_help=True, help="Move a whole mail domain to another provider.")
T = TypeVar("T")

PHASE_NAMES = ("inventory", "provision", "presync", "lower-ttl", "cutover", "delta", "verify",
               "keep")  # mailctl.domain.moveproject.PHASES, without importing it at start-up
ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", "-p", metavar="DIR", help="the move project [default: the one move-* "
    "directory here]", show_default=False)]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, max=32,
                                      help="mailboxes copied at once")]
ResolverOpt = Annotated[str | None, typer.Option(
    "--resolver", metavar="IP[:PORT]", help="where DNS changes made by hand are checked "
    "[default: the system's resolvers]", show_default=False)]


def find_project(given: Path | None) -> Path:
    """The project directory: as given, or the only `move-*` project here (exit 64)."""
    if given is not None:
        if not (given / "move.json").is_file():
            usage(f"--project {given} is not a move project", "a directory written by "
                  "`mailctl move start`")
        return given
    found = sorted(p for p in Path(".").glob("move-*") if (p / "move.json").is_file())
    if len(found) != 1:
        usage("no --project and " + ("no move project here" if not found else
                                     f"{len(found)} move projects here: "
                                     + ", ".join(map(str, found))), "--project DIR")
    return found[0]


def guarded(fn: Callable[[], T]) -> T:
    """The library's failures as one `error:` line and the exit code of the table."""
    from mailctl.cli.domain import run_library
    from mailctl.dns.hosts import PublishError
    from mailctl.domain.move import Incomplete
    from mailctl.domain.moveproject import Blocked
    from mailctl.secret import scrub

    def inner() -> T:
        try:
            return fn()
        except Blocked as exc:
            fail(scrub(str(exc)), REFUSED, kind="blocked")
        except Incomplete as exc:
            fail(scrub(str(exc)), PROVIDER, kind="incomplete")
        except PublishError as exc:
            fail(scrub(str(exc)), exc.exit_code, kind="dns")

    return run_library(inner)


def open_move(project_dir: Path, jobs: int = 4, progress: Any = None,
              quiet: bool = False) -> Move:
    from mailctl.domain.move import Move
    from mailctl.domain.moveproject import Project

    project = guarded(lambda: Project.load(project_dir))
    config = load(Path(project.data["config"]))
    return Move(project, config, jobs=jobs, progress=progress,
                say=None if quiet else (lambda text: err(text)))


def exclusive(root: Path, fn: Callable[[], T]) -> T:
    """One `move run|finish|rollback` per project at a time (TimeoutError: exit 1)."""
    from mailctl.util.atomic import locked

    with locked(root / ".lock", timeout=0):
        return fn()


@app.command("start")
def start(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="a domain declared in the "
                                          "config", show_default=False)],
    to: Annotated[str, typer.Option("--to", metavar="PROVIDER", help="the provider of the "
                                    "config to move to", show_default=False)],
    project: ProjectOpt = None, file: ConfigOpt = None,
    mx: Annotated[list[str] | None, typer.Option(
        "--mx", metavar="HOST", help="the target's MX host (repeatable) where its type does "
        "not say it (a self-hosted server) [default: the domain's dns.mx_hosts]",
        show_default=False)] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=60, max=86400, help="the TTL (s) of the "
                                     "mail records during the move")] = 300,
    keep_days: Annotated[int, typer.Option("--keep-days", min=0, max=365, help="days the "
                                           "source is kept after the move verified")] = 7,
    maps: Annotated[list[str] | None, typer.Option(
        "--map", metavar="OLD=NEW", help="a source folder's name at the target (repeatable; "
        "wins over the Sent/Drafts/Junk/Trash/Archive roles)", show_default=False)] = None,
    accept_losses: Annotated[bool, typer.Option(
        "--accept-losses", help="move although the target cannot store what the plan lists "
        "(recorded in the project and its report)")] = False,
    jobs: JobsOpt = 4, as_json: JsonOpt = False,
) -> None:
    """Inventory DOMAIN, plan the target and write a move project; changes nothing."""
    from mailctl.cli.domain import _split, domain_name
    from mailctl.config.errors import ConfigError
    from mailctl.domain.backup import check_dir
    from mailctl.errors import MailctlError

    json_errors(as_json)
    pairs: list[tuple[str, str]] = []
    for m in maps or []:
        old, sep, new = m.partition("=")
        if not sep or not old or not new:
            usage(f"--map {m!r}", "OLD=NEW, two folder names")
        pairs.append((old, new))
    for host in mx or []:
        if not host or "." not in host or any(c in host for c in " /:@"):
            usage(f"--mx {host!r}", "a host name such as mx.example.org")
    root = project or Path(f"move-{domain.lower().rstrip('.')}")
    if (root / "move.json").exists():
        usage(f"--project {root} holds a move already", "a new directory; `mailctl move "
              "status` shows that move")
    try:
        check_dir(root, "--project")
    except MailctlError as exc:
        usage(*_split(str(exc)))
    config = load(file)
    name = domain_name(config, domain)
    if to not in config.providers:
        usage(f"--to {to!r} is not a provider in {config.path}",
              "one of " + (", ".join(sorted(config.providers)) or "(none)"))
    from mailctl.domain.moveplan import start as start_move

    def go() -> Project:
        try:
            return start_move(config, name, to, root, mx=mx, ttl=ttl, keep_days=keep_days,
                              maps=pairs, accept_losses=accept_losses, jobs=jobs)
        except ConfigError as exc:
            for issue in exc.issues:
                err(issue.format().replace(str(config.path), f"{to} (the target's plan)"))
            fail(f"provider {to!r} cannot store everything {name} has (listed above); "
                 "nothing was changed", REFUSED, kind="refused",
                 hint="move without it: --accept-losses (the list is kept in the project)")

    proj = guarded(go)
    st = proj.data
    if as_json:
        from mailctl.domain.moveproject import status

        print(json.dumps(status(proj), indent=2))
    else:
        print(f"move of {name}: {st['source']} -> {to}, project {root}")
        print(f"  {len(st['addresses'])} mailboxes, {len(st['aliases'])} aliases")
        for loss in st["losses"]:
            print(f"  NOT MOVED: {loss['field']}: {loss['problem']} (was {loss['value']!r})")
        print("next: `mailctl move run` (provision, presync, lower-ttl, cutover, delta, "
              "verify)")
    raise typer.Exit(OK)


@app.command("status")
def status_cmd(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Phase, what is next and what blocks, each mailbox's progress, ETA."""
    from mailctl.domain.moveproject import Project, status

    json_errors(as_json)
    root = find_project(project)
    st = status(guarded(lambda: Project.load(root)))
    if as_json:
        print(json.dumps(st, indent=2))
        raise typer.Exit(OK)
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]move of {st['domain']}[/]: {st['source']} -> {st['target']}  "
              f"(project {st['project']})")
    con.print(f"phase: [bold]{st['phase'] or 'new'}[/]" + (
        f"; next: [bold]{st['next']}[/] ({st['next_does']})" if st["next"] else ""))
    if st["eta_seconds"] is not None:
        con.print(f"ETA of this phase: about {_dur(st['eta_seconds'])}")
    if st["keep_until"] and not st["ended"]:
        con.print(f"source kept until {_utc(st['keep_until'])}; then `mailctl move finish`")
    if st["blocked"]:
        con.print(f"[yellow]blocked:[/] {st['blocked']}", markup=True, highlight=False)
    for loss in st["not_moved"]:
        con.print(f"[red]not moved:[/] {loss['field']}: {loss['problem']}")
    t = Table("mailbox", "presync", "delta", "verified", "note")
    for b in st["mailboxes"]:
        v = b["verify"] or {}
        note = b["error"] or (f"{v.get('missing')} missing, {v.get('flag_mismatch')} flags, "
                              f"{v.get('date_mismatch')} dates" if v and not v.get("ok")
                              else "")
        t.add_row(b["address"], _n(b["presync"]), _n(b["delta"]),
                  {None: "-", True: "yes", False: "NO"}[b["verified"]], note)
    con.print(t)
    for a, folders in (st["arrived_at_target"] or {}).items():
        if folders:
            con.print(f"arrived at the target meanwhile: {a}: {folders}")
    raise typer.Exit(OK)


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


@app.command("run")
def run_cmd(
    project: ProjectOpt = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="PHASE", help="stop after this phase: " + ", ".join(PHASE_NAMES)
        + " [default: all]", show_default=False)] = None,
    no_ttl_wait: Annotated[bool, typer.Option(
        "--no-ttl-wait", help="cut over without waiting for the old TTL to expire")] = False,
    max_passes: Annotated[int, typer.Option(
        "--max-passes", min=1, max=100, help="delta passes at most before verifying")] = 10,
    resolver: ResolverOpt = None, jobs: JobsOpt = 4, as_json: JsonOpt = False,
) -> None:
    """Advance the move; each phase is resumable. In the keep phase: one more delta pass."""
    from mailctl.cli.domain import progress_bar

    json_errors(as_json)
    if until is not None and until not in PHASE_NAMES:
        usage(f"--until {until!r}", "one of " + ", ".join(PHASE_NAMES))
    check_resolver(resolver)
    root = find_project(project)
    with progress_bar("move", not as_json) as prog:
        move = open_move(root, jobs, prog, quiet=as_json)
        done = guarded(lambda: exclusive(root, lambda: move.run(
            until, ttl_wait=not no_ttl_wait, resolver=resolver, max_passes=max_passes)))
    from mailctl.domain.moveproject import status

    st = status(move.project)
    if as_json:
        print(json.dumps({"ok": True, "done": done, **st}, indent=2))
    else:
        print(f"done: {', '.join(done) or 'nothing'}; phase: {st['phase']}"
              + (f"; next: {st['next']}" if st["next"] else ""))
        _tell(move)
    raise typer.Exit(OK)


def _tell(move: Move) -> None:
    """What only the operator can do: users whose password mailctl set."""
    import contextlib

    from mailctl.errors import MailctlError

    known: list[str] = []
    with contextlib.suppress(MailctlError, OSError):
        known = sorted(move.dst.known)
    if known:
        err(f"{len(known)} users have a password mailctl set at {move.project.data['target']} "
            f"(in {move.project.path('secrets.tsv')}); they must set their own: "
            + ", ".join(known[:10]) + (" ..." if len(known) > 10 else ""))


def check_resolver(resolver: str | None) -> None:
    if resolver:
        from mailctl.dns.resolver import parse_server

        try:
            parse_server(resolver)
        except ValueError as exc:
            usage(f"--resolver {resolver!r}: {str(exc).split(' (')[0]}", "IP or IP:PORT")


@app.command("finish")
def finish_cmd(
    project: ProjectOpt = None,
    now: Annotated[bool, typer.Option("--now", help="end before the keep days are over")]
    = False,
    resolver: ResolverOpt = None, as_json: JsonOpt = False,
) -> None:
    """A last delta pass, the target's records at their normal TTL, the final report."""
    json_errors(as_json)
    check_resolver(resolver)
    root = find_project(project)
    move = open_move(root, quiet=as_json)
    guarded(lambda: exclusive(root, lambda: move.finish(now=now, resolver=resolver)))
    d = move.project.data
    if as_json:
        print(json.dumps({"ok": True, "report": str(move.project.path("report.json"))}))
    else:
        print(f"the move of {d['domain']} to {d['target']} is finished; report: "
              f"{move.project.path('report.json')}")
        err(f"next: set `provider: {d['target']}` for {d['domain']} in {d['config']} (the "
            f"source {d['source']} still holds the domain: remove it there when you wish)")
        _tell(move)
    raise typer.Exit(OK)


@app.command("rollback")
def rollback_cmd(project: ProjectOpt = None, resolver: ResolverOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Point MX back at the source; report what arrived at the target meanwhile."""
    json_errors(as_json)
    check_resolver(resolver)
    root = find_project(project)
    move = open_move(root, quiet=as_json)
    arrived = guarded(lambda: exclusive(root, lambda: move.rollback(resolver=resolver)))
    if as_json:
        print(json.dumps({"ok": True, "arrived_at_target": arrived}, indent=2))
    else:
        print(f"rolled back: mail for {move.domain} goes to {move.project.data['source']} "
              "again")
        for a, folders in arrived.items():
            if folders:
                print(f"  arrived at the target meanwhile: {a}: {folders}")
    raise typer.Exit(OK if all("error" not in f for f in arrived.values()) else FAILED)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="move", help="Move a whole mail domain to another provider.")
