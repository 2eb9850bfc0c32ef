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
from contextlib import contextmanager, nullcontext

from mailctl.secret import Secret
from mailctl.sync.endpoint import Endpoint, parse_endpoint, read_password
from mailctl.sync.files import check_output_dir, read_text
from mailctl.sync.model import SyncError, UsageError
from mailctl.sync.stores import open_store
from mailctl.util.private import private_dir

# `typing` only for the type checker: it costs ~5 ms of a no-change run's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PathArg = str | os.PathLike[str]  # str from the lean parser, Path from typer

# Same values as mailctl.cli.common (not imported: it pulls in typer).
OK, FAILED, PROVIDER, REFUSED, USAGE, INTERRUPTED = 0, 1, 3, 4, 64, 130
_KINDS = {FAILED: "failed", PROVIDER: "provider", REFUSED: "refused", USAGE: "usage"}
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
                 allow_extra: bool = False, jobs: int = 2, delivered: bool = False) -> None:
        self.src, self.dst = src, dst
        self.password1_file, self.password2_file = password1_file, password2_file
        self.password1_ref, self.password2_ref = password1_ref, password2_ref
        self.folders, self.exclude, self.maps = folders or [], exclude or [], maps or []
        self.delete, self.force, self.max_delete_share = delete, force, max_delete_share
        self.dry_run, self.fsync, self.state, self.ca_file = dry_run, fsync, state, ca_file
        self.json, self.allow_extra, self.jobs = json, allow_extra, jobs
        self.delivered = delivered


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


JOBS_MAX = 32  # sessions per side; providers cap connections per user far below this


class _Plan:
    """Everything a command needs, checked: nothing has been touched yet."""

    __slots__ = ("d", "opts", "p1", "p2", "s", "state")

    def __init__(self, s: Endpoint, d: Endpoint, p1: Secret | None, p2: Secret | None,
                 opts: Any, state: str | None) -> None:
        self.s, self.d, self.p1, self.p2, self.opts, self.state = s, d, p1, p2, opts, state


def _prepare(a: Args, verifying: bool = False) -> _Plan:
    """Every argument, before any side effect (no directory, state file, connection):
    whatever is wrong raises UsageError (exit 64)."""
    s, d = parse_endpoint(a.src), parse_endpoint(a.dst)
    if not 1 <= a.jobs <= JOBS_MAX:
        raise UsageError(f"--jobs {a.jobs} is out of range (expected 1-{JOBS_MAX})")
    if not 0.0 <= a.max_delete_share <= 1.0:  # also refuses nan
        raise UsageError(f"--max-delete-share {a.max_delete_share} is out of range "
                         "(expected 0-1, a share of a folder)")
    maps = []
    for m in a.maps:
        old, eq, new = m.partition("=")
        if not eq or not old.strip("/") or not new.strip("/"):
            raise UsageError(f"--map {m!r} (expected OLD=NEW, e.g. Lists=Archive/Lists)")
        maps.append((old.strip("/"), new.strip("/")))
    sources = [s, d] if verifying else [s]
    for ep in sources:  # an empty or missing source is not "all ok"
        if ep.kind == "maildir" and ep.path is not None and not os.path.isdir(ep.path):
            raise UsageError(f"{ep.label}: no such directory (expected a Maildir tree)")
        if ep.kind == "mbox" and ep.path is not None and not os.path.exists(ep.path):
            raise UsageError(f"{ep.label}: no such file or directory (expected an .mbox "
                             "file or a directory of them)")
        if ep.kind == "mbox" and ep.path is not None and os.path.isfile(ep.path):
            read_check(ep.path, f"{ep.label}")
    if d.kind == "mbox":
        raise UsageError(f"{d.label} as the target (expected an mbox only as the source: "
                         "imap://, imaps:// or maildir: to write to)")
    if not verifying and d.kind == "maildir" and d.path is not None:
        check_output_dir(d.path, "the target")
    if a.ca_file is not None:
        read_text(a.ca_file, "--ca-file")
    p1 = (read_password(a.password1_file, a.password1_ref, s.label) if s.kind == "imap"
          else None)
    p2 = (read_password(a.password2_file, a.password2_ref, d.label) if d.kind == "imap"
          else None)
    state = None
    if not verifying:
        state = state_path(s, d, a.state)
        if a.state is not None:
            if os.path.lexists(state) and not os.path.isfile(state):
                raise UsageError(f"--state {state} is not a regular file (expected a state "
                                 "file)")
            if not os.path.isdir(os.path.dirname(os.path.abspath(state))):
                raise UsageError(f"--state {state}: its directory does not exist (expected "
                                 "a file in an existing directory)")
    from mailctl.sync.engine import Options

    opts = Options(folders=a.folders, exclude=a.exclude, maps=maps, delete=a.delete,
                   force=a.force, max_delete_share=a.max_delete_share, dry_run=a.dry_run,
                   jobs=a.jobs)
    return _Plan(s, d, p1, p2, opts, state)


def read_check(path: str, what: str) -> None:
    """A file named on the command line that is read later: readable now (exit 64)."""
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what}: not readable (expected a readable file)")


def _open(p: _Plan, a: Args) -> tuple[Any, Any]:
    src = open_store(p.s, p.p1, cafile=a.ca_file, fsync=a.fsync, readonly=True)
    dst = open_store(p.d, p.p2, cafile=a.ca_file, fsync=a.fsync)
    return src, dst


def _role_maps(p: _Plan, src: Any, dst: Any) -> None:
    """An mbox source's folders are mailctl's names for Gmail's system labels: they go to
    the target's own Sent, Drafts, Junk, Trash and Archive (roles.py); `--map` wins."""
    if p.s.kind != "mbox":
        return
    from mailctl.sync.roles import role_maps, roles

    p.opts.maps = role_maps(roles(src), roles(dst), p.opts.maps)


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
        p = _prepare(a)
    except UsageError as exc:
        return _fail(str(exc), USAGE, a.json)
    assert p.state is not None
    try:
        from mailctl.sync.state import State

        src, dst = _open(p, a)
        try:
            if p.s.kind == "imap":  # log in before anything is created: a wrong password
                src.conn  # noqa: B018 - leaves no empty backup directory or state behind
            if a.dry_run:  # a dry run creates nothing: no directory, state or lock file
                lock: Any = nullcontext()
            else:
                private_dir(os.path.dirname(os.path.abspath(p.state)))
                lock = _locked(p.state + ".lock")
            with lock:
                state = State(p.state, durable=a.fsync, dry_run=a.dry_run)
                try:
                    problem = state.check_endpoints(p.s.label, p.d.label)
                    if problem:
                        raise UsageError(f"state file {problem} (expected another --state "
                                         "for this pair)")
                    from mailctl.sync import engine

                    _role_maps(p, src, dst)
                    with _progress(not a.json) as progress:
                        report = engine.run(src, dst, state, p.opts, progress)
                finally:
                    state.close()
        finally:
            src.close()
            dst.close()
    except TimeoutError:
        return _fail("another sync with the same state is running", FAILED, a.json)
    except UsageError as exc:
        return _fail(str(exc), USAGE, a.json)
    except SyncError as exc:
        return _fail(str(exc), PROVIDER, a.json)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}", FAILED, a.json)
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
        p = _prepare(a, verifying=True)
    except UsageError as exc:
        return _fail(str(exc), USAGE, a.json)
    try:
        src, dst = _open(p, a)
        from mailctl.sync.verify import verify

        try:
            _role_maps(p, src, dst)
            report = verify(src, dst, p.opts, allow_extra=a.allow_extra,
                            delivered=a.delivered)
        finally:
            src.close()
            dst.close()
    except SyncError as exc:
        return _fail(str(exc), PROVIDER, a.json)
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


def _fail(message: str, code: int, as_json: bool = False) -> int:
    """`error: ...` on stderr; under --json also the one JSON error shape on stdout
    (mailctl.cli.common.json_error, which this module cannot import)."""
    from mailctl.secret import scrub

    message = scrub(message)
    if as_json:
        import json

        print(json.dumps({"ok": False, "error": {"kind": _KINDS.get(code, "failed"),
                                                 "message": message, "exit_code": code}},
                         indent=2))
    sys.stderr.write(f"error: {message}\n")
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
