"""The commands' work, shared by the typer commands and the lean entry (fastcli).

Kept free of typer, rich and pydantic at import time: `mailctl backup` of an
unchanged mailbox has a budget of ~0.13 s including interpreter start, and
those three cost ~0.25 s to import. rich is loaded only when stderr is a
terminal (progress bars).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mailctl.sync.endpoint import Endpoint, parse_endpoint, read_password
from mailctl.sync.model import SyncError
from mailctl.sync.stores import open_store

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PathArg = str | os.PathLike[str]  # str from the lean parser, Path from typer

# Same values as mailctl.cli.common (not imported: it pulls in typer).
OK, FAILED, PROVIDER, REFUSED, USAGE = 0, 1, 3, 4, 64
STATE_NAME = ".mailctl-sync.db"


class Args:
    """Every option of sync/backup/restore/verify; the commands fill what they have."""

    def __init__(self, src: str, dst: str, password1_file: PathArg | None = None,
                 password2_file: PathArg | None = None, password1_ref: str | None = None,
                 password2_ref: str | None = None, folders: list[str] | None = None,
                 exclude: list[str] | None = None, maps: list[str] | None = None,
                 delete: bool = False, force: bool = False, max_delete_share: float = 0.2,
                 dry_run: bool = False, fsync: bool = True, state: PathArg | None = None,
                 ca_file: str | None = None, json: bool = False,
                 allow_extra: bool = False, jobs: int = 2) -> None:
        self.src, self.dst = src, dst
        self.password1_file, self.password2_file = password1_file, password2_file
        self.password1_ref, self.password2_ref = password1_ref, password2_ref
        self.folders, self.exclude, self.maps = folders or [], exclude or [], maps or []
        self.delete, self.force, self.max_delete_share = delete, force, max_delete_share
        self.dry_run, self.fsync, self.state, self.ca_file = dry_run, fsync, state, ca_file
        self.json, self.allow_extra, self.jobs = json, allow_extra, jobs


def state_path(src: Endpoint, dst: Endpoint, explicit: PathArg | None) -> str:
    """Beside the data for a Maildir target (the backup carries its own state), else
    under $XDG_STATE_HOME, one file per source/target pair."""
    if explicit is not None:
        return os.fspath(explicit)
    if dst.kind == "maildir" and dst.path is not None:
        return os.path.join(dst.path, STATE_NAME)
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    import hashlib

    digest = hashlib.sha256(f"{src.label}\0{dst.label}".encode()).hexdigest()[:16]
    return os.path.join(base, "mailctl", "sync", f"{digest}.db")


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """flock without waiting (mailctl.util.atomic.locked, minus its pathlib import);
    the kernel releases it if we die."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TimeoutError(f"{path} is locked by another process") from None
        yield
    finally:
        os.close(fd)


def _stores(a: Args, readonly_src: bool = True) -> tuple[Any, Any, Endpoint, Endpoint]:
    s, d = parse_endpoint(a.src), parse_endpoint(a.dst)
    if s.kind == "maildir" and s.path is not None and not os.path.isdir(s.path):
        raise SyncError(f"{s.label}: no such directory")  # an empty source is not "all ok"
    p1 = (read_password(a.password1_file, a.password1_ref, s.label) if s.kind == "imap"
          else None)
    p2 = (read_password(a.password2_file, a.password2_ref, d.label) if d.kind == "imap"
          else None)
    src = open_store(s, p1, cafile=a.ca_file, fsync=a.fsync, readonly=readonly_src)
    dst = open_store(d, p2, cafile=a.ca_file, fsync=a.fsync)
    return src, dst, s, d


def _options(a: Args) -> Any:
    from mailctl.sync.engine import Options

    maps = []
    for m in a.maps:
        old, eq, new = m.partition("=")
        if not eq or not old or not new:
            raise SyncError(f"--map {m!r}: expected OLD=NEW")
        maps.append((old.strip("/"), new.strip("/")))
    return Options(folders=a.folders, exclude=a.exclude, maps=maps, delete=a.delete,
                   force=a.force, max_delete_share=a.max_delete_share, dry_run=a.dry_run,
                   jobs=max(a.jobs, 1))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bars: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as prog:
        def update(folder: str, done: int, total: int) -> None:
            if folder not in bars:
                bars[folder] = prog.add_task(folder, total=total)
            prog.update(bars[folder], completed=done)
        yield update


def cmd_sync(a: Args) -> int:
    """sync / backup / restore: one engine, different defaults for where state lives."""
    try:
        src, dst, s, d = _stores(a)
        opts = _options(a)
        path = state_path(s, d, a.state)
        from mailctl.sync.state import State

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with _locked(path + ".lock"):
            state = State(path, durable=a.fsync)
            problem = state.check_endpoints(s.label, d.label)
            if problem:
                raise SyncError(f"state file {problem}; use --state to pick another")
            from mailctl.sync import engine

            try:
                with _progress(not a.json) as progress:
                    report = engine.run(src, dst, state, opts, progress)
            finally:
                state.close()
                src.close()
                dst.close()
    except TimeoutError:
        return _fail("another sync with the same state is running", FAILED)
    except SyncError as exc:
        return _fail(str(exc), PROVIDER)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}", FAILED)
    if a.json:
        import json

        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_sync(report)
    if any(f.refused_deletes for f in report.folders):
        return REFUSED
    return OK if report.ok else FAILED


def cmd_verify(a: Args) -> int:
    try:
        src, dst, _, _ = _stores(a)
        from mailctl.sync.verify import verify

        try:
            report = verify(src, dst, _options(a), allow_extra=a.allow_extra)
        finally:
            src.close()
            dst.close()
    except SyncError as exc:
        return _fail(str(exc), PROVIDER)
    if a.json:
        import json

        print(json.dumps(report.as_dict(), indent=2))
    else:
        rows = [[f.src, f.dst, str(f.src_count), str(f.dst_count), str(f.missing), str(f.extra),
                 str(f.flag_mismatch), str(f.date_mismatch),
                 "ok" if f.ok and (a.allow_extra or not f.extra) else (f.error or "MISMATCH")]
                for f in report.folders]
        table(["folder", "target", "source", "target#", "missing", "extra", "flags", "dates",
               "result"], rows)
        print("verified: every message, flag and date matches" if report.ok
              else "NOT verified: see the rows above")
    return OK if report.ok else FAILED


def _fail(message: str, code: int) -> int:
    from mailctl.secret import scrub

    sys.stderr.write(f"error: {scrub(message)}\n")
    return code


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_sync(report: Any) -> None:
    rows = []
    for f in report.folders:
        state = f.error or ("unchanged" if f.unchanged else "ok")
        rows.append([f.src if f.src == f.dst else f"{f.src} -> {f.dst}", str(f.copied),
                     str(f.adopted), str(f.flags), str(f.deleted), _size(f.bytes), state])
    table(["folder", "copied", "present", "flags", "deleted", "bytes", "state"], rows)
    verb = "would copy" if report.dry_run else "copied"
    print(f"{verb} {report.total('copied')} messages ({_size(report.total('bytes'))}), "
          f"{report.total('adopted')} already present, {report.total('flags')} flag updates, "
          f"{report.total('deleted')} deleted"
          + (f", {late} late duplicates removed" if (late := report.total("late_duplicates"))
             else "") + f" in {report.seconds:.2f} s")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
