"""`mailctl reports fetch|show|import|prune|serve|rules`: DMARC and TLS reports.

Exit codes: 0 done; 1 a config problem, or an input was rejected (import), or
a fetch pass had errors that are not the server's; 3 a mailbox or the store
could not be reached; 64 a bad command line (unknown file, malformed --since,
an output path whose directory does not exist), checked before anything is
read, fetched or written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailctl.cli.common import FAILED, OK, PROVIDER, USAGE, ConfigOpt, JsonOpt, err, fail
from mailctl.cli.reports_view import FetchProgress, console, fetch_line, parse_since, write_pictures

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.reports.settings import ReportsSettings
    from mailctl.reports.store import ReportStore

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="reports",
                   help="DMARC and TLS reports: fetch, store once, say which sender fails.")


def _usage(message: str) -> None:
    fail(message, USAGE)


def _config(file: Path | None, as_json: bool = False) -> Config | None:
    """The config, or None when there is none (import and show work without one)."""
    from mailctl.cli.common import load
    from mailctl.config.load import default_path

    path = file or default_path()
    if file is None and not path.exists():
        return None
    return load(path, as_json)


def _settings(config: Config | None) -> ReportsSettings:
    from mailctl.reports.settings import ReportsSettings

    return (config.file.reports if config and config.file.reports else None) or ReportsSettings()


def _store(config: Config | None, file: Path | None, create: bool = True) -> ReportStore | None:
    from mailctl.config.load import default_path
    from mailctl.reports.db import sqlite_path
    from mailctl.reports.resolve import ReportsConfigError, store_url
    from mailctl.reports.store import ReportStore, StoreError

    path = config.path if config else (file or default_path())
    try:
        url = store_url(config.file.reports if config else None, path)
    except ReportsConfigError as exc:
        fail(str(exc))
    db_file = sqlite_path(url)
    if not create and db_file is not None and not db_file.exists():
        return None
    try:
        return ReportStore(url)
    except StoreError as exc:
        from mailctl.secret import scrub

        fail(scrub(str(exc)), PROVIDER)


def _check_output(path: Path | None, option: str) -> None:
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        _usage(f"{option} {path}: the directory {parent} does not exist (expected an "
               "existing directory)")
    if not os.access(parent, os.W_OK):
        _usage(f"{option} {path}: the directory {parent} is not writable")
    if path.is_dir():
        _usage(f"{option} {path} is a directory (expected a file name)")


@app.command()
def show(
    domain: Annotated[str | None, typer.Argument(help="only this domain")] = None,
    since: Annotated[str, typer.Option(
        "--since", help="reports whose window ends after this: 7d, 36h, 2w or YYYY-MM-DD")
    ] = "7d",
    svg: Annotated[Path | None, typer.Option(
        "--svg", help="also write the per-day picture as SVG to FILE", show_default=False,
        dir_okay=False)] = None,
    png: Annotated[Path | None, typer.Option(
        "--png", help="also write the per-day picture as PNG to FILE (rsvg-convert)",
        show_default=False, dir_okay=False)] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="no DNS: show volumes and results without classifying sources")
    ] = False,
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per domain: sources, volumes, SPF/DKIM/DMARC results, verdicts, the per-day picture."""
    import shutil
    import time

    now = time.time()
    try:
        start = parse_since(since, now)
    except ValueError as exc:
        _usage(str(exc))
    _check_output(svg, "--svg")
    _check_output(png, "--png")
    if png is not None and shutil.which("rsvg-convert") is None:
        fail("--png needs rsvg-convert (apt-get install librsvg2-bin); --svg works without it")
    name = None
    if domain is not None:
        from mailctl.model import AddressError, normalise_domain

        try:
            name = normalise_domain(domain)
        except AddressError as exc:
            _usage(f"{domain!r}: {exc} (expected a domain name)")
    config = _config(file, as_json)
    settings = _settings(config)
    store = _store(config, file, create=False)
    from sqlalchemy.exc import OperationalError

    from mailctl.reports.analysis import summarize
    from mailctl.reports.render import as_json as to_json
    from mailctl.reports.render import print_summaries
    from mailctl.reports.render import svg as to_svg

    summaries, rejected = [], []
    if store is not None:
        try:
            summaries = summarize(store, config, start, [name] if name else None, settings,
                                  resolve=not offline)
            rejected = store.rejected_since(start)
        except OperationalError as exc:
            fail(f"cannot read the reports store: {exc.orig}", PROVIDER)
        finally:
            store.close()
    if svg is not None or png is not None:
        write_pictures(to_svg(summaries), svg, png)
    if as_json:
        print(json.dumps(to_json(summaries, start, rejected), indent=2))
        return
    print_summaries(summaries, start, console(), rejected)


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(
        help=".xml, .xml.gz, .zip, .json(.gz), .eml or mbox files", show_default=False)],
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store the reports in FILEs (each once, however often imported)."""
    for f in files:
        if not f.is_file():
            _usage(f"{f}: no such file (expected a report file or mailbox)")
        if not os.access(f, os.R_OK):
            _usage(f"{f}: not readable")
    config = _config(file, as_json)
    settings = _settings(config)
    store = _store(config, file)
    assert store is not None
    from mailctl.reports.importer import import_files
    from mailctl.reports.resolve import limits_of

    try:
        rows = import_files(store, files, limits_of(settings), settings.retention_days)
    finally:
        store.close()
    bad = any(r["rejected"] for r in rows)
    if as_json:
        print(json.dumps({"version": 1, "ok": not bad, "files": rows}, indent=2))
    else:
        for r in rows:
            line = (f"{r['file']}: {r['stored']} stored, {r['duplicates']} already stored")
            if r["expired"]:
                line += f", {r['expired']} older than the retention period (not stored)"
            if r["ignored"]:
                line += f", {r['ignored']} mail(s) not a report"
            print(line)
            for reason in r["reasons"]:
                err(f"error: {r['file']}: rejected: {reason}")
    raise typer.Exit(FAILED if bad else OK)


@app.command()
def fetch(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit (else wait for "
                                       "mail with IDLE, or poll)")] = False,
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read the report mailboxes (reports.mailboxes); file each report once."""
    from mailctl.reports.fetch import FolderResult
    from mailctl.reports.resolve import ReportsConfigError, limits_of, mailboxes
    from mailctl.reports.watch import Runner, run

    config = _config(file or _default_required(), as_json)
    assert config is not None
    settings = _settings(config)
    try:
        boxes = mailboxes(config.file.reports, config.base_dir)
    except ReportsConfigError as exc:
        fail(str(exc))
    store = _store(config, file)
    assert store is not None
    progress = FetchProgress() if not as_json else None

    def emit(res: FolderResult) -> None:
        if progress is not None:
            progress.done()
        if as_json:
            print(json.dumps(res.as_dict()), flush=True)
        else:
            print(fetch_line(res), flush=True)

    runner = Runner(store, boxes, limits_of(settings), settings.retention_days, emit,
                    progress.update if progress is not None else None)
    try:
        failed = run(runner, once)
    finally:
        store.close()
    if failed:
        raise typer.Exit(PROVIDER)


def _default_required() -> Path:
    from mailctl.config.load import default_path

    return default_path()


@app.command()
def prune(
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete reports older than reports.retention_days (fetch and import also do)."""
    config = _config(file, as_json)
    settings = _settings(config)
    store = _store(config, file, create=False)
    if store is None:
        counts = {"reports": 0, "rejections": 0}
    else:
        try:
            counts = store.prune(settings.retention_days)
        finally:
            store.close()
    if as_json:
        print(json.dumps({"version": 1, "retention_days": settings.retention_days, **counts}))
    else:
        print(f"{counts['reports']} report(s) and {counts['rejections']} rejection record(s) "
              f"older than {settings.retention_days} days deleted")


@app.command()
def serve(
    listen: Annotated[str | None, typer.Option(
        "--listen", help="address for /metrics [default: reports.listen or :9426]",
        show_default=False)] = None,
    no_fetch: Annotated[bool, typer.Option(
        "--no-fetch", help="only serve metrics (another process fetches)")] = False,
    file: ConfigOpt = None,
) -> None:
    """Fetch the report mailboxes (IDLE or poll) and serve metrics at /metrics."""
    from mailctl.probe.settings import parse_listen
    from mailctl.reports.analysis import since_epoch, summarize
    from mailctl.reports.metrics import ReportsCollector
    from mailctl.reports.resolve import ReportsConfigError, limits_of, mailboxes
    from mailctl.reports.serve import fetch_recorder
    from mailctl.reports.serve import serve as serve_forever
    from mailctl.reports.watch import Runner

    try:
        host, port = parse_listen(listen) if listen else (None, None)
    except ValueError as exc:
        _usage(str(exc))
    config = _config(file or _default_required())
    assert config is not None
    settings = _settings(config)
    if host is None or port is None:
        host, port = parse_listen(settings.listen)
    boxes = []
    if not no_fetch:
        try:
            boxes = mailboxes(config.file.reports, config.base_dir)
        except ReportsConfigError as exc:
            fail(str(exc))
    store = _store(config, file)
    assert store is not None

    def summaries() -> tuple[list[Any], list[tuple[str, int]]]:
        start = since_epoch(settings.window_days)
        return summarize(store, config, start, None, settings), store.rejected_since(start)

    collector = ReportsCollector(summaries, settings.window_days)
    runner = None
    if boxes:
        emit = fetch_recorder(collector, lambda r: err(fetch_line(r)))
        runner = Runner(store, boxes, limits_of(settings), settings.retention_days, emit)

    def ready(bound: int) -> None:
        err(f"mailctl reports: {len(boxes)} mailbox(es); metrics at "
            f"http://{host or '0.0.0.0'}:{bound}/metrics")

    try:
        failed = serve_forever(collector, host, port, runner, ready)
    except OSError as exc:
        fail(f"cannot serve on {host or '*'}:{port}: {exc.strerror or exc}")
    finally:
        store.close()
    raise typer.Exit(PROVIDER if failed else OK)


@app.command()
def rules(
    share: Annotated[float, typer.Option(
        "--share", help="share of a sender's messages failing that alerts", min=0.0, max=1.0)
    ] = 0.02,
    min_messages: Annotated[int, typer.Option(
        "--min-messages", help="failing messages needed before a sender alert", min=1)] = 10,
    unknown: Annotated[int, typer.Option(
        "--unknown", help="messages from unknown sources failing DMARC that alert", min=1)
    ] = 100,
    stale_days: Annotated[float, typer.Option(
        "--stale-days", help="days without a DMARC report that alert", min=1.0, max=90.0)
    ] = 3.0,
) -> None:
    """Prometheus alert rules for the reports metrics, on stdout."""
    from mailctl.reports.rules import render

    sys.stdout.write(render(share, min_messages, unknown, stale_days))
